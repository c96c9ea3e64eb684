"""The thin trainer: loops, devices, checkpoints, logs and files around the pure stages.

Seeds are a leading axis on every state (one compile for all seeds); each
compiled call runs `log_every` updates in a `lax.scan` that draws batch
indices on the device. PRNG keys are derived from `(seed, phase, step)`, so a
run resumed from a checkpoint continues with exactly the keys, and therefore
the parameters, an uninterrupted run would have had.
"""

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._anchor import Anchor
from ._checkpoint import load_checkpoint, read_header, save_checkpoint
from ._config import critic_subsets
from ._evaluation import env_spaces, evaluate
from ._policy import BasePolicy, PLASResidual, SPARPolicy
from ._rectify_common import FrozenAnchor
from ._rectify_mlp import RectifyMLP
from ._rectify_plas import RectifyPLAS
from ._rectify_proj import RectifyPROJ
from ._run_config import RunConfig
from ._train_log import RunLog
from .data import (
    ObservationNormalizer,
    OfflineDataset,
    Transitions,
    apply_reward_transform,
    default_reward_transform,
    load_dataset,
)

_LEARNERS = {"mlp": RectifyMLP, "proj": RectifyPROJ, "plas": RectifyPLAS}
_LATEST = "latest.eqx"


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss): the message names the stage and step."""


@dataclasses.dataclass(frozen=True)
class Phase:
    """A run of `steps` updates of one pure update function."""

    stage: str
    name: str
    update: Callable
    steps: int


# --------------------------------------------------------------------------- compiled steps


def _is_step(path, leaf) -> bool:
    """Whether `leaf` is a state's `step` counter, which all seeds share."""
    return eqx.is_array(leaf) and getattr(path[-1], "name", None) == "step"


def _seed_axes(tree):
    """vmap axes for a stacked state: 0 on arrays, None on the shared step counter."""

    def axis(path, leaf):
        return 0 if eqx.is_array(leaf) and not _is_step(path, leaf) else None

    return jax.tree_util.tree_map_with_path(axis, tree)


@eqx.filter_jit
def _run_chunk(update, states, data: Transitions, keys, num_steps: int, batch_size: int):
    """`num_steps` updates of every seed; `keys` is `(seeds,)`. Returns per-step metrics."""
    axes = _seed_axes(states)
    n = data.observations.shape[0]

    def per_seed(state, key):
        index_key, update_key = jr.split(key)
        index = jr.randint(index_key, (batch_size,), 0, n)
        batch = jax.tree_util.tree_map(lambda x: x[index], data)
        return update(state, batch, update_key)

    params, static = eqx.partition(states, eqx.is_array)
    vmapped = eqx.filter_vmap(per_seed, in_axes=(axes, 0), out_axes=(axes, 0))

    def body(carry, step_keys):
        new_states, metrics = vmapped(eqx.combine(carry, static), step_keys)
        return eqx.filter(new_states, eqx.is_array), metrics

    step_keys = jax.vmap(lambda k: jr.split(k, num_steps))(keys).swapaxes(0, 1)
    params, metrics = jax.lax.scan(body, params, step_keys)
    return eqx.combine(params, static), metrics


def seed_devices(num_seeds: int) -> int:
    """How many local devices the seed axis is split over (1: no sharding)."""
    count = len(jax.local_devices())
    return count if count > 1 and num_seeds % count == 0 else 1


def _shard_over_seeds(tree, num_seeds: int):
    """Place the seed axis across local devices when there are several and they divide it."""
    devices = jax.local_devices()
    if seed_devices(num_seeds) == 1:
        return tree
    mesh = Mesh(np.asarray(devices), ("seeds",))
    split = NamedSharding(mesh, PartitionSpec("seeds"))
    replicated = NamedSharding(mesh, PartitionSpec())
    axes = _seed_axes(tree)
    return jax.tree_util.tree_map(
        lambda x, a: jax.device_put(x, split if a == 0 else replicated) if eqx.is_array(x) else x,
        tree,
        axes,
        is_leaf=lambda x: x is None,
    )


def _unshared_step(states):
    """Seeds share one step counter: drop its seed axis."""

    def fix(path, leaf):
        return leaf.reshape(-1)[0] if _is_step(path, leaf) else leaf

    return jax.tree_util.tree_map_with_path(fix, states)


