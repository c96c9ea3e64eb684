"""Our BC, IQL and TD3+BC updates timed beside d3rlpy's, on the same CPU and the same data.

Ours run exactly as `benchmarks/throughput.py` runs them: the trainer's compiled chunk runner
(`spar_eqx._train._chunk.run_chunk`, 1 seed, `--chunk` updates per `lax.scan`, batch indices
drawn on the device) on throughput.py's synthetic data of HalfCheetah's shape (17-d
observations, 6-d actions, 100k rows), with each learner's default config. d3rlpy (2.x, eager
PyTorch on the CPU: its `compile_graph` only acts on CUDA) gets a `MDPDataset` built from the
same arrays and the same sizes: batch 256, every network two hidden layers of 256 ReLU units
(`VectorEncoderFactory(hidden_units=[256, 256])`), Adam at 3e-4, 2 critics for IQL and TD3+BC.

What is timed on d3rlpy's side is `algo.update(batch)` alone (the numpy-to-torch conversion of
the batch, the gradient steps and the target updates), cycling through a pool of batches drawn
beforehand with `ReplayBuffer.sample_transition_batch`: `fit` would add its per-step logging,
progress bar and metric bookkeeping, which are not update cost. Sampling a batch is reported
apart (`d3rlpy_sample_ms`); `fit` pays it on every step, ours draws its batch inside the
compiled update, so the ratio is, if anything, generous to d3rlpy. Each algorithm is built and
warmed up (ours compiled) first, then ours and d3rlpy's are timed in turn `--repeats` times for
`--seconds` each, and the medians are kept.

PyTorch's thread count: on a 2-core machine that other processes share, PyTorch's default
(one OpenMP thread per core) can be 5-50x slower than one thread, as its threads wait on each
other at every operator. So each repeat's `--seconds` of d3rlpy are split between the thread
counts of `--torch-threads` (default: 1 and all cores) and the faster is kept: a best-of that
favours d3rlpy. JAX keeps its default thread pool.

Where the two updates differ (each the library's own algorithm, at matched sizes):

- BC: same deterministic tanh policy and MSE loss (d3rlpy's defaults, batch 100 and lr 1e-3,
  are overridden to ours).
- IQL: d3rlpy takes the V and critic steps together on one optimiser (the critics' target
  from V before the step), then the actor with the new V; ours steps V, then the actor, then
  the critics, both with the new V (the authors' order). d3rlpy, being eager, runs the target
  critics at (s, a) twice (V's loss and the actor's weights), ours once. d3rlpy's actor is a
  Gaussian with a state-independent log std (a 6-unit head); ours is tanh-squashed with a
  state-dependent log std (a 12-unit head). Both decay the actor's rate with a cosine
  schedule.
- TD3+BC: same algorithm (policy delay 2, smoothing 0.2 / 0.5, alpha 2.5). d3rlpy's actor
  loss back-propagates into the critics' weights too (then discards those gradients); ours
  stops them, so the critic is only differentiated with respect to its action input.

The FLOP limit. Every network here is an MLP of two hidden layers of 256 units, whose forward
pass costs `2 (d_in 256 + 256 256 + 256 d_out)` FLOPs per row in its matmuls (about 0.14
MFLOP). A forward-and-backward pass counts as 3 forwards, a forward plus the gradient with
respect to the input only (the frozen critic under the TD3+BC actor) as 2, and identical
passes are counted once. Per update, in forward-pass units:

- BC: policy trained (3).
- IQL: V trained (3), V forward at s for the actor and at s' for the critics' target (2),
  2 critics trained (6), 2 target critics forward at (s, a) (2), actor trained (3).
- TD3+BC: target actor at s' (1), 2 target critics at (s', a') (2), 2 critics trained (6);
  every second update the actor trained (3) through critic 1 (2), so 2.5 per update.

times batch 256 (IQL: 0.59 GFLOP, TD3+BC: 0.42, BC: 0.11). Adam, Polyak averaging and the
losses are elementwise and left out. XLA's own `cost_analysis` of one compiled update agrees
(BC 0.109, IQL 0.583; TD3+BC 0.513, which is the critic step plus a whole actor step: it counts
both branches of the `lax.cond`). The script measures this CPU's sustained JAX matmul rate
in every repeat, beside the two updates (a jitted `fori_loop` of dependent 256x256 @ 256x256
and 1024x1024 @ 1024x1024 float32 products, 1 s each; the median over repeats of each, and the
better of the two sizes), and `flop_limit_updates_per_s = rate / FLOPs per update`: the speed
an update would have if it were nothing but its matmuls at that rate.

Usage (from the repository root; d3rlpy comes from the `peers` extra, best in its own
virtualenv, since it pulls in PyTorch):

    python -m venv /work/peers-venv
    /work/peers-venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    /work/peers-venv/bin/pip install -e '.[peers]'
    /work/peers-venv/bin/python benchmarks/peers.py --json benchmarks/results/peers_cpu.json

Rows: `{"name", "ours_updates_per_s", "d3rlpy_updates_per_s", "ratio",
"flop_limit_updates_per_s", "fraction_of_limit"}` (ratio = ours / d3rlpy; fraction = ours /
limit), plus the inputs to them: `gflop_per_update`, `matmul_gflops`, `d3rlpy_sample_ms`, every
repeat's rates, the PyTorch thread count of d3rlpy's best in each, and `loadavg` (the 1-minute
load average when the row started: the machine may be shared)."""

