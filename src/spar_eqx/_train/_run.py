"""The run loop: data, learners and phases, for any registered algorithm (checkpoints and
resume in `_resume`, evaluation in `_evaluate`).

Runs (grid points x seeds) are a leading axis on every state and learner (one compile
for all of them); each compiled call runs `log_every` updates in a `lax.scan` that
draws batch indices on the device. PRNG keys are derived from `(seed, phase, step)`,
so a run resumed from a checkpoint continues with exactly the keys, and therefore the
parameters, an uninterrupted run would have had; and every grid point trains with the
keys of the plain run of the same seed. Grid points whose learners agree up to a stage
that is not the last share that stage's runs (`_sharing`): a sweep of Stage II's
hyperparameters trains Stage I once per seed.
"""

import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._errors import Interrupted, TrainingError
from .._hyper import replace
from .._learner import Learner, Phase, hyperparameter_arrays
from .._run_config import RunConfig
from ._checkpoint import save_checkpoint
from ._chunk import gather_runs, init_states, run_chunk, shard_runs, stack
from ._data import prepare
from ._estimate import LONG_RUN_SECONDS, FirstChunkEstimate
from ._evaluate import RunEvaluation
from ._fingerprint import dataset_fingerprint
from ._interrupt import progress_bar, stop_at_chunk_boundary
from ._log import RunLog
from ._loggers import RunLoggers
from ._memory import available_bytes, memory_shortfall, tree_bytes
from ._results import gather
from ._resume import LATEST, RunCheckpoints
from ._sharing import StageRuns, parent_runs, stage_runs


class Step(NamedTuple):
    """One phase of one stage, with its place in the whole run."""

    stage: int  # index into the algorithm's stages
    index: int  # index of the phase within its stage
    phase: Phase


