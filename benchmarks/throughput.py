"""Steady-state updates per second and compile time of every learner, at the paper's sizes.

Each algorithm's update runs through the trainer's own compiled chunk runner
(`spar_eqx._train._chunk.run_chunk`: seeds vmapped, `--chunk` updates per `lax.scan`, batches
drawn on the device) on synthetic data of HalfCheetah's shape (17-d observations, 6-d
actions, 100k transitions), with each algorithm's default sizes (SPAR: 10 critics, 256 units,
batch 256). In the same run it times a plain, hand-written Equinox + Optax Stage I update of the
same size (BC MLP + 10 critics + V), and prints our Stage I's throughput as a ratio of it; and
`reference_full`, the same hand-written update with the rest of Stage I's arithmetic (terminal
masks, expectile weights, the five metrics it reports per step) with every hyperparameter a
Python constant, where ours are arrays a grid can vmap.
With one seed the references have no seed axis at all, as the trainer's one-run chunks have none
(`run_chunk` drops it; rows measured before that change vmapped the references over one seed).

How it is timed. For each seed count, every selected program is compiled first (`compile_s`
is the `lower().compile()` time alone). Then `--repeats` rounds each run one chunk of every
program in turn, so a slow spell of a shared machine falls on all of them alike; a row's rate
is `--chunk` over its median chunk time, and each speed ratio of `SPEED_RATIOS` (Stage I /
reference, a flow row / the same learner without a flow) is the median of the per-round
ratios (each from two chunks of the same round), with a 95% bootstrap interval
over rounds (`_stats.median_interval`; `ratios.py` pools the rounds of several runs).

How close to the hardware. `gflop_per_update` is XLA's own FLOP count of one update (all seeds;
`cost_analysis` of the compiled chunk, whose `lax.scan` body it counts once), `gflops` the rate
that makes at the measured speed, and the header gives this machine's float32 matmul rate
(dependent 256- and 1024-square products under `jax.jit`) to hold it against. Learners with a
`lax.cond` (SPAR-PROJ's periodic projection, TD3+BC's and ReBRAC's delayed actor) get no
count: XLA counts both branches on every pass. A flow's Euler loop (a `fori_loop`) is counted
like the scan, once, whatever its steps: the flow rows' counts are lower bounds.

The flow and FQL rows (`stage1_flow`, `mlp_flow_anchor`, `proj_flow_anchor`, `proj_flow`,
`plas_flow`, `fql`; see `LEARNER_ROWS`) measure what a flow costs per update against the row
without it (Table 11 of the paper is the deployed policy's latency: `latency.py`). FQL runs at
its own defaults (512 x 4 GELU networks, 2 critics, batch 256, 10 flow steps). Its reference
implementation (github.com/seohongpark/fql) publishes no updates-per-second or wall-clock
figure in its README, and we found no such figure in the FQL paper (arXiv 2502.02538) to cite,
so no published number is printed beside the `fql` row: compare it with the other rows of the
same run (or time the reference code on the same machine).

`--profile DIR` writes, for every program, its optimised HLO (`DIR/<name>-<seeds>.hlo.txt`) and
prints an op census beside it (dots, fusions, copies, transposes: where two programs doing the
same maths differ), and records one round in a `jax.profiler` trace under `DIR/trace` (open
the `.trace.json.gz` in Perfetto).

Usage (from the repository root):

    python benchmarks/throughput.py --seeds 1 4 8 --json runs/throughput.json
    python benchmarks/throughput.py --only stage1 reference --seeds 4 --profile runs/profile

Rows: `{"name", "seeds", "updates_per_s", "seed_updates_per_s", "compile_s",
"gflop_per_update", "gflops"}` (an update updates every seed, so `seed_updates_per_s =
updates_per_s * seeds`), then one row per seed count and reference `{"name":
"stage1/reference" (or "stage1/reference_full"), "seeds", "ratio", "ratio_interval",
"round_ratios"}`, and
one `{"name": "matmul", "gflops": {"256": x, "1024": y}}`.
"""

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from _flops import MATMUL_SIZES, matmul_gflops, op_census, program_gflop
from _record import write_record
from _stats import median_interval

from spar_eqx import ALGORITHMS, TrainingBatch
from spar_eqx._hyper import replace
from spar_eqx._learner import hyperparameter_arrays
from spar_eqx._train._chunk import init_states, run_chunk, stack
from spar_eqx.data import Transitions

