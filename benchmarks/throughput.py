"""Steady-state updates per second and compile time of every learner, at the paper's sizes.

Each algorithm's update runs through the trainer's own compiled chunk runner
(`spar_eqx._train._chunk.run_chunk`: seeds vmapped, `--chunk` updates per `lax.scan`, batches
drawn on the device) on synthetic data of HalfCheetah's shape (17-d observations, 6-d
actions, 100k transitions), with each algorithm's default sizes (SPAR: 10 critics, 256 units,
batch 256). In the same run it times a plain, hand-written Equinox + Optax Stage I update of the
same size (BC MLP + 10 critics + V), and prints our Stage I's throughput as a ratio of it.

Usage (from the repository root):

    python benchmarks/throughput.py --seeds 1 4 8 --json runs/throughput.json
    python benchmarks/throughput.py --only stage1 iql --seeds 1

Rows: `{"name", "seeds", "updates_per_s", "seed_updates_per_s", "compile_s"}`; an update
updates every seed, so `seed_updates_per_s = updates_per_s * seeds`. `compile_s` is the first
chunk's time less what the same chunk takes once compiled.
"""

import argparse
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from _record import write_record

from spar_eqx import ALGORITHMS, TrainingBatch
from spar_eqx._hyper import replace
from spar_eqx._learner import hyperparameter_arrays
from spar_eqx._train._chunk import init_states, run_chunk, stack
from spar_eqx.data import Transitions

NAMES = ("reference", "stage1", "mlp", "proj", "plas", "bc", "iql", "td3bc", "rebrac")
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
    """`(stacked learner, states, batch size)` for a row name."""
    if name in ("stage1", "mlp", "proj", "plas"):
        algo = ALGORITHMS["spar"]
        config = algo.config()
        if name != "stage1":
            config = replace(config, {"residual.variant": name})
    else:
        algo = ALGORITHMS[name]
        config = algo.config()
    learners = [stack([hyperparameter_arrays(lr)] * seeds) for lr in algo.build(config, OBS, ACT)]
    keys = jax.vmap(jr.key)(jnp.arange(seeds))
    states = init_states(learners[0], keys)
    stage = 0
    if name in ("mlp", "proj", "plas"):
        states = init_states(learners[1], keys, states)
        stage = 1
    return learners[stage], states, config.batch_size


def time_learner(name: str, seeds: int, data, chunk: int) -> dict:
    learner, states, batch_size = _learner_and_states(name, seeds)
    keys = jax.vmap(jr.key)(jnp.arange(seeds))
    # SPAR-PLAS: its second (latent policy) phase; every other learner has one phase.
    phase = 1 if name == "plas" else 0

    def call(states, step):
        step_keys = jax.vmap(lambda k: jr.fold_in(k, step))(keys)
        out = run_chunk(
            learner, states, data, step_keys,
            stage_steps=2 * chunk, phase=phase, num_steps=chunk, batch_size=batch_size,
        )  # fmt: skip
        jax.block_until_ready(out)
        return out[0]

    return _measure(name, seeds, call, states, chunk)


def _measure(name, seeds, call, states, chunk) -> dict:
    started = time.perf_counter()
    states = call(states, 0)
    first = time.perf_counter() - started
    best = float("inf")
    for repeat in range(2):
        started = time.perf_counter()
        states = call(states, repeat + 1)
        best = min(best, time.perf_counter() - started)
    rate = chunk / best
    return {
        "name": name,
        "seeds": seeds,
        "updates_per_s": rate,
        "seed_updates_per_s": rate * seeds,
        "compile_s": max(0.0, first - best),
    }


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


def reference_step(params, opt_states, batch):
    """BC + 10 critics on r + 0.99 V(s') + V by expectile 0.5 on the target critics' mean."""
    policy, critics, target, value = params
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-4))
    obs, act, rew, nxt = batch

    def q_all(c, o, a):
        return eqx.filter_vmap(lambda m: jax.vmap(m)(jnp.concatenate([o, a], -1)))(c)

    def bc(p):
        return jnp.mean(jnp.sum((jnp.tanh(jax.vmap(p)(obs)) - act) ** 2, -1))

    def critic_loss(c):
        y = jax.lax.stop_gradient(rew + 0.99 * jax.vmap(value)(nxt))
        return jnp.sum(jnp.mean((q_all(c, obs, act) - y) ** 2, -1))

    def value_loss(v):
        q = jax.lax.stop_gradient(jnp.mean(q_all(target, obs, act), 0))
        diff = q - jax.vmap(v)(obs)
        return jnp.mean(0.5 * diff**2)

    new, new_opt = [], []
    losses = (bc, critic_loss, value_loss)
    for model, loss, state in zip((policy, critics, value), losses, opt_states, strict=True):
        grads = eqx.filter_grad(loss)(model)
        updates, state = opt.update(grads, state, eqx.filter(model, eqx.is_inexact_array))
        new.append(eqx.apply_updates(model, updates))
        new_opt.append(state)
    tau = 0.005
    t_params, static = eqx.partition(target, eqx.is_inexact_array)
    mixed = jax.tree_util.tree_map(
        lambda t, o: (1 - tau) * t + tau * o, t_params, eqx.filter(new[1], eqx.is_inexact_array)
    )
    target = eqx.combine(mixed, static)
    return (new[0], new[1], target, new[2]), tuple(new_opt)


def time_reference(seeds: int, data: TrainingBatch, chunk: int) -> dict:
    keys = jr.split(jr.key(0), seeds)
    params, opt_states = eqx.filter_vmap(reference_init)(keys)
    arrays = (data.observations, data.actions, data.rewards, data.next_observations)

    arrays_in, static = eqx.partition((params, opt_states), eqx.is_array)

    @eqx.filter_jit
    def run(carry, key):
        def body(carry, k):
            p, o = eqx.combine(carry, static)
            index = jr.randint(k, (seeds, 256), 0, ROWS)
            batch = tuple(x[index] for x in arrays)
            return eqx.filter(eqx.filter_vmap(reference_step)(p, o, batch), eqx.is_array), None

        carry, _ = jax.lax.scan(body, carry, jr.split(key, chunk))
        return carry

    def call(state, step):
        out = run(state, jr.key(step))
        jax.block_until_ready(out)
        return out

    return _measure("reference", seeds, call, arrays_in, chunk)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--chunk", type=int, default=500, help="updates per compiled call")
    parser.add_argument("--json", help="also write the rows, machine and versions here")
    args = parser.parse_args(argv)
    data = synthetic_data(jr.key(0))
    rows = []
    print(f"{'name':<10}{'seeds':>6}{'updates/s':>12}{'seed-updates/s':>16}{'compile s':>11}")
    for seeds in args.seeds:
        for name in args.only:
            if name == "reference":
                row = time_reference(seeds, data, args.chunk)
            else:
                row = time_learner(name, seeds, data, args.chunk)
            rows.append(row)
            print(
                f"{name:<10}{seeds:>6}{row['updates_per_s']:>12.1f}"
                f"{row['seed_updates_per_s']:>16.1f}{row['compile_s']:>11.1f}",
                flush=True,
            )
    for seeds in args.seeds:
        ref = [r for r in rows if r["name"] == "reference" and r["seeds"] == seeds]
        ours = [r for r in rows if r["name"] == "stage1" and r["seeds"] == seeds]
        if ref and ours:
            ratio = ours[0]["updates_per_s"] / ref[0]["updates_per_s"]
            print(f"Stage I / plain reference, {seeds} seed(s): {ratio:.2f}x")
    if args.json:
        write_record(args.json, "benchmarks/throughput.py", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