# --------------------------------------------------------------------------- the run


class Trainer:
    """Runs Stage I -> Stage II -> Stage III evaluation for this process's seeds.

    With `process_count` processes, process `p` runs the contiguous seeds
    `[p * k, (p + 1) * k)`, `k = seeds / process_count`. Every key derives from
    the global seed id, so a seed's bits do not depend on how seeds are split.
    """

    def __init__(
        self,
        config: RunConfig,
        out: Path,
        *,
        progress: bool = True,
        process_index: int = 0,
        process_count: int = 1,
    ):
        if config.seeds % process_count:
            raise ValueError(
                f"--seeds {config.seeds} cannot be split evenly over {process_count} processes; "
                "use a multiple of the number of processes."
            )
        self.config = config
        self.out = Path(out)
        self.progress = progress
        self.process_index, self.process_count = process_index, process_count
        k = config.seeds // process_count
        self.seed_ids = tuple(range(process_index * k, (process_index + 1) * k))
        self.num_local = k
        self.ckpt_dir = self.out / "checkpoints"

    # ---- data

    def prepare_data(self) -> None:
        c = self.config
        dataset: OfflineDataset = load_dataset(c.dataset)
        env_id = c.env_id or dataset.env_id
        obs_dim, act_dim, low, high = env_spaces(env_id)
        t = dataset.transitions
        if (t.obs_dim, t.act_dim) != (obs_dim, act_dim):
            raise ValueError(
                f"dataset {dataset.name!r} has {t.obs_dim}-d observations and {t.act_dim}-d "
                f"actions but {env_id} has {obs_dim} and {act_dim}; pass the env the data "
                "came from with --env."
            )
        if not (np.allclose(low, -1.0) and np.allclose(high, 1.0)):
            raise ValueError(
                f"{env_id}'s action space is [{low}, {high}]; SPAR's policies act in [-1, 1] "
                "(Table 7), so use an environment with a normalised action space."
            )
        transform = c.reward_transform or default_reward_transform(env_id)
        dataset = apply_reward_transform(dataset, transform)
        self.dataset, self.env_id, self.reward_transform = dataset, env_id, transform
        self.normalizer = ObservationNormalizer.from_transitions(dataset.transitions)
        t = dataset.transitions
        self.data = Transitions(
            observations=jax.vmap(self.normalizer)(t.observations),
            actions=t.actions,
            rewards=t.rewards,
            next_observations=jax.vmap(self.normalizer)(t.next_observations),
            terminals=t.terminals,
            timeouts=t.timeouts,
        )
        self.obs_dim, self.act_dim = obs_dim, act_dim

    # ---- learners and phases

    def build(self) -> None:
        c = self.config
        self.anchor = Anchor(c.anchor, self.obs_dim, self.act_dim)
        data_idx, guide_idx, gate_idx = critic_subsets(
            c.anchor.num_critics,
            c.residual.data_critics,
            c.residual.guide_critics,
            c.gate.gate_critics,
        )
        self.gate_idx = gate_idx
        self.learner = _LEARNERS[c.residual.variant](c.residual, data_idx, guide_idx)
        self.phases = [Phase("stage1", "anchor", self.anchor.update, c.stage1_steps)] + [
            Phase("stage2", name, fn, steps)
            for name, fn, steps in self.learner.phases(c.stage2_steps)
        ]
        self.seed_keys = jax.vmap(jr.key)(jnp.asarray(self.seed_ids))

    def _init_stage1(self):
        keys = jax.vmap(lambda k: jr.fold_in(k, 0))(self.seed_keys)
        return _unshared_step(eqx.filter_vmap(self.anchor.init)(keys))

    def _init_stage2(self, stage1_states):
        frozen = FrozenAnchor(stage1_states.policy, stage1_states.critic)
        keys = jax.vmap(lambda k: jr.fold_in(k, 1))(self.seed_keys)
        return _unshared_step(eqx.filter_vmap(self.learner.init)(frozen, keys))

    def _skeleton(self, phase_index: int):
        stage1 = self._init_stage1()
        return stage1 if self.phases[phase_index].stage == "stage1" else self._init_stage2(stage1)

    def _chunk_keys(self, phase_index: int, step: int):
        return jax.vmap(lambda k: jr.fold_in(jr.fold_in(k, 100 + phase_index), step))(
            self.seed_keys
        )

    # ---- checkpoints

    def _save(self, name: str, phase_index: int, step: int, states, log: RunLog) -> None:
        header = {
            "phase": phase_index,
            "step": step,
            "config": self.config.to_dict(),
            "log": log.to_json(),
        }
        save_checkpoint(self.ckpt_dir / name, header, states)

    def _restore(self):
        path = self.ckpt_dir / _LATEST
        header = read_header(path)
        if header["config"] != self.config.to_dict():
            raise ValueError(
                f"{path} was written by a run with a different configuration; resume with the "
                "same options, or start afresh in an empty folder."
            )
        _, states = load_checkpoint(path, self._skeleton(header["phase"]))
        return header["phase"], header["step"], states, RunLog.from_json(header["log"])

    # ---- evaluation

    def _policies(self, stage2_states):
        """Stacked (seed axis 0) base, SPAR and no-gate policies."""
        variant = self.config.residual.variant

        def build(state):
            residual = {
                "mlp": lambda: state.residual,
                "proj": lambda: state.cvae,
                "plas": lambda: PLASResidual(state.latent_policy, state.cvae),
            }[variant]()
            critic = state.anchor.critic.select(self.gate_idx)
            return SPARPolicy(
                self.normalizer, state.anchor.policy, residual, critic, self.config.gate
            )

        axes = _seed_axes(stage2_states)
        spar = eqx.filter_vmap(build, in_axes=(axes,))(stage2_states)
        return {"base": spar.base_only(), "spar": spar, "spar_no_gate": spar.without_gate()}

    def evaluate_policies(self, policies: dict[str, eqx.Module], seed: int) -> dict[str, Any]:
        """Per local seed: mean return and mean normalised score (or None) of each policy.

        Seed `s` plays episodes with env seeds `seed + s * episodes + e`, whatever
        process it runs in.
        """
        c, k = self.config, self.num_local
        out = {}
        for name, policy in policies.items():
            result = evaluate(
                SeedStacked(policy, self.seed_ids),
                self.env_id,
                k * c.eval_episodes,
                seed + self.seed_ids[0] * c.eval_episodes,
                key=jr.key(seed),
                reference=self.dataset.reference,
                max_episode_steps=c.eval_max_episode_steps,
            )
            returns = result.returns.reshape(k, c.eval_episodes).mean(axis=1)
            scores = None if result.scores is None else result.scores.reshape(k, -1).mean(axis=1)
            out[name] = (returns, scores)
        return out

    def gate_acceptance(self, spar: SPARPolicy) -> list[float]:
        """Per seed: the fraction of dataset states on which the gate used the residual."""
        obs = self.dataset.transitions.observations
        take = np.linspace(0, obs.shape[0] - 1, min(self.config.acceptance_states, obs.shape[0]))
        obs = obs[np.round(take).astype(np.int64)]
        keys = jax.vmap(lambda s: jr.fold_in(jr.key(12345), s))(jnp.asarray(self.seed_ids))
        accepted = eqx.filter_vmap(lambda p, k: p.act_batch(obs, k)[1])(spar, keys)
        return [float(x) for x in np.asarray(accepted).mean(axis=1)]

    # ---- main loop

    def run(self, *, resume: bool = False) -> dict[str, Any]:
        c = self.config
        started = time.perf_counter()
        self.prepare_data()
        self.build()
        if resume and (self.ckpt_dir / _LATEST).exists():
            phase_index, step, states, log = self._restore()
        else:
            phase_index, step, states, log = 0, 0, self._init_stage1(), RunLog()
        states = _shard_over_seeds(states, self.num_local)
        bar = _progress(sum(p.steps for p in self.phases), self.progress)
        bar.update(sum(p.steps for p in self.phases[:phase_index]) + step)

        for index in range(phase_index, len(self.phases)):
            phase = self.phases[index]
            if index > phase_index or step == 0:
                step = 0
                if phase.stage == "stage2" and self.phases[index - 1].stage == "stage1":
                    save_checkpoint(self.ckpt_dir / "stage1.eqx", {"phase": index - 1}, states)
                    states = _shard_over_seeds(self._init_stage2(states), self.num_local)
            offset = sum(p.steps for p in self.phases[:index])
            while step < phase.steps:
                size = min(c.log_every, phase.steps - step)
                states, metrics = _run_chunk(
                    phase.update,
                    states,
                    self.data,
                    self._chunk_keys(index, step),
                    size,
                    c.batch_size,
                )
                metrics = {k: np.asarray(v) for k, v in metrics.items()}
                _check_finite(metrics, phase, step, self.ckpt_dir / _LATEST, self.seed_ids)
                step += size
                log.add_losses(phase.stage, phase.name, offset + step, self.seed_ids, metrics)
                if c.eval_every and step % c.eval_every == 0 and step < phase.steps:
                    self._periodic_eval(states, phase, offset + step, log)
                if step % c.checkpoint_every == 0 or step == phase.steps:
                    self._save(_LATEST, index, step, states, log)
                bar.update(size)
                bar.set_postfix(log.postfix(), refresh=False)
            if phase.stage == "stage1":
                self._periodic_eval(states, phase, offset + step, log)
        bar.close()
        save_checkpoint(self.ckpt_dir / "stage2.eqx", {"phase": len(self.phases) - 1}, states)
        results = self.final_results(states, log, time.perf_counter() - started)
        log.write(self.out, results)
        return results

    def _periodic_eval(self, states, phase: Phase, step: int, log: RunLog) -> None:
        if phase.stage == "stage1":
            # Built under vmap so that the shared normaliser gets the seed axis too.
            policy = eqx.filter_vmap(lambda p: BasePolicy(self.normalizer, p))(states.policy)
            name = "base"
        else:
            if phase.name == "cvae":  # SPAR-PLAS phase 1 has no latent policy yet.
                return
            policy = self._policies(states)["spar"]
            name = "spar"
        result = self.evaluate_policies({name: policy}, seed=10_000)
        returns, scores = result[name]
        for i, seed in enumerate(self.seed_ids):
            log.add_eval(
                phase.stage,
                name,
                step,
                seed,
                returns[i],
                None if scores is None else scores[i],
            )

    def final_results(self, states, log: RunLog, seconds: float) -> dict[str, Any]:
        c = self.config
        policies = self._policies(states)
        evaluated = self.evaluate_policies(policies, seed=10_000)
        total = sum(p.steps for p in self.phases)
        for name, (returns, scores) in evaluated.items():
            for i, seed in enumerate(self.seed_ids):
                log.add_eval(
                    "final",
                    name,
                    total,
                    seed,
                    returns[i],
                    None if scores is None else scores[i],
                )
        return {
            "dataset": self.dataset.name,
            "env_id": self.env_id,
            "variant": c.residual.variant,
            "seeds": list(range(c.seeds)),
            "processes": self.process_count,
            "stage1_steps": c.stage1_steps,
            "stage2_steps": c.stage2_steps,
            "wall_clock_seconds": seconds,
            "reward_transform": self.reward_transform,
            "devices": [str(d) for d in jax.devices()],
            "seed_sharding": seed_devices(self.num_local),
            "config": c.to_dict(),
            "scores": {
                name: None if scores is None else _gather(scores)
                for name, (_, scores) in evaluated.items()
            },
            "returns": {name: _gather(returns) for name, (returns, _) in evaluated.items()},
            "gate_acceptance": _gather(self.gate_acceptance(policies["spar"])),
        }


