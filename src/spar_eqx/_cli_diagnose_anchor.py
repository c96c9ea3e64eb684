"""The anchor `spar-eqx diagnose` looks at: a finished run's Stage I, read from its checkpoint,
or a Stage I fitted here with the trainer's own data preparation and chunk runner; and the
residuals and Q values it gives on dataset rows."""

import functools
import os
import time
from pathlib import Path
from typing import Any

from ._errors import TrainingError, UserError

_BATCH = 4096  # states per call when evaluating the anchor and critics


def anchor_run(run_dir: Path) -> tuple[Any, Path, int]:
    """The run configuration, Stage I checkpoint and process count of a SPAR run folder."""
    from ._train._api import stored_config

    try:
        config = stored_config(
            run_dir,
            "give the folder of a `spar-eqx train` SPAR run, or drop --anchor to fit "
            "an anchor here.",
        )
    except ValueError as error:
        raise UserError(f"--anchor {error}") from None
    if config.algo != "spar":
        raise UserError(
            f"--anchor {run_dir} is a {config.algo} run, which has no SPAR Stage I anchor; "
            "give a run trained with --algo spar, or drop --anchor to fit an anchor here."
        )
    parts = sorted(run_dir.glob("process-*"), key=lambda p: p.name)
    folder = run_dir / "process-0" if parts else run_dir
    checkpoint = folder / "checkpoints" / "stage1.eqx"
    if not checkpoint.is_file():
        raise UserError(
            f"--anchor {run_dir} has no Stage I checkpoint ({checkpoint} is missing; it is "
            "written when Stage I ends); let its training reach Stage II, or drop --anchor to "
            "fit an anchor here."
        )
    return config, checkpoint, max(len(parts), 1)


@functools.cache
def compiled():
    """The compiled functions of this command, built once per process (and cached by JAX)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from ._train._chunk import init_states

    def evaluate(policy, critic, normalizer, obs, act):
        obs = normalizer(obs)
        return act - jax.vmap(policy)(obs), jnp.mean(jax.vmap(critic)(obs, act), axis=-1)

    return eqx.filter_jit(init_states), eqx.filter_jit(evaluate)


def stage1_states(trainer, *, shapes_only: bool = False):
    """Fresh Stage I states of every run, as `trainer.init_stage(0)` builds them, compiled.

    (The trainer builds them op by op, which takes tens of seconds on two CPU cores; one
    compiled call is faster, and is compiled once per process. With `shapes_only`, only their
    shapes and dtypes: the skeleton a checkpoint is read into, at no cost.)
    """
    import equinox as eqx

    from ._train._chunk import init_states

    keys = trainer.init_keys(0)
    if shapes_only:
        return eqx.filter_eval_shape(init_states, trainer.learners[0], keys)
    return compiled()[0](trainer.learners[0], keys)


def first_run(states):
    """The state of run 0 of states stacked over runs (the shared step counter as is)."""
    from ._train._chunk import gather_runs

    return gather_runs(states, 0)


def load_anchor(plan):
    """`(trainer, anchor_state, info)` from --anchor's Stage I checkpoint; `plan` is
    `_cli_diagnose`'s checked options."""
    from ._train import Trainer
    from ._train._checkpoint import load_checkpoint
    from ._train._fingerprint import dataset_problem

    folder = plan.checkpoint.parent.parent
    trainer = Trainer(
        plan.run_config, folder, progress=False, process_index=0, process_count=plan.process_count
    )
    try:
        trainer.prepare_data()
        trainer.build()
        header, states = load_checkpoint(plan.checkpoint, stage1_states(trainer, shapes_only=True))
        recorded = header.get("dataset_fingerprint")
        problem = dataset_problem(
            recorded, trainer.fingerprint, plan.checkpoint, plan.run_config.dataset
        )
        if problem:
            raise ValueError(problem)
    except ValueError as error:  # the run's dataset, environment or checkpoint: CheckpointError
        raise UserError(f"--anchor {plan.anchor}: {error}") from None
    info = {
        "source": "run",
        "run_dir": str(plan.anchor.resolve()),
        "checkpoint": str(plan.checkpoint.resolve()),
        "seed": trainer.run_seeds[0],
        "steps": plan.run_config.steps[0],
        "hidden": plan.run_config.hyperparameters.anchor.width,
    }
    if trainer.grid[0][0]:
        info["grid_point"] = trainer.grid[0][0]
    return trainer, first_run(states), info


def fit_anchor(plan, seed: int, quiet: bool):
    """`(trainer, anchor_state, info)`: Stage I fitted here with the trainer's chunk runner, as
    `plan.run_config` (`_cli_diagnose`'s checked options) and `seed` say."""
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np
    from tqdm.auto import tqdm

    from ._train import Trainer

    config = plan.run_config
    # The trainer prepares the data and builds the learners; nothing is written (its folder
    # is never used: this loop saves no checkpoint and runs no evaluation).
    trainer = Trainer(config, Path(os.devnull), progress=False)
    try:
        trainer.prepare_data()
        trainer.build()
    except ValueError as error:  # DatasetError included
        raise UserError(str(error)) from None
    trainer.run_keys = jax.vmap(jr.key)(jnp.asarray([seed]))  # seed `seed`'s keys, as in train
    states = stage1_states(trainer)
    started, losses = time.perf_counter(), {}
    total = config.steps[0]
    with tqdm(total=total, disable=quiet, unit="step", desc="Stage I anchor",
              dynamic_ncols=True) as bar:  # fmt: skip
        for index, step in enumerate(trainer.steps):
            if step.stage != 0:
                break
            done = 0
            for chunk_states, losses, size in trainer.phase_chunks(index, 0, states):
                states = chunk_states
                for name, values in losses.items():
                    if not np.all(np.isfinite(values)):
                        raise TrainingError(
                            f"non-finite {name} while fitting the anchor (Stage I), step "
                            f"{done + int(np.argmin(np.isfinite(values).all(axis=1))) + 1} of "
                            f"{total}; check the dataset for extreme values, or give a trained "
                            "run with --anchor."
                        )
                done += size
                bar.update(size)
                bar.set_postfix(bc_loss=f"{losses['bc_loss'][-1, 0]:.4f}", refresh=False)
    info = {
        "source": "fitted",
        "seed": seed,
        "steps": total,
        "hidden": config.hyperparameters.anchor.width,
        "final_bc_loss": float(losses["bc_loss"][-1, 0]),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return trainer, first_run(states), info


def residuals_and_q(state, normalizer, observations, actions):
    """`(a - pi_base(s), mean_i Q_i(s, a))` as NumPy arrays, in batches of `_BATCH` states.

    **Arguments:** `state`, an `AnchorState` (one run); `normalizer`, the run's observation
    normaliser; `observations`, `actions`: raw dataset rows.

    **Returns:** float64 residuals `(n, act_dim)` and Q values `(n,)`.
    """
    import numpy as np

    evaluate = compiled()[1]
    parts = [
        evaluate(state.policy, state.critic, normalizer, observations[i : i + _BATCH],
                 actions[i : i + _BATCH])
        for i in range(0, observations.shape[0], _BATCH)
    ]  # fmt: skip
    residuals = np.concatenate([np.asarray(r, np.float64) for r, _ in parts])
    q = np.concatenate([np.asarray(v, np.float64) for _, v in parts])
    return residuals, q