class Trainer(RunEvaluation, RunCheckpoints):
    """Runs every stage of `config.algo` for this process's seeds and every grid point.

    With `process_count` processes, process `p` runs the contiguous seeds
    `[p * k, (p + 1) * k)`, `k = seeds / process_count`. Every key derives from
    the global seed id, so a seed's keys do not depend on how seeds are split.
    """

    def __init__(
        self,
        config: RunConfig,
        out: Path,
        *,
        progress: bool = True,
        process_index: int = 0,
        process_count: int = 1,
        loggers: tuple[str, ...] = (),
    ):
        if config.seeds % process_count:
            raise ValueError(
                f"--seeds {config.seeds} cannot be split evenly over {process_count} processes; "
                "use a multiple of the number of processes."
            )
        self.config = config
        self.algorithm = config.algorithm
        self.out = Path(out)
        self.progress = progress
        self.process_index, self.process_count = process_index, process_count
        k = config.seeds // process_count
        self.seed_ids = tuple(range(process_index * k, (process_index + 1) * k))
        self.num_local = k
        self.grid = config.grid()
        self.num_runs = len(self.grid) * k
        # Run r is grid point r // k trained with local seed r % k.
        self.run_seeds = tuple(self.seed_ids[r % k] for r in range(self.num_runs))
        self.run_labels = [self._label(r // k, self.run_seeds[r]) for r in range(self.num_runs)]
        self.ckpt_dir = self.out / "checkpoints"
        # What the first stage decided for the later ones (`Algorithm.resolve`), once known.
        self.hyperparameters = config.hyperparameters
        self.resolution: dict[str, Any] | None = None
        self.fingerprint: str | None = None  # of the training data, once loaded
        # The run folder whose first stage this run took (`--stage1-from`), or None.
        self.first_stage_from: str | None = None
        # A run longer than this on a CPU says how long after its first timed chunk.
        self.long_run_seconds = LONG_RUN_SECONDS
        self.loggers = tuple(loggers)  # beside metrics.csv: "tensorboard", "wandb"
        self._run_loggers: RunLoggers | None = None

    # ---- data

    def prepare_data(self) -> None:
        """Load, check and normalise the dataset (`_data.prepare`); sets the data attributes."""
        prepared = prepare(self.config, self.algorithm.reward_convention)
        self.dataset, self.environment = prepared.dataset, prepared.environment
        self.env_id = self.dataset.env_id
        self.reward_transform, self.normalizer = prepared.reward_transform, prepared.normalizer
        self.data, self.obs_dim, self.act_dim = prepared.data, prepared.obs_dim, prepared.act_dim
        self.rescaled_from = prepared.rescaled_from
        self.fingerprint = dataset_fingerprint(prepared.dataset)
        if self.rescaled_from is not None:
            low, high = self.rescaled_from
            print(
                f"spar-eqx: --rescale-actions: the dataset's actions are mapped from [{low}, "
                f"{high}] onto {self.env_id}'s action space.",
                file=sys.stderr,
            )

    # ---- learners and phases

    def build(self) -> None:
        """The learners of every stage, stacked over the stage's runs (group-major, see
        `stage_layouts`), and the phases.

        An algorithm whose later stages depend on its first (`Algorithm.unresolved`) gets
        only its first stage here; `resolve` builds the rest once that stage has trained.
        """
        per_point = [
            self.algorithm.build(hyper, self.obs_dim, self.act_dim) for _, hyper in self.grid
        ]
        k = self.num_local
        self.stage_layouts: list[StageRuns] = stage_runs(per_point, len(self.algorithm.stages))
        stacked = []
        for stage, layout in enumerate(self.stage_layouts):
            # One learner per group, each repeated for its k runs (run g * k + j is group g).
            groups = stack([hyperparameter_arrays(per_point[p][stage]) for p in layout.points])
            stacked.append(jax.tree_util.tree_map(lambda x: jnp.repeat(x, k, axis=0), groups))
        self.learners: list[Learner] = stacked
        template = per_point[0]
        self.steps = [
            Step(stage, index, phase)
            for stage, learner in enumerate(template)
            for index, phase in enumerate(learner.phases(self.config.steps[stage]))
        ]
        self.run_keys = jax.vmap(jr.key)(jnp.asarray(self.run_seeds))

    def check_memory(self) -> None:
        """Refuse a run whose arrays cannot fit in the memory of the devices that hold them
        (`memory_shortfall`), before its folder exists; stages not built yet
        (`Algorithm.unresolved`) are not counted. Raises `ValueError` naming the sizes."""
        available = available_bytes(jax.local_devices())
        if available is None:
            return
        stages = range(len(self.learners))
        problem = memory_shortfall(
            [tree_bytes(self.skeleton(stage)) for stage in stages],
            [self.stage_runs(stage) for stage in stages],
            tree_bytes(self.data),
            available,
            seeds=self.config.seeds,
            grid_points=len(self.grid),
        )
        if problem:
            raise ValueError(problem)

    def resolve(self, states) -> None:
        """Let the finished first stage decide the later ones (`Algorithm.resolve`), then
        build them."""
        overrides, record = self.algorithm.resolve(states, self.data, gather)
        self.apply_resolution({"overrides": overrides, **record})

    def apply_resolution(self, resolution: dict[str, Any]) -> None:
        """Build the later stages with `resolution["overrides"]` (from `resolve`, or from a
        checkpoint's header on resume)."""
        self.resolution = resolution
        self.override(resolution["overrides"])

    def override(self, overrides: dict[str, Any]) -> None:
        """Rebuild every stage's learners with `overrides` (field paths such as
        `"gate.eta_rel"`) applied at every grid point. Raises `ValueError` for an unknown
        path or a value the config refuses, before anything changes."""
        hyperparameters = replace(self.hyperparameters, overrides)
        grid = [(params, replace(hyper, overrides)) for params, hyper in self.grid]
        self.hyperparameters, self.grid = hyperparameters, grid
        self.build()

    def stage_runs(self, stage: int) -> int:
        """How many runs `stage` trains in this process: its groups of grid points (one per
        grid point unless grid points share it) times the local seeds."""
        return self.stage_layouts[stage].runs(self.num_local)

    def init_keys(self, stage: int):
        """Every run's key for `stage`'s initialisation (a function of the run's seed)."""
        runs = self.run_keys[: self.stage_runs(stage)]  # run r's seed is seed_ids[r % k]
        return jax.vmap(lambda k: jr.fold_in(k, stage))(runs)

    def init_stage(self, stage: int, previous=None):
        """Fresh states of `stage`'s runs; from stage 1 on, each continues from its run of
        the previous stage (`previous`, stacked over that stage's runs)."""
        if previous is not None:
            layouts = self.stage_layouts
            index = parent_runs(layouts[stage - 1], layouts[stage], self.num_local)
            previous = gather_runs(previous, jnp.asarray(index))
        return init_states(self.learners[stage], self.init_keys(stage), previous)

    def skeleton(self, stage: int):
        """The structure, shapes and dtypes of `stage`'s states (to deserialise a checkpoint
        into), traced abstractly: no initialiser runs and no array is allocated."""

        def build():
            states = self.init_stage(0)
            for s in range(1, stage + 1):
                states = self.init_stage(s, states)
            return states

        return eqx.filter_eval_shape(build)

    def chunk_keys(self, step_index: int, step: int):
        """Every run's key for the chunk of phase `step_index` that starts at update `step`.

        A pure function of the run's seed, the phase and the step, so a resumed run, or a
        command that replays Stage I (`spar-eqx diagnose`), draws the same batches.
        """
        runs = self.run_keys[: self.stage_runs(self.steps[step_index].stage)]
        return jax.vmap(lambda k: jr.fold_in(jr.fold_in(k, 100 + step_index), step))(runs)

    # ---- main loop

    def run(self, *, resume: bool = False, restored=None) -> dict[str, Any]:
        """Train every phase (from the last checkpoint with `resume`, or from `restored`, what
        `restore_if_any` returned), evaluate, write results.

        A first Ctrl-C or SIGTERM stops after the current chunk with a checkpoint (`--resume`
        continues from it) and raises `Interrupted` (a `KeyboardInterrupt`); a second stops at
        once.
        """
        started = time.perf_counter()
        if not hasattr(self, "data"):
            self.prepare_data()
        if not hasattr(self, "learners"):
            self.build()
        # A killed write's temporary files (`atomic_write` names them `.NAME.XXXX`); the run
        # lock is held, so no other process is writing them.
        leftovers = [*self.ckpt_dir.glob(".*.eqx.*")]
        for name in ("metrics.csv", "learning_curve.png", "results.json"):
            leftovers += self.out.glob(f".{name}.*")
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        if restored is None and resume:
            restored = self.restore_if_any()
        if restored is not None:
            start, step, states, log = restored
        else:
            start, step, states, log = 0, 0, self.init_stage(0), RunLog()
        states = shard_runs(states, self.stage_runs(self.steps[start].stage))
        total = sum(self.config.steps)  # every stage, including any not built yet
        bar = progress_bar(total, self.progress)
        bar.update(sum(s.phase.steps for s in self.steps[:start]) + step)
        if self.loggers:  # a resumed run's earlier rows are in its loggers' files already
            self._run_loggers = RunLoggers(self.loggers, self.out, self.config.to_dict(), log)
        try:
            with stop_at_chunk_boundary(self.last_checkpoint) as stop_requested:
                states = self._loop(start, step, states, log, bar, stop_requested)
            stages = len(self.algorithm.stages)
            save_checkpoint(
                self.ckpt_dir / f"stage{stages}.eqx",
                self._header(phase=len(self.steps) - 1),
                states,
            )
            record, evaluated = self.final_record(states)
            self._log_evaluations(log, "final", total, evaluated)
            self._forward(log)
        finally:
            bar.close()
            if self._run_loggers is not None:
                self._run_loggers.close()
        results = self.results_header(time.perf_counter() - started) | record
        log.write(self.out, results)
        return results

    def _forward(self, log: RunLog) -> None:
        """Hand the log's new rows to the optional loggers (`--logger`)."""
        if self._run_loggers is not None:
            self._run_loggers.update(log)

    def _loop(self, start: int, step: int, states, log: RunLog, bar, stop_requested):
        """Every phase from phase `start`, update `step`, on; returns the final states."""
        c = self.config
        stage_names = self.algorithm.stages
        learners = self._sharded_learners()
        total = sum(c.steps)
        estimate = FirstChunkEstimate(total, jax.default_backend(), self.long_run_seconds)
        i = start - 1
        while (i := i + 1) < len(self.steps):  # a resolution adds the later stages' steps
            stage, _, phase = self.steps[i]
            if i > start or step == 0:
                step = 0
                if i > 0 and self.steps[i - 1].stage != stage:
                    save_checkpoint(
                        self.ckpt_dir / f"stage{stage}.eqx", self._header(phase=i - 1), states
                    )
                    states = shard_runs(self.init_stage(stage, states), self.stage_runs(stage))
            offset = sum(s.phase.steps for s in self.steps[:i])
            chunks = self.phase_chunks(i, step, states, learners[stage])
            every_run = self.stage_layouts[stage].expand(self.num_local)
            for states, metrics, size in chunks:
                metrics = {name: values[:, every_run] for name, values in metrics.items()}
                self._check_finite(metrics, i, step)
                step += size
                log.add_losses(
                    stage_names[stage], phase.name, offset + step, self.run_labels, metrics,
                    phase.sparse_metrics,
                )  # fmt: skip
                if c.eval_every and step % c.eval_every == 0 and step < phase.steps:
                    if phase.evaluate:
                        self._periodic_eval(stage, states, offset + step, log, periodic=True)
                stop = stop_requested()
                if stop or step % c.checkpoint_every == 0 or step == phase.steps:
                    self._save(LATEST, i, step, states, log)
                bar.update(size)
                bar.set_postfix(log.postfix(), refresh=False)
                self._forward(log)
                message = estimate.tick(size, total - offset - step)
                if message:
                    bar.write(message, file=sys.stderr)
                if stop:
                    raise Interrupted(stop, self.last_checkpoint())
            last_of_stage = i + 1 == len(self.steps) or self.steps[i + 1].stage != stage
            if last_of_stage and stage + 1 < len(stage_names):
                self._periodic_eval(stage, states, offset + step, log, periodic=False)
                if i + 1 == len(self.steps):  # the later stages wait for this one's verdict
                    self.resolve(states)
                    learners = self._sharded_learners()
        return states

    def phase_chunks(self, step_index: int, step: int, states, learners=None):
        """Train phase `step_index` from update `step` to its end, one chunk (`log_every`
        updates) at a time.

        **Arguments:** `step_index`, an index into `self.steps`; `step`, the phase's updates
        already made; `states`, every run's states at that point; `learners`, the stage's
        stacked learners (default: `self.learners` of the phase's stage).

        **Yields:** `(states, metrics, size)` after each chunk: the new states, the chunk's
        per-step metrics as NumPy arrays `(size, runs)`, and its number of updates. The
        caller logs, checks, saves or stops between chunks; the keys depend only on the run,
        the phase and the step (`chunk_keys`), so any caller draws the same batches.
        """
        c = self.config
        stage, index, phase = self.steps[step_index]
        learners = self.learners[stage] if learners is None else learners
        while step < phase.steps:
            size = min(c.log_every, phase.steps - step)
            states, metrics = run_chunk(
                learners,
                states,
                self.data,
                self.chunk_keys(step_index, step),
                stage_steps=c.steps[stage],
                phase=index,
                num_steps=size,
                batch_size=c.batch_size,
            )
            yield states, {k: np.asarray(v) for k, v in metrics.items()}, size
            step += size

    def _sharded_learners(self):
        return [shard_runs(lr, self.stage_runs(s), jax.tree_util.tree_map(lambda _: 0, lr))
                for s, lr in enumerate(self.learners)]  # fmt: skip

    def last_checkpoint(self) -> str | None:
        """The checkpoint `--resume` would continue from, if one has been written."""
        latest = self.ckpt_dir / LATEST
        return str(latest) if latest.exists() else None

    def _check_finite(self, metrics, step_index: int, step: int) -> None:
        stage, _, phase = self.steps[step_index]
        checkpoint = self.ckpt_dir / LATEST
        for name, values in metrics.items():
            bad = ~np.isfinite(values)
            if bad.any():
                row, column = np.argwhere(bad)[0]
                label = self.run_labels[column]
                where = ", ".join(f"{k} {v}" for k, v in label.items())
                kept = (
                    f"the last good checkpoint is {checkpoint}"
                    if checkpoint.exists()
                    else "no checkpoint had been written yet"
                )
                raise TrainingError(
                    f"non-finite {name} ({values[row, column]}) in {self.algorithm.name} "
                    f"{self.algorithm.stages[stage]} ({phase.name}), step {step + row + 1} of "
                    f"{phase.steps}, {where}; training stopped and {kept}. Lower the learning "
                    "rate or check the dataset for extreme values."
                )