def _gather(values) -> list[float]:
    """This process's per-seed values, concatenated over processes in seed order."""
    values = np.asarray(values, np.float64)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        values = np.asarray(multihost_utils.process_allgather(values)).reshape(-1)
    return [float(x) for x in values]


class SeedStacked(eqx.Module):
    """A policy stacked over seeds, acting on `seeds * episodes` observations at once.

    Observation `i` belongs to the `i // episodes`-th seed; one jitted call serves
    all seeds, so a vector env of every seed's episodes steps in lockstep. Seed
    `s` acts with `fold_in(key, s)`.
    """

    policy: eqx.Module
    seed_ids: tuple[int, ...] = eqx.field(static=True)

    @eqx.filter_jit
    def __call__(self, observations, key):
        num = len(self.seed_ids)
        obs = observations.reshape(num, -1, observations.shape[-1])
        keys = jax.vmap(lambda s: jr.fold_in(key, s))(jnp.asarray(self.seed_ids))
        actions = eqx.filter_vmap(lambda p, o, k: p(o, k))(self.policy, obs, keys)
        return actions.reshape(observations.shape[0], -1)


def _check_finite(metrics, phase: Phase, step: int, checkpoint: Path, seed_ids) -> None:
    for name, values in metrics.items():
        bad = ~np.isfinite(values)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            seed = seed_ids[column]
            stage = "Stage I" if phase.stage == "stage1" else f"Stage II ({phase.name})"
            kept = (
                f"the last good checkpoint is {checkpoint}"
                if checkpoint.exists()
                else "no checkpoint had been written yet"
            )
            raise TrainingError(
                f"non-finite {name} ({values[row, column]}) at {stage}, step {step + row + 1} "
                f"of {phase.steps}, seed {seed}; training stopped and {kept}. Lower the learning "
                "rate or check the dataset for extreme values."
            )


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="step", dynamic_ncols=True, smoothing=0.1)