_FLOW_ANCHOR = {"anchor.base_policy": "flow"}
# A learner row: (algorithm, hyperparameter overrides, stage timed). A Stage II row starts
# from Stage I's initial state. The flow rows: `stage1_flow` trains a flow anchor (flow
# matching, no integration: Stage I bootstraps from V); `mlp_flow_anchor` and
# `proj_flow_anchor` are Stage II on it, where every update integrates `pi_base(s)` for the
# whole batch (10 Euler steps inside the compiled update); `proj_flow` and `plas_flow` use
# the flow residual generator (`--generator flow`) on the default anchor.
LEARNER_ROWS: dict[str, tuple[str, dict[str, Any], int]] = {
    "stage1": ("spar", {}, 0),
    "stage1_flow": ("spar", _FLOW_ANCHOR, 0),
    "mlp": ("spar", {"residual.variant": "mlp"}, 1),
    "mlp_flow_anchor": ("spar", {**_FLOW_ANCHOR, "residual.variant": "mlp"}, 1),
    "proj": ("spar", {"residual.variant": "proj"}, 1),
    "proj_flow_anchor": ("spar", {**_FLOW_ANCHOR, "residual.variant": "proj"}, 1),
    "proj_flow": ("spar", {"residual.variant": "proj", "residual.generator": "flow"}, 1),
    "plas": ("spar", {"residual.variant": "plas"}, 1),
    "plas_flow": ("spar", {"residual.variant": "plas", "residual.generator": "flow"}, 1),
    "bc": ("bc", {}, 0),
    "iql": ("iql", {}, 0),
    "td3bc": ("td3bc", {}, 0),
    "rebrac": ("rebrac", {}, 0),
    "fql": ("fql", {}, 0),
}
NAMES = ("reference", "reference_full", "stage1", "stage1_const", *list(LEARNER_ROWS)[1:])
OBS, ACT, ROWS = 17, 6, 100_000


def synthetic_data(key) -> TrainingBatch:
    k1, k2, k3, k4 = jr.split(key, 4)
    t = Transitions(
        observations=jr.normal(k1, (ROWS, OBS)),
        actions=jnp.tanh(jr.normal(k2, (ROWS, ACT))),
        rewards=jr.normal(k3, (ROWS,)),
        next_observations=jr.normal(k4, (ROWS, OBS)),
        terminals=jnp.zeros((ROWS,), bool),
        timeouts=jnp.zeros((ROWS,), bool),
    )
    return TrainingBatch.from_transitions(t)


def _learner_and_states(name: str, seeds: int):
    """`(stacked learner, states, batch size)` for a row name.

    `stage1_const` is Stage I with its hyperparameters left as Python floats instead of
    stacked arrays: XLA folds them as constants, as in a library without vmappable grids.
    """
    if name == "stage1_const":
        config = ALGORITHMS["spar"].config()
        anchor = ALGORITHMS["spar"].build(config, OBS, ACT)[0]
        keys = jax.vmap(jr.key)(jnp.arange(seeds))
        return anchor, init_states(anchor, keys), config.batch_size
    algorithm, overrides, stage = LEARNER_ROWS[name]
    algo = ALGORITHMS[algorithm]
    config = replace(algo.config(), overrides) if overrides else algo.config()
    learners = [stack([hyperparameter_arrays(lr)] * seeds) for lr in algo.build(config, OBS, ACT)]
    keys = jax.vmap(jr.key)(jnp.arange(seeds))
    states = init_states(learners[0], keys)
    if stage == 1:
        states = init_states(learners[1], keys, states)
    return learners[stage], states, config.batch_size


class Program(NamedTuple):
    """One row's compiled chunk: `step(state, i) -> state` runs chunk `i` and waits for it."""

    name: str
    seeds: int
    step: Any
    state: Any
    compile_s: float
    gflop_per_update: float | None
    compiled: Any  # the jax.stages.Compiled, for --profile


def learner_program(name: str, seeds: int, data, chunk: int) -> Program:
    learner, states, batch_size = _learner_and_states(name, seeds)
    keys = jax.vmap(jr.key)(jnp.arange(seeds))
    # SPAR-PLAS: its second (latent policy) phase; every other learner has one phase.
    phase = 1 if name.startswith("plas") else 0
    static = dict(stage_steps=2 * chunk, phase=phase, num_steps=chunk, batch_size=batch_size)
    started = time.perf_counter()
    compiled = run_chunk.lower(learner, states, data, keys, **static).compile()
    compile_s = time.perf_counter() - started

    def step(states, i):
        step_keys = jax.vmap(lambda k: jr.fold_in(k, i))(keys)
        out = compiled(learner, states, data, step_keys, **static)
        jax.block_until_ready(out)
        return out[0]

    xla = compiled.compiled
    return Program(name, seeds, step, states, compile_s, program_gflop(xla), xla)


# ---------------------------------------------------------------- the plain reference


def _mlp(key, din, dout):
    return eqx.nn.MLP(din, dout, 256, 2, activation=jax.nn.relu, key=key)


