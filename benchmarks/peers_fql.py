"""Our FQL update timed beside the FQL authors' own (github.com/seohongpark/fql), on one CPU.

Both sides run in this one process, on the same JAX and its one CPU thread pool, on
`throughput.py`'s synthetic data of HalfCheetah's shape (17-d observations, 6-d actions, 100k
rows), at the reference's defaults (`agents/fql.py` `get_config()`): every network 4 x 512
GELU, LayerNorm in the 2 critics only, batch 256, 10 Euler steps, alpha 10, `q_agg` mean,
Adam at 3e-4, discount 0.99, tau 0.005. Ours are the same values (`spar_eqx`'s `FQLConfig`
defaults); the script checks that and says so if they ever part.

What is timed on each side:

- Ours: exactly `throughput.py`'s `fql` row (through `peers.ours`): the trainer's compiled
  chunk runner `spar_eqx._train._chunk.run_chunk`, 1 seed, `--chunk` updates per
  `lax.scan`, each update's batch indices drawn and its rows gathered inside the compiled
  program; we wait for each chunk. (`throughput.py`'s chunk is 200 by default, ours 20 so
  that a short `--seconds` still holds several: at a tenth of a second or more per update,
  one dispatch and one wait per chunk are negligible either way.)
- The reference: `agent.update(batch)` as its `main.py` loop calls it (`FQLAgent.update`,
  jitted by the authors: one compiled call per update, the agent a flax struct flattened on
  every call), on batch dicts from its own sampler (`utils.datasets.Dataset.sample(256)`:
  numpy `observations`, `actions`, `rewards`, `terminals`, `masks`, `next_observations`),
  cycling through a pool of `--pool` batches drawn beforehand, so the host-side sampling is
  excluded (reported apart as `reference_sample_ms`; its loop pays it on every update, ours
  gathers its batch inside the timed update: if anything the ratio is generous to the
  reference). Its numpy-to-device copy of each batch is included. Its calls are dispatched
  asynchronously, as in its loop, and we wait once every `--chunk` updates, as for ours.

Each side is built and warmed up (compiled) first, then ours and the reference are timed in
turn `--repeats` times for `--seconds` each; the medians and their ratio are kept.

Where the two updates differ (the same algorithm: critics, behaviour flow and one-step
policy each stepped from the current parameters, then the targets' Polyak step):

- Work. In forward passes of a 4 x 512 MLP over the batch (about 1.6 MFLOP a row), both
  run the one-step policy at s' (1), the 2 target critics (2), the 2 critics trained (6),
  the flow trained (3), the 10 Euler steps of the flow (10), the one-step policy trained (3)
  and the 2 frozen critics differentiated with respect to their action input (4): 29. The
  reference adds a 30th, the one-step policy at s for its `mse` metric (`sample_actions`,
  every update). It also runs Adam over the target critics too (they sit in the optimised
  parameters with zero gradients; the Polyak step then overwrites them) and reports the
  max, min and norm of every gradient leaf: elementwise work, small beside the matmuls.
- Structure. The reference unrolls its 10 Euler steps in Python (10 copies in the graph);
  ours is a `lax.fori_loop`. It takes one `jax.grad` of the summed losses and one Adam over
  all parameters; ours one gradient and one Adam per network (the same update: the
  parameters are disjoint and there is no clipping). It reports 13 scalars, ours 8.
- Target step (no effect on speed): the reference's Polyak step moves the target critics
  toward the critics as they were before this update's Adam step (`target_update` reads
  `self.network`, the agent passed in); ours toward the critics after it.
- Initialisation (no effect on speed): the reference's kernels are Xavier-uniform with zero
  biases; ours are Equinox's default (uniform within 1/sqrt(fan_in), biases too). LayerNorm
  (epsilon 1e-6, after each hidden GELU) and GELU (the tanh approximation) are the same.
- Observations: our trainer normalises the dataset once before training (no per-update
  cost; the synthetic observations are standard normal already); the reference does not.

Usage (from the repository root), in a virtualenv holding both this package and what the
reference's `agents/fql.py` imports (the reference's `requirements.txt` also pins its
environments' packages, which are not needed here):

    git clone https://github.com/seohongpark/fql /path/to/fql
    python -m venv /work/fql-venv
    /work/fql-venv/bin/pip install jax==<ours> jaxlib==<ours> flax optax ml_collections distrax
    /work/fql-venv/bin/pip install -e .
    /work/fql-venv/bin/python benchmarks/peers_fql.py --fql-path /path/to/fql \\
        --json benchmarks/results/peers_fql_cpu.json

`--fql-path` defaults to `$FQL_PATH`. Row: `{"name": "fql",
"ours_updates_per_s", "reference_updates_per_s", "ratio"}` (ratio = ours / reference), plus
`reference_sample_ms`, every repeat's rates and `loadavg` (the 1-minute load average at the
start and the end: the machine may be shared); the record adds flax's, distrax's and
ml_collections' versions and the reference's commit (`--fql-commit`, else asked of git when
`--fql-path` is a checkout)."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import jax
import jax.random as jr
import numpy as np
from _record import machine, write_record
from peers import ours, rate
from throughput import synthetic_data

from spar_eqx import ALGORITHMS


def reference_agent(fql_path: str):
    """`(FQLAgent, its default config, its Dataset class)` from the checkout at `fql_path`."""
    sys.path.insert(0, fql_path)
    from agents.fql import FQLAgent, get_config
    from utils.datasets import Dataset

    return FQLAgent, get_config(), Dataset


def mismatches(config) -> list[str]:
    """Where our `fql` defaults differ from the reference's `config`."""
    c = ALGORITHMS["fql"].config()
    pairs = {
        "hidden sizes": ((c.width,) * c.depth, tuple(config["actor_hidden_dims"])),
        "critic sizes": ((c.width,) * c.depth, tuple(config["value_hidden_dims"])),
        "batch_size": (c.batch_size, config["batch_size"]),
        "flow_steps": (c.flow_steps, config["flow_steps"]),
        "alpha": (c.alpha, config["alpha"]),
        "q_agg": (c.q_agg, config["q_agg"]),
        "normalize_q_loss": (c.normalize_q_loss, config["normalize_q_loss"]),
        "lr": (c.learning_rate, config["lr"]),
        "discount": (c.gamma, config["discount"]),
        "tau": (c.polyak, config["tau"]),
        "critic LayerNorm": (True, config["layer_norm"]),
        "actor LayerNorm": (False, config["actor_layer_norm"]),
    }
    return [f"{k}: ours {a}, reference {b}" for k, (a, b) in pairs.items() if a != b]