import argparse
import json
import logging
import os
import statistics
import sys
import time
from importlib import metadata
from itertools import pairwise
from pathlib import Path

import jax.random as jr
import numpy as np
from _flops import MATMUL_SIZES, matmul_gflops
from _record import write_record
from throughput import ACT, OBS, learner_program, synthetic_data

from spar_eqx import ALGORITHMS

NAMES = ("bc", "iql", "td3bc")
INSTALL = (
    "install the peers extra: pip install torch --index-url "
    "https://download.pytorch.org/whl/cpu && pip install -e '.[peers]' "
    "(best in a separate virtualenv), then run this script with that Python"
)
EPISODE = 1000  # d3rlpy's buffer is cut into HalfCheetah-length episodes (timeouts)
MATMUL_SECONDS = 1.0  # per size, in every repeat


# ---------------------------------------------------------------- FLOPs and the matmul rate


def mlp_flops(d_in: int, d_out: int, width: int, depth: int) -> int:
    """Matmul FLOPs of one row through an MLP of `depth` hidden layers of `width` units."""
    sizes = [d_in, *[width] * depth, d_out]
    return sum(2 * a * b for a, b in pairwise(sizes))


def update_flops(name: str) -> float:
    """FLOPs of one update's matmuls (see the module docstring for the pass counts)."""
    config = ALGORITHMS[name].config()
    w, d, batch = config.width, config.depth, config.batch_size
    policy = mlp_flops(OBS, ACT, w, d)
    if name == "bc":
        return batch * 3 * policy
    critic = mlp_flops(OBS + ACT, 1, w, d)
    n = config.num_critics
    if name == "iql":
        value = mlp_flops(OBS, 1, w, d)
        actor = mlp_flops(OBS, 2 * ACT, w, d)  # mean and log std heads
        return batch * (5 * value + 4 * n * critic + 3 * actor)
    if name == "td3bc":
        per_critic_step = policy + 4 * n * critic
        per_actor_step = 3 * policy + 2 * critic
        return batch * (per_critic_step + per_actor_step / config.policy_delay)
    raise ValueError(name)


# ---------------------------------------------------------------- the two sides


def ours(name: str, data, chunk: int):
    """A function running one compiled chunk of `chunk` updates (state carried over): the
    program `throughput.py` times for 1 seed."""
    program = learner_program(name, 1, data, chunk)
    carry = {"state": program.state, "calls": 0}

    def call() -> int:
        carry["state"] = program.step(carry["state"], carry["calls"])
        carry["calls"] += 1
        return chunk

    return call


