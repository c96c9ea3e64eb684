"""Evaluation speed in each domain's environments, and what one Table 1 row costs there.

For each environment (a D4RL dataset name, so the evaluation is the one `spar-eqx train` runs:
AntMaze episodes end at the goal or after 700 / 1000 steps, Adroit's pen after 100), a SPAR-PROJ
policy at the paper's sizes (10 critics of 256 units, the gate scoring 10 candidates; weights
drawn as Equinox initialises them, the normaliser the identity, as `latency.py` builds it) is
evaluated with `spar_eqx.evaluate` on `--episodes` episodes run side by side in one vector env,
and the environment steps per second are reported. A policy with random weights never reaches an
AntMaze goal, so every episode runs to the step limit: the slowest case, the one a failing
policy costs.

The cost of a Table 1 row is then extrapolated: `seeds x episodes x 3 policies` (SPAR, its
anchor and SPAR without its gate, which the trainer evaluates together) at the step limit,
divided by the measured rate. Training time is not measured here: `throughput.py` gives the
update rates (docs/benchmarks.md).

Usage (from the repository root; needs `pip install -e ".[robotics]"`):

    python benchmarks/domains.py --json benchmarks/results/domains_cpu.json
    python benchmarks/domains.py --envs antmaze-large-diverse-v2 --episodes 10
"""

import argparse
import json
import time

from _record import write_record
from latency import build_policy

ENVS = ("antmaze-umaze-diverse-v2", "antmaze-large-diverse-v2", "pen-cloned-v1")


def measure(name: str, episodes: int, seeds: int, row_episodes: int) -> dict:
    import spar_eqx

    env = spar_eqx.environment(name)
    obs_dim, act_dim, _, _ = spar_eqx.env_spaces(env)
    policy = build_policy("proj", obs_dim, act_dim)
    spar_eqx.evaluate(policy, env, 1, seed=0, max_episode_steps=5)  # compile
    started = time.perf_counter()
    result = spar_eqx.evaluate(policy, env, episodes, seed=0)
    seconds = time.perf_counter() - started
    steps = int(result.lengths.sum())
    rate = steps / seconds
    row_steps = seeds * row_episodes * 3 * env.max_episode_steps
    return {
        "env": name,
        "env_id": env.env_id,
        "episodes": episodes,
        "env_steps": steps,
        "seconds": seconds,
        "env_steps_per_s": rate,
        "table1_row": {
            "seeds": seeds,
            "episodes": row_episodes,
            "policies": 3,
            "max_env_steps": row_steps,
            "max_minutes": row_steps / rate / 60,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(ENVS))
    parser.add_argument("--episodes", type=int, default=10, help="episodes timed per env")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of a Table 1 row (3)")
    parser.add_argument(
        "--row-episodes", type=int, default=100,
        help="evaluation episodes per seed of a Table 1 row (D4RL's AntMaze protocol: 100)",
    )  # fmt: skip
    parser.add_argument("--json", help="also write the rows, machine and versions here")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'env':<28}{'env-steps/s':>12}{'row: max env-steps':>20}{'max minutes':>13}")
    for name in args.envs:
        row = measure(name, args.episodes, args.seeds, args.row_episodes)
        rows.append(row)
        cost = row["table1_row"]
        print(
            f"{name:<28}{row['env_steps_per_s']:>12,.0f}{cost['max_env_steps']:>20,}"
            f"{cost['max_minutes']:>13.1f}"
        )
    if args.json:
        write_record(args.json, "benchmarks/domains.py", rows, argv)
    else:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
