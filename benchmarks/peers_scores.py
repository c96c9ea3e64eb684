"""d3rlpy's BC, IQL and TD3+BC trained and scored on the same dataset as ours, beside our scores.

`benchmarks/peers.py` compares update speed; this compares what the updates learn. Each
algorithm is d3rlpy's (2.x, PyTorch on the CPU), configured as `peers.py` configures it (our
sizes, rates, critics and algorithm constants), plus the data handling our trainer applies to
every run:

- observations standardised with the dataset's mean and std (`StandardObservationScaler`; our
  trainer's state normalisation, the paper's Table 7);
- IQL's rewards scaled by `1000 / (max return - min return)` over the dataset's episodes
  (`ReturnBasedRewardScaler(multiplier=1000)`; our `"locomotion"` reward transform, IQL's
  recipe);
- IQL's actor rate decayed to 0 with a cosine over the run's `--steps` (ours does the same).

`bc-d3rlpy-defaults` is d3rlpy's BC as d3rlpy ships it (batch 100, learning rate 1e-3, no
observation scaler), for a reader who wants the library's own defaults.

Each seed trains with `algo.fit` (`d3rlpy.seed(seed)`, no logging, no evaluation during
training) and is then scored by `spar_eqx.evaluate`, exactly as our trainer scores its final
policies: `--eval-episodes` episodes, seed `s` playing environment seeds
`10_000 + s * episodes + e`, D4RL-normalised with the dataset's reference scores. d3rlpy's
policy is called on the batch of observations through `jax.pure_callback`; its deterministic
action is `predict`'s (the tanh of the mean for IQL's Gaussian).

Where the data differ: d3rlpy rebuilds episodes from the rows (ending them at each terminal
or timeout) and gives the last transition of each episode a zero next observation, where ours
keeps every transition's recorded next observation. The timeouts of this dataset's episodes
are few (most end by termination), so few transitions are affected.

Usage (from the repository root, with the `peers` virtualenv of `benchmarks/peers.py`):

    /work/peers-venv/bin/python benchmarks/peers_scores.py \\
        --dataset runs/heldout/hopper/medium-replay-v0 --steps 30000 --seeds 2 \\
        --ours benchmarks/results/quality_hopper_heldout_30k.json \\
        --json benchmarks/results/peers_scores_hopper_heldout_30k.json

`--ours` is the `--json` of a `benchmarks/quality.py` run on the same dataset, steps and seeds:
its scores are printed beside d3rlpy's. Rows: `{"name", "scores" (per seed), "minutes" (per
seed: training and evaluation), "config"}`.
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _record import write_record
from peers import add_peer_versions, d3rlpy_config, import_peers

import spar_eqx
from spar_eqx.data import load_dataset

NAMES = ("bc", "iql", "td3bc", "bc-d3rlpy-defaults")
EVAL_SEED = 10_000  # the seed our trainer's final evaluation uses


def config(name: str, steps: int):
    """d3rlpy's config of `name` (see the module docstring)."""
    import d3rlpy

    if name == "bc-d3rlpy-defaults":
        return d3rlpy.algos.BCConfig(policy_type="deterministic")
    scaled = dataclasses.replace(
        d3rlpy_config(name), observation_scaler=d3rlpy.preprocessing.StandardObservationScaler()
    )
    if name != "iql":
        return scaled
    cosine = d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=steps)
    return dataclasses.replace(
        scaled,
        reward_scaler=d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0),
        actor_optim_factory=d3rlpy.optimizers.AdamFactory(lr_scheduler_factory=cosine),
    )


def mdp_dataset(transitions):
    """Our transitions as a d3rlpy `MDPDataset` (episodes end at terminals and timeouts)."""
    import d3rlpy

    return d3rlpy.dataset.MDPDataset(
        observations=np.asarray(transitions.observations, np.float32),
        actions=np.asarray(transitions.actions, np.float32),
        rewards=np.asarray(transitions.rewards, np.float32),
        terminals=np.asarray(transitions.terminals, np.float32),
        timeouts=np.asarray(transitions.timeouts, np.float32),
    )