def d3rlpy_dataset(data):
    import d3rlpy

    rows = data.observations.shape[0]
    timeouts = np.zeros(rows, np.float32)
    timeouts[EPISODE - 1 :: EPISODE] = 1.0
    return d3rlpy.dataset.MDPDataset(
        observations=np.asarray(data.observations, np.float32),
        actions=np.asarray(data.actions, np.float32),
        rewards=np.asarray(data.rewards, np.float32),
        terminals=np.zeros(rows, np.float32),
        timeouts=timeouts,
    )


def d3rlpy_config(name: str):
    """d3rlpy's config of `name` at our config's sizes and rates."""
    import d3rlpy

    ours_config = ALGORITHMS[name].config()
    encoder = d3rlpy.models.VectorEncoderFactory(
        hidden_units=[ours_config.width] * ours_config.depth, activation="relu"
    )
    batch = ours_config.batch_size
    if name == "bc":
        return d3rlpy.algos.BCConfig(
            batch_size=batch,
            learning_rate=ours_config.learning_rate,
            policy_type="deterministic",
            encoder_factory=encoder,
        )
    if name == "iql":
        cosine = d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=1_000_000)
        return d3rlpy.algos.IQLConfig(
            batch_size=batch,
            actor_learning_rate=ours_config.learning_rate,
            critic_learning_rate=ours_config.learning_rate,
            actor_optim_factory=d3rlpy.optimizers.AdamFactory(lr_scheduler_factory=cosine),
            actor_encoder_factory=encoder,
            critic_encoder_factory=encoder,
            value_encoder_factory=encoder,
            n_critics=ours_config.num_critics,
            gamma=ours_config.gamma,
            tau=ours_config.polyak,
            expectile=ours_config.expectile,
            weight_temp=ours_config.temperature,
            max_weight=ours_config.max_weight,
        )
    if name == "td3bc":
        return d3rlpy.algos.TD3PlusBCConfig(
            batch_size=batch,
            actor_learning_rate=ours_config.actor_learning_rate,
            critic_learning_rate=ours_config.critic_learning_rate,
            actor_encoder_factory=encoder,
            critic_encoder_factory=encoder,
            n_critics=ours_config.num_critics,
            gamma=ours_config.gamma,
            tau=ours_config.polyak,
            target_smoothing_sigma=ours_config.policy_noise,
            target_smoothing_clip=ours_config.noise_clip,
            alpha=ours_config.alpha,
            update_actor_interval=ours_config.policy_delay,
        )
    raise ValueError(name)


def theirs(name: str, dataset, pool: int):
    """`(one d3rlpy update, mean ms to sample one batch)`, on a pool of batches drawn first."""
    algo = d3rlpy_config(name).create(device="cpu:0")
    algo.build_with_dataset(dataset)
    started = time.perf_counter()
    batches = [dataset.sample_transition_batch(algo.config.batch_size) for _ in range(pool)]
    sample_ms = 1e3 * (time.perf_counter() - started) / pool
    carry = {"calls": 0}

    def call() -> int:
        algo.update(batches[carry["calls"] % pool])
        carry["calls"] += 1
        return 1

    return call, sample_ms


def best_threads(call, candidates: list[int], seconds: float) -> tuple[float, int]:
    """`(updates/s, thread count)` of `call` at its fastest PyTorch thread count.

    Each count in `candidates` is timed for `seconds / len(candidates)`.
    """
    import torch

    rates = {}
    for threads in candidates:
        torch.set_num_threads(threads)
        call()
        rates[threads] = rate(call, seconds / len(candidates))
    best = max(rates, key=rates.__getitem__)
    return rates[best], best


def rate(call, seconds: float) -> float:
    """Updates per second of `call` (returning the updates it made) over about `seconds`."""
    updates, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        updates += call()
    return updates / elapsed


# ---------------------------------------------------------------- main


def import_peers(script: str):
    """PyTorch, with d3rlpy imported and its logging quietened; None (and a line on stderr
    telling how to install them) when they are not installed."""
    try:
        import d3rlpy  # noqa: F401
        import torch
    except ImportError:
        print(f"{script} needs d3rlpy and PyTorch: {INSTALL}", file=sys.stderr)
        return None
    _quiet_d3rlpy()
    return torch