def output_folder_problem(out: Path, resume: bool) -> str | None:
    """Why `out` cannot take a new run (None when it can)."""
    if out.exists() and not out.is_dir():
        return f"{out} exists and is not a folder"
    if out.exists() and any(out.iterdir()) and not resume:
        return (
            f"{out} is not empty; pass --resume to continue the run in it, "
            "or choose an empty folder"
        )
    probe = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not os.access(probe, os.W_OK):
        return f"{probe} is not writable"
    return None


def train(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    coordinator: str | None = None,
    num_processes: int = 1,
    process_id: int = 0,
):
    """Run SPAR end to end and write `results.json`, `metrics.csv`, a plot and checkpoints.

    With `num_processes > 1`, this call is one of several processes started with
    the same arguments and their own `process_id`, which meet at `coordinator`
    (`host:port`) through `jax.distributed`. Each process trains its share of the
    seeds and writes into `out/process-<id>/`; process 0 gathers every seed's
    scores into `out/results.json`.

    **Returns:** the results dictionary (every seed's, in every process).
    """
    out = Path(out)
    if num_processes > 1:
        if coordinator is None:
            raise ValueError(
                "a multi-process run needs --coordinator HOST:PORT for jax.distributed."
            )
        if not 0 <= process_id < num_processes:
            raise ValueError(f"--process-id must lie in [0, {num_processes}), got {process_id}.")
        jax.distributed.initialize(coordinator, num_processes, process_id)
    run_dir = out if num_processes == 1 else out / f"process-{process_id}"
    problem = output_folder_problem(run_dir, resume)
    if problem:
        raise ValueError(problem)
    run_dir.mkdir(parents=True, exist_ok=True)
    for folder in {out, run_dir}:
        (folder / "config.json").write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True))
    trainer = Trainer(
        config, run_dir, progress=progress, process_index=process_id, process_count=num_processes
    )
    results = trainer.run(resume=resume)
    if num_processes > 1 and process_id == 0:
        (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def load_trained(out: str | Path):
    """Rebuild a finished run's trainer and its final Stage II states, stacked over all seeds.

    Works for single- and multi-process runs (the processes' seeds are concatenated).
    """
    out = Path(out)
    config = RunConfig.from_dict(json.loads((out / "config.json").read_text()))
    trainer = Trainer(config, out, progress=False)
    trainer.prepare_data()
    trainer.build()
    parts = sorted(out.glob("process-*"), key=lambda p: int(p.name.split("-")[1]))
    folders = parts or [out]
    states = []
    for index, folder in enumerate(folders):
        part = Trainer(
            config, folder, progress=False, process_index=index, process_count=len(folders)
        )
        part.obs_dim, part.act_dim = trainer.obs_dim, trainer.act_dim  # the data, loaded once
        part.build()
        path = part.ckpt_dir / "stage2.eqx"
        if not path.exists():
            raise ValueError(
                f"{out} holds no finished run ({path} is missing); train it to the end first."
            )
        states.append(load_checkpoint(path, part._skeleton(len(part.phases) - 1))[1])
    axes = _seed_axes(states[0])
    merged = jax.tree_util.tree_map(
        lambda a, *xs: jnp.concatenate(xs) if a == 0 else xs[0],
        axes,
        *states,
        is_leaf=lambda x: x is None,
    )
    return trainer, merged