def reference_init(key):
    kp, kq, kv = jr.split(key, 3)
    policy = _mlp(kp, OBS, ACT)
    critics = eqx.filter_vmap(lambda k: _mlp(k, OBS + ACT, "scalar"))(jr.split(kq, 10))
    value = _mlp(kv, OBS, "scalar")
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-4))
    params = (policy, critics, critics, value)
    opt_states = tuple(
        opt.init(eqx.filter(m, eqx.is_inexact_array)) for m in (policy, critics, value)
    )
    return params, opt_states


def reference_step(params, opt_states, batch, full: bool = False):
    """BC + 10 critics on r + 0.99 V(s') + V by expectile 0.5 on the target critics' mean.

    `full` adds what Stage I computes beyond that, written as plainly: the terminal mask of the
    bootstrap, expectile weights in both regressions (the library's losses, with `tau = 0.5`
    as constants), and the five metrics Stage I reports every step.
    """
    policy, critics, target, value = params
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-4))
    obs, act, rew, nxt, term = batch

    def q_all(c, o, a):
        return eqx.filter_vmap(lambda m: jax.vmap(m)(jnp.concatenate([o, a], -1)))(c)

    def weighted(diff):  # the expectile loss at tau = 0.5: half the squared error
        return jnp.mean(jnp.where(diff < 0, 0.5, 0.5) * diff**2)

    def bc(p):
        return jnp.mean(jnp.sum((jnp.tanh(jax.vmap(p)(obs)) - act) ** 2, -1))

    not_done = 1.0 - term.astype(jnp.float32) if full else 1.0
    y = jax.lax.stop_gradient(rew + 0.99 * not_done * jax.vmap(value)(nxt))

    def critic_loss(c):
        q = q_all(c, obs, act)
        if full:
            return 2.0 * q.shape[0] * weighted((y[None] - q).ravel()), q
        return jnp.sum(jnp.mean((q - y) ** 2, -1)), q

    def value_loss(v):
        q = jax.lax.stop_gradient(jnp.mean(q_all(target, obs, act), 0))
        diff = q - jax.vmap(v)(obs)
        return weighted(diff) if full else jnp.mean(0.5 * diff**2)

    new, new_opt, losses = [], [], []
    grad_fns = (
        eqx.filter_value_and_grad(bc),
        eqx.filter_value_and_grad(critic_loss, has_aux=True),
        eqx.filter_value_and_grad(value_loss),
    )
    for model, grad_fn, state in zip((policy, critics, value), grad_fns, opt_states, strict=True):
        loss, grads = grad_fn(model)
        updates, state = opt.update(grads, state, eqx.filter(model, eqx.is_inexact_array))
        new.append(eqx.apply_updates(model, updates))
        new_opt.append(state)
        losses.append(loss)
    tau = 0.005
    t_params, static = eqx.partition(target, eqx.is_inexact_array)
    mixed = jax.tree_util.tree_map(
        lambda t, o: (1 - tau) * t + tau * o, t_params, eqx.filter(new[1], eqx.is_inexact_array)
    )
    target = eqx.combine(mixed, static)
    (q_loss, q) = losses[1]
    metrics = {
        "bc_loss": losses[0],
        "q_loss": q_loss,
        "v_loss": losses[2],
        "q_mean": jnp.mean(q),
        "q_std": jnp.mean(jnp.std(q, axis=0)),
    }
    return (new[0], new[1], target, new[2]), tuple(new_opt), (metrics if full else None)


def reference_program(seeds: int, data: TrainingBatch, chunk: int, full: bool = False) -> Program:
    """The hand-written Stage I update, `chunk` of them per `lax.scan`: vmapped over seeds, or
    with one seed written without a seed axis at all, as one would by hand (vmapped over one
    seed, XLA's CPU backend runs some reductions of size-1-led arrays far slower)."""
    keys = jr.split(jr.key(0), seeds)
    if seeds == 1:
        params, opt_states = reference_init(keys[0])
        update = functools.partial(reference_step, full=full)
    else:
        params, opt_states = eqx.filter_vmap(reference_init)(keys)
        update = eqx.filter_vmap(lambda p, o, b: reference_step(p, o, b, full))
    shape = (256,) if seeds == 1 else (seeds, 256)
    arrays = (data.observations, data.actions, data.rewards, data.next_observations)
    arrays += (data.terminals,)
    arrays_in, static = eqx.partition((params, opt_states), eqx.is_array)

    def run(carry, key):
        def body(carry, k):
            p, o = eqx.combine(carry, static)
            index = jr.randint(k, shape, 0, ROWS)
            batch = tuple(x[index] for x in arrays)
            p, o, metrics = update(p, o, batch)
            return eqx.filter((p, o), eqx.is_array), metrics

        return jax.lax.scan(body, carry, jr.split(key, chunk))

    started = time.perf_counter()
    compiled = jax.jit(run).lower(arrays_in, jr.key(0)).compile()
    compile_s = time.perf_counter() - started

    def step(state, i):
        out, metrics = compiled(state, jr.key(i))
        jax.block_until_ready((out, metrics))
        return out

    gflop = program_gflop(compiled)
    name = "reference_full" if full else "reference"
    return Program(name, seeds, step, arrays_in, compile_s, gflop, compiled)


