"""`train` and `load_trained`: the Python entry points of the trainer."""

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

from .._run_config import RunConfig
from ._checkpoint import atomic_write, load_checkpoint, read_header
from ._chunk import run_axes
from ._fingerprint import absolute_dataset, dataset_problem
from ._folder import (
    CHECKPOINTS,
    CONFIG,
    LOCK,
    check_resumed_config,
    contents,
    discard_start,
    make_folders,
    output_folder_problem,
    run_lock,
    stored_config,
)
from ._loggers import check_loggers
from ._rendezvous import host_lobby, join_lobby, run_token, split_address
from ._resume import LATEST
from ._reuse import first_stage_from
from ._run import Trainer


def train(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    coordinator: str | None = None,
    num_processes: int = 1,
    process_id: int = 0,
    coordinator_timeout: int = 300,
    loggers: tuple[str, ...] = (),
    stage1_from: str | Path | None = None,
):
    """Train `config.algo` end to end and write `results.json`, `metrics.csv`, a plot and
    checkpoints into `out`.

    Every algorithm runs through the same loop: seeds (and, with `config.sweep`, every
    grid point) on one vmapped axis, `config.log_every` updates per compiled call,
    atomic checkpoints, exact resume, and a final evaluation of each deployed policy.

    With `num_processes > 1`, this call is one of several processes started with
    the same arguments and their own `process_id`, which meet at `coordinator`
    (`host:port`) through `jax.distributed`. Each process trains its share of the
    seeds and writes into `out/process-<id>/`; process 0 gathers every seed's
    scores into `out/results.json`.

    **Arguments:**

    - `config`: the `RunConfig`.
    - `out`: the run folder (empty, or a run to continue with `resume=True`).
    - `resume`: continue the run in `out` from `out/checkpoints/latest.eqx` when it exists
      (an empty `out` starts afresh; a folder that is not a run is refused).
    - `progress`: show a progress bar.
    - `coordinator`, `num_processes`, `process_id`: a multi-process run;
      `coordinator_timeout` seconds for every process to join it before each is refused.
    - `stage1_from`: start from the finished first stage of the run in this folder instead
      of training one (`--stage1-from`): its states and log rows are taken, and the run
      evaluates them and trains the later stages. Refused unless that run trained its first
      stage exactly as this one would (`spar_eqx._train._reuse`); single-process runs only.
      With `resume`, a run that has a checkpoint of its own continues from that.
    - `loggers`: also log every row of `metrics.csv` to `"tensorboard"` (event files in
      `out/tensorboard/`, needs `tensorboardX`) and/or `"wandb"` (an offline run in
      `out/wandb/`, needs `wandb`); a logger whose package is missing is refused first.

    **Returns:** the results dictionary (every seed's, in every process): per-seed
    `scores` and `returns` under each deployed policy's name and `diagnostics`, or, with a
    sweep, a `sweep` list of `{"params", "scores", "returns", "diagnostics"}`.
    """
    out = Path(out)
    token = run_token({"config": config.to_dict(), "coordinator": coordinator})
    # The dataset by absolute path, so the run can be resumed and evaluated from anywhere.
    config = config.with_overrides({"dataset": absolute_dataset(config.dataset)})
    if num_processes < 1:
        raise ValueError(f"--num-processes must be at least 1, got {num_processes}.")
    if num_processes == 1 and process_id != 0:
        raise ValueError(
            f"--process-id {process_id} needs --num-processes larger than it; a single-process "
            "run is process 0."
        )
    run_dir = out if num_processes == 1 else out / f"process-{process_id}"
    if num_processes > 1 and not 0 <= process_id < num_processes:
        raise ValueError(f"--process-id must lie in [0, {num_processes}), got {process_id}.")
    check_loggers(tuple(loggers))
    if stage1_from is not None and num_processes > 1:
        raise ValueError("--stage1-from takes a single-process run; leave --num-processes out.")
    # A first look at the folder, to refuse a mistake before the data load; every check is
    # made again under the folder's lock (`_train_locked`).
    problem = output_folder_problem(run_dir, resume)
    if problem:
        raise ValueError(problem)
    check_resumed_config(run_dir, config) if resume else None
    if num_processes > 1:
        if coordinator is None:
            raise ValueError(
                "a multi-process run needs --coordinator HOST:PORT for jax.distributed."
            )
        split_address(coordinator)
        if coordinator_timeout < 1:
            raise ValueError(
                f"--coordinator-timeout must be at least 1 second, got {coordinator_timeout}."
            )
        if process_id == 0:
            host_lobby(coordinator, num_processes, coordinator_timeout, token)
        else:
            join_lobby(coordinator, process_id, num_processes, coordinator_timeout, token)
        try:
            jax.distributed.initialize(
                coordinator, num_processes, process_id, initialization_timeout=coordinator_timeout
            )
        except Exception as error:  # XLA raises its own error types for a missing peer
            first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise ValueError(
                f"process {process_id} of {num_processes} could not join the run at "
                f"{coordinator} within {coordinator_timeout} s ({first[:200]}); start every "
                "process with the same --coordinator and --num-processes, each with its own "
                "--process-id."
            ) from None
    trainer = Trainer(
        config,
        run_dir,
        progress=progress,
        process_index=process_id,
        process_count=num_processes,
        loggers=tuple(loggers),
    )
    # Everything that can refuse the run (the dataset, the environment, the learners) is
    # checked before the folder exists, so a refused run leaves nothing that blocks a re-run.
    trainer.prepare_data()
    trainer.build()
    trainer.check_memory()
    first_stage = None
    if stage1_from is not None and not (resume and (run_dir / CHECKPOINTS / LATEST).exists()):
        first_stage = first_stage_from(trainer, Path(stage1_from))
    # What the end of the run needs from the data is asked now, not after the training.
    for name, reason in trainer.final_problems().items():
        print(
            f"spar-eqx: note: the {name.replace('_', ' ')} will not be available at the end "
            f"of this run ({reason}); the rest of the run is unaffected.",
            file=sys.stderr,
        )
    results = _train_locked(trainer, out, run_dir, resume, first_stage, stage1_from)
    if num_processes > 1 and process_id == 0:
        atomic_write(out / "results.json", json.dumps(results, indent=2))
    return results