def reference(fql_path: str, data, pool: int, chunk: int):
    """`(one call of `chunk` reference updates, mean ms to sample one batch, mismatches)`."""
    agent_cls, config, dataset_cls = reference_agent(fql_path)
    done = np.array(data.terminals, np.float32)
    dataset = dataset_cls.create(
        observations=np.array(data.observations, np.float32),
        actions=np.array(data.actions, np.float32),
        rewards=np.array(data.rewards, np.float32),
        terminals=done,
        masks=1.0 - done,
        next_observations=np.array(data.next_observations, np.float32),
    )
    np.random.seed(0)
    example = dataset.sample(1)
    agent = agent_cls.create(0, example["observations"], example["actions"], config)
    started = time.perf_counter()
    batches = [dataset.sample(config["batch_size"]) for _ in range(pool)]
    sample_ms = 1e3 * (time.perf_counter() - started) / pool
    carry = {"agent": agent, "calls": 0}

    def call() -> int:
        agent = carry["agent"]
        for _ in range(chunk):
            agent, info = agent.update(batches[carry["calls"] % pool])
            carry["calls"] += 1
        jax.block_until_ready((agent, info))
        carry["agent"] = agent
        return chunk

    return call, sample_ms, mismatches(config)


def commit(path: str) -> str | None:
    """The commit checked out at `path`, when it is a git checkout (not an export)."""
    if not (Path(path) / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fql-path", default=os.environ.get("FQL_PATH"),
        help="a checkout of github.com/seohongpark/fql (default: $FQL_PATH)",
    )  # fmt: skip
    parser.add_argument(
        "--fql-commit", help="the reference's commit, recorded (default: git's, at --fql-path)"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="per timed measurement")
    parser.add_argument("--repeats", type=int, default=3, help="ours/reference alternations")
    parser.add_argument("--chunk", type=int, default=20, help="updates between waits, each side")
    parser.add_argument("--pool", type=int, default=64, help="reference batches drawn up front")
    parser.add_argument("--json", help="also write the row, machine and versions here")
    args = parser.parse_args(argv)
    if args.fql_path is None:
        print("give --fql-path, a checkout of github.com/seohongpark/fql (or set FQL_PATH)",
              file=sys.stderr)  # fmt: skip
        return 2
    if not (Path(args.fql_path) / "agents" / "fql.py").is_file():
        print(f"no agents/fql.py under --fql-path {args.fql_path}", file=sys.stderr)
        return 2
    try:
        import distrax  # noqa: F401
        import flax  # noqa: F401
        import ml_collections  # noqa: F401
    except ImportError as error:
        print(f"the reference needs flax, distrax and ml_collections: {error}", file=sys.stderr)
        return 2

    loadavg = [os.getloadavg()[0]]
    data = synthetic_data(jr.key(0))
    our_call = ours("fql", data, args.chunk)
    their_call, sample_ms, differ = reference(args.fql_path, data, args.pool, args.chunk)
    for line in differ:
        print(f"warning: sizes differ, {line}", file=sys.stderr)
    our_call()  # warm-up (ours compiled when built; the reference on its first call)
    their_call()
    our_rates, their_rates = [], []
    for _ in range(args.repeats):
        our_rates.append(rate(our_call, args.seconds))
        their_rates.append(rate(their_call, args.seconds))
        print(f"  fql: ours {our_rates[-1]:.2f}/s, reference {their_rates[-1]:.2f}/s", flush=True)
    loadavg.append(os.getloadavg()[0])
    ours_median, theirs_median = statistics.median(our_rates), statistics.median(their_rates)
    row = {
        "name": "fql",
        "ours_updates_per_s": ours_median,
        "reference_updates_per_s": theirs_median,
        "ratio": ours_median / theirs_median,
        "reference_sample_ms": sample_ms,
        "ours_repeats": our_rates,
        "reference_repeats": their_rates,
        "loadavg": loadavg,
    }
    m = machine()
    print(f"\nMedians of {args.repeats} x {args.seconds:g} s, batch 256, 4 x 512 GELU networks.")
    print("\n| FQL update | updates/s | ratio |\n| --- | ---: | ---: |")
    print(f"| spar_eqx `--algo fql` | {ours_median:.2f} | {row['ratio']:.2f}x |")
    print(f"| reference (seohongpark/fql) | {theirs_median:.2f} | 1.00x |")
    print(
        f"\n{m['cpu']}, {m['cores']} cores, JAX {jax.__version__} on {m['jax_backend']}; "
        f"1-min load {loadavg[0]:.2f} at the start, {loadavg[1]:.2f} at the end; "
        f"reference batch sampling {sample_ms:.3f} ms (untimed)."
    )
    if args.json:
        write_record(args.json, "benchmarks/peers_fql.py", [row], argv)
        record = json.loads(Path(args.json).read_text())
        names = ("flax", "distrax", "ml_collections")
        record["versions"].update({name: metadata.version(name) for name in names})
        record["reference"] = {"repository": "github.com/seohongpark/fql"}
        record["reference"]["commit"] = args.fql_commit or commit(args.fql_path)
        Path(args.json).write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