def _quiet_d3rlpy() -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def add_peer_versions(path: str, **fields) -> None:
    """Add d3rlpy's and PyTorch's versions, and any other top-level `fields`, to the record
    `write_record` wrote at `path`."""
    record = json.loads(Path(path).read_text())
    record["versions"].update({name: metadata.version(name) for name in ("d3rlpy", "torch")})
    record.update(fields)
    Path(path).write_text(json.dumps(record, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--seconds", type=float, default=10.0, help="per timed measurement")
    parser.add_argument("--repeats", type=int, default=3, help="ours/d3rlpy alternations")
    parser.add_argument("--chunk", type=int, default=100, help="our updates per compiled call")
    parser.add_argument("--pool", type=int, default=64, help="d3rlpy batches drawn up front")
    parser.add_argument(
        "--torch-threads", type=int, nargs="+",
        help="PyTorch thread counts to try for d3rlpy, fastest kept (default: 1 and all cores)",
    )  # fmt: skip
    parser.add_argument("--json", help="also write the rows, machine and versions here")
    args = parser.parse_args(argv)
    torch = import_peers("peers.py")
    if torch is None:
        return 2
    candidates = args.torch_threads or sorted({1, torch.get_num_threads()})

    data = synthetic_data(jr.key(0))
    dataset = d3rlpy_dataset(data)
    print(f"torch {torch.__version__}, trying {candidates} thread(s) for d3rlpy", flush=True)
    header = f"{'name':<7}{'ours/s':>9}{'d3rlpy/s':>10}{'ratio':>7}{'limit/s':>9}{'of limit':>10}"
    rows = []
    for name in args.only:
        loadavg = os.getloadavg()[0]
        our_call = ours(name, data, args.chunk)
        their_call, sample_ms = theirs(name, dataset, args.pool)
        our_call()  # warm-up (compiled when built)
        for _ in range(10):
            their_call()
        our_rates, their_rates, their_threads, matmul_rates = [], [], [], []
        for _ in range(args.repeats):
            our_rates.append(rate(our_call, args.seconds))
            their_rate, threads = best_threads(their_call, candidates, args.seconds)
            their_rates.append(their_rate)
            their_threads.append(threads)
            matmul_rates.append({n: matmul_gflops(n, MATMUL_SECONDS) for n in MATMUL_SIZES})
            print(
                f"  {name}: ours {our_rates[-1]:.1f}/s, d3rlpy {their_rates[-1]:.1f}/s "
                f"(torch on {threads} thread(s)), JAX matmul GFLOP/s "
                + ", ".join(f"{r:.0f} at {n}" for n, r in matmul_rates[-1].items()),
                flush=True,
            )
        matmul = {n: statistics.median(r[n] for r in matmul_rates) for n in MATMUL_SIZES}
        flops = update_flops(name)
        limit = max(matmul.values()) * 1e9 / flops
        ours_median, theirs_median = statistics.median(our_rates), statistics.median(their_rates)
        rows.append(
            {
                "name": name,
                "ours_updates_per_s": ours_median,
                "d3rlpy_updates_per_s": theirs_median,
                "ratio": ours_median / theirs_median,
                "flop_limit_updates_per_s": limit,
                "fraction_of_limit": ours_median / limit,
                "gflop_per_update": flops / 1e9,
                "matmul_gflops": {str(n): r for n, r in matmul.items()},
                "d3rlpy_sample_ms": sample_ms,
                "d3rlpy_torch_threads": their_threads,
                "ours_repeats": our_rates,
                "d3rlpy_repeats": their_rates,
                "loadavg": loadavg,
            }
        )
    print(header)
    for r in rows:
        print(
            f"{r['name']:<7}{r['ours_updates_per_s']:>9.1f}{r['d3rlpy_updates_per_s']:>10.1f}"
            f"{r['ratio']:>6.2f}x{r['flop_limit_updates_per_s']:>9.0f}"
            f"{r['fraction_of_limit']:>10.0%}"
        )
    if args.json:
        write_record(args.json, "benchmarks/peers.py", rows, argv)
        add_peer_versions(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