def _train_locked(
    trainer: Trainer, out: Path, run_dir: Path, resume: bool, first_stage=None, stage1_from=None
):
    """Take `run_dir`'s lock, check the folder again under it (another process may have
    trained into it while the data loaded), then write the configuration and train.

    `first_stage` (`first_stage_from`'s position, taken from the run `stage1_from`) is where
    a run without a checkpoint of its own starts; it is saved as the run's first checkpoint
    before training, so a plain `--resume` continues from it.

    Nothing is written before every check passes. A start that fails before its first
    checkpoint takes away what it wrote (`discard_start`), so the corrected command is not
    blocked by a folder that holds no run.
    """
    config = trainer.config
    folders = [run_dir] if out == run_dir else [out, run_dir]
    lock_was_there = (run_dir / LOCK).exists()
    created = make_folders(run_dir)
    ours: list[Path] = []  # what this start wrote, taken away if it fails before a checkpoint
    locked = False
    try:
        with run_lock(run_dir) as claim:
            locked = True
            ours = [] if lock_was_there else [run_dir / LOCK]
            problem = output_folder_problem(run_dir, resume)
            if problem:
                raise ValueError(problem)
            fresh = not contents(run_dir)
            restored = None
            if resume:
                check_resumed_config(run_dir, config)
                if fresh:
                    print(
                        f"spar-eqx: --resume: {run_dir} holds no run yet; starting a new one.",
                        file=sys.stderr,
                    )
                restored = trainer.restore_if_any()
            # A folder that held a run keeps everything, whatever happens next.
            new_configs = [f / CONFIG for f in folders if not (f / CONFIG).exists()]
            ours = [*ours, *new_configs, run_dir / CHECKPOINTS] if fresh else []
            claim()
            text = json.dumps(config.to_dict(), indent=2, sort_keys=True)
            for folder in folders:
                path = folder / CONFIG
                if path.exists() and path.read_text() == text:
                    continue  # a resumed run: the file already says exactly this
                atomic_write(path, text)
            if restored is None and first_stage is not None:
                trainer.first_stage_from = str(Path(stage1_from).resolve())
                restored = first_stage
                trainer._save(LATEST, restored[0], restored[1], restored[2], restored[3])
            return trainer.run(resume=resume, restored=restored)
    except BaseException:
        if locked and not any((run_dir / CHECKPOINTS).glob("*.eqx")):
            discard_start(ours, created)
        raise


def load_trained(out: str | Path):
    """Rebuild a finished run's trainer and its final states, stacked over all runs.

    Works for single- and multi-process runs (the processes' seeds are concatenated).

    **Arguments:** `out`, the folder of a finished run.

    **Returns:** `(trainer, states)`: a `Trainer` over every seed, data loaded, and the
    last stage's states; `trainer.final_record(states)` evaluates them, and
    `trainer.policies(len(trainer.algorithm.stages) - 1, states)` deploys them.
    """
    out = Path(out)
    config = stored_config(out)
    trainer = Trainer(config, out, progress=False)
    trainer.prepare_data()
    trainer.build()
    parts = sorted(out.glob("process-*"), key=lambda p: int(p.name.split("-")[1]))
    folders = parts or [out]
    last = len(trainer.algorithm.stages)
    states = []
    for index, folder in enumerate(folders):
        if parts:  # each process's share of the seeds, built without reloading the data
            part = Trainer(
                config, folder, progress=False, process_index=index, process_count=len(folders)
            )
            part.obs_dim, part.act_dim = trainer.obs_dim, trainer.act_dim
            part.build()
        else:
            part = trainer
        path = part.ckpt_dir / f"stage{last}.eqx"
        if not path.exists():
            raise ValueError(
                f"{out} holds no finished run ({path} is missing); train it to the end first."
            )
        header = read_header(path)
        problem = dataset_problem(
            header.get("dataset_fingerprint"), trainer.fingerprint, path, config.dataset
        )
        if problem:
            raise ValueError(problem)
        resolution = header.get("resolution")
        for t in {id(trainer): trainer, id(part): part}.values():
            if resolution is not None and t.resolution is None:
                t.apply_checkpoint_resolution(path, resolution)  # e.g. --variant auto's choice
        states.append(load_checkpoint(path, part.skeleton(last - 1))[1])
    if len(states) == 1:
        return trainer, states[0]
    # Runs are point-major: put each grid point's seeds from every process together.
    points, k = len(trainer.grid), trainer.num_local // len(folders)
    axes = run_axes(states[0])

    def merge(axis, *xs):
        if axis != 0:
            return xs[0]
        per_point = [x.reshape(points, k, *x.shape[1:]) for x in xs]
        return jnp.concatenate(per_point, axis=1).reshape(-1, *xs[0].shape[1:])

    merged = jax.tree_util.tree_map(merge, axes, *states, is_leaf=lambda x: x is None)
    return trainer, merged