def as_policy(algo, act_dim: int):
    """A `spar_eqx.BatchPolicy` calling d3rlpy's `predict` on the host."""

    def predict(observations):
        return np.asarray(algo.predict(np.asarray(observations, np.float32)), np.float32)

    def policy(observations, key):
        shape = jax.ShapeDtypeStruct((observations.shape[0], act_dim), jnp.float32)
        return jax.pure_callback(predict, shape, observations)

    return policy


def train_and_score(name: str, dataset, data, seed: int, args) -> tuple[float, float, dict]:
    """`(mean D4RL-normalised score over the episodes, minutes, d3rlpy's config as JSON, its
    scalers fitted)` of one seed."""
    import d3rlpy

    started = time.perf_counter()
    d3rlpy.seed(seed)
    algo = config(name, args.steps).create(device="cpu:0")
    algo.fit(
        dataset,
        n_steps=args.steps,
        n_steps_per_epoch=args.steps,
        show_progress=False,
        save_interval=args.steps + 1,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
    )
    result = spar_eqx.evaluate(
        as_policy(algo, data.transitions.actions.shape[1]),
        data.env_id,
        args.eval_episodes,
        seed=EVAL_SEED + seed * args.eval_episodes,
        reference=data.reference,
    )
    minutes = (time.perf_counter() - started) / 60
    return float(np.mean(result.scores)), minutes, json.loads(algo.config.serialize())


def ours(path: str | None) -> dict[str, list[float]]:
    """Per-seed scores of a `quality.py` JSON, by algorithm (baselines only)."""
    if path is None:
        return {}
    rows = json.loads(Path(path).read_text())["results"]
    return {r["algo"]: r["scores"][r["algo"]] for r in rows if r["algo"] in r["scores"]}


def _cell(scores: list[float] | None) -> str:
    if not scores:
        return "–"
    return f"{np.mean(scores):.1f} ± {np.std(scores):.1f} ({', '.join(f'{s:.1f}' for s in scores)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="as `spar-eqx train --dataset` takes")
    parser.add_argument("--steps", type=int, default=30_000, help="updates per run")
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0 .. n-1")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--ours", help="a benchmarks/quality.py --json file to print beside")
    parser.add_argument("--torch-threads", type=int, help="PyTorch threads (default: its own)")
    parser.add_argument("--json", help="also write the rows, machine and versions here")
    args = parser.parse_args(argv)
    torch = import_peers("peers_scores.py")
    if torch is None:
        return 2
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    data = load_dataset(args.dataset)
    dataset = mdp_dataset(data.transitions)
    print(
        f"{data.name}: {data.transitions.num_transitions} transitions, "
        f"{len(dataset.episodes)} episodes as d3rlpy cuts them; torch "
        f"{torch.__version__} on {torch.get_num_threads()} thread(s)",
        flush=True,
    )
    rows = []
    for name in args.only:
        scores, minutes = [], []
        for seed in range(args.seeds):
            score, took, fitted = train_and_score(name, dataset, data, seed, args)
            scores.append(score)
            minutes.append(took)
            print(f"  d3rlpy {name}, seed {seed}: {score:.1f} in {took:.1f} min", flush=True)
        rows.append(
            {"name": name, "scores": scores, "minutes": minutes,
             "config": fitted}
        )  # fmt: skip
    mine = ours(args.ours)
    print("\n| algorithm | d3rlpy | spar_eqx | d3rlpy minutes per seed |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['name']} | {_cell(r['scores'])} | {_cell(mine.get(r['name']))} | "
            f"{np.mean(r['minutes']):.1f} |"
        )
    if args.json:
        write_record(args.json, "benchmarks/peers_scores.py", rows, argv)
        add_peer_versions(args.json, ours={"file": args.ours, "scores": mine})
    return 0


if __name__ == "__main__":
    sys.exit(main())