# (row, the row it is compared with): the speed ratio of the two, per round, when both run.
# Stage I against the hand-written references; each flow row against the same learner
# without a flow.
SPEED_RATIOS = (
    ("stage1", "reference"),
    ("stage1", "reference_full"),
    ("stage1_flow", "stage1"),
    ("mlp_flow_anchor", "mlp"),
    ("proj_flow_anchor", "proj"),
    ("proj_flow", "proj"),
    ("plas_flow", "plas"),
)


def run_rounds(programs: list[Program], repeats: int, trace: Path | None) -> dict[str, list]:
    """Each round runs one chunk of every program in turn; returns each one's chunk times."""
    states = {p.name: p.state for p in programs}
    times = {p.name: [] for p in programs}
    for i in range(repeats):
        tracing = trace is not None and i == repeats - 1
        if tracing:
            jax.profiler.start_trace(str(trace), create_perfetto_trace=True)
        for p in programs:
            started = time.perf_counter()
            states[p.name] = p.step(states[p.name], i)
            times[p.name].append(time.perf_counter() - started)
        if tracing:
            jax.profiler.stop_trace()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--chunk", type=int, default=200, help="updates per compiled call")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median kept)")
    parser.add_argument("--profile", metavar="DIR", help="write HLO, op census and a trace here")
    parser.add_argument("--json", help="also write the rows, machine and versions here")
    args = parser.parse_args(argv)
    profile = Path(args.profile) if args.profile else None
    if profile:
        profile.mkdir(parents=True, exist_ok=True)
    data = synthetic_data(jr.key(0))
    matmul = {n: matmul_gflops(n, 2.0) for n in MATMUL_SIZES}
    print(
        "float32 matmul, GFLOP/s: " + ", ".join(f"{r:.0f} at {n}" for n, r in matmul.items()),
        flush=True,
    )
    rows = []
    head = f"{'name':<15}{'seeds':>6}{'updates/s':>11}{'seed-upd/s':>12}{'compile s':>11}"
    print(head + f"{'GFLOP/upd':>11}{'GFLOP/s':>9}")
    for seeds in args.seeds:
        programs = []
        for name in args.only:
            if name.startswith("reference"):
                program = reference_program(seeds, data, args.chunk, name == "reference_full")
            else:
                program = learner_program(name, seeds, data, args.chunk)
            programs.append(program)
            if profile:
                path = profile / f"{name}-{seeds}.hlo.txt"
                path.write_text(program.compiled.as_text())
                print(f"  {path}: {op_census(program.compiled)}", flush=True)
        # One untimed round first: each program's first call also moves its state in.
        run_rounds(programs, 1, None)
        trace = profile / "trace" if profile else None
        times = run_rounds(programs, args.repeats, trace)
        for p in programs:
            rate = args.chunk / statistics.median(times[p.name])
            gflops = None if p.gflop_per_update is None else p.gflop_per_update * rate
            row = {
                "name": p.name,
                "seeds": seeds,
                "updates_per_s": rate,
                "seed_updates_per_s": rate * seeds,
                "compile_s": p.compile_s,
                "gflop_per_update": p.gflop_per_update,
                "gflops": gflops,
            }
            rows.append(row)
            flop_cells = "" if gflops is None else f"{p.gflop_per_update:>11.2f}{gflops:>9.0f}"
            print(
                f"{p.name:<15}{seeds:>6}{rate:>11.1f}{rate * seeds:>12.1f}"
                f"{p.compile_s:>11.1f}" + flop_cells,
                flush=True,
            )
        for name, against in SPEED_RATIOS:
            if name not in times or against not in times:
                continue
            # Speed of `name` over `against`: the other's chunk time over its own, per round.
            pairs = zip(times[against], times[name], strict=True)
            ratios = [a / n for a, n in pairs]
            ratio, low, high = median_interval(ratios)
            rows.append(
                {"name": f"{name}/{against}", "seeds": seeds, "ratio": ratio,
                 "ratio_interval": [low, high], "round_ratios": ratios}
            )  # fmt: skip
            print(
                f"{name} / {against}, {seeds} seed(s): {ratio:.2f}x, 95% interval "
                f"{low:.2f}-{high:.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)})",
                flush=True,
            )
    rows.append({"name": "matmul", "gflops": {str(n): r for n, r in matmul.items()}})
    if args.json:
        write_record(args.json, "benchmarks/throughput.py", rows, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
