"""`train` and `load_trained`: the Python entry points of the trainer."""

import contextlib
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp

from .._run_config import RunConfig
from ._checkpoint import atomic_write, load_checkpoint, read_header
from ._chunk import run_axes
from ._loggers import check_loggers
from ._rendezvous import host_lobby, join_lobby, split_address
from ._run import Trainer


def output_folder_problem(out: Path, resume: bool) -> str | None:
    """Why `out` cannot take a new run (None when it can)."""
    for path in (out, *out.parents):
        if path.is_symlink() and not path.exists():
            return f"{path} is a broken symbolic link; point it at a folder or choose another --out"
        if path.exists() and not path.is_dir():
            return f"{path} exists and is not a folder"
        if path.exists():
            break
    if out.exists() and any(out.iterdir()) and not resume:
        return (
            f"{out} is not empty; pass --resume to continue the run in it, "
            "or choose an empty folder"
        )
    probe = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not os.access(probe, os.W_OK):
        return f"{probe} is not writable"
    return None


LOCK = ".spar-eqx.lock"


@contextlib.contextmanager
def _run_lock(run_dir: Path):
    """Hold `run_dir` for this process: a second process on it is refused.

    An advisory `flock` on `run_dir/.spar-eqx.lock`: the operating system releases it when
    the process ends, however it ends, so a killed run never leaves the folder locked.
    """
    import fcntl

    handle = open(run_dir / LOCK, "a+")  # noqa: SIM115 (held for the whole run)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ValueError(
            f"{run_dir} is in use by another spar-eqx process; wait for it to end, or train "
            "into another folder."
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _check_resumed_config(run_dir: Path, config: RunConfig) -> None:
    """Refuse to resume `run_dir` with another configuration, before any file changes."""
    path = run_dir / "config.json"
    if not path.exists():
        return
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(
            f"cannot read {path} ({error}); it is not a run's configuration."
        ) from None
    given = config.to_dict()
    if stored != given:
        differing = sorted(k for k in set(stored) | set(given) if stored.get(k) != given.get(k))
        raise ValueError(
            f"{run_dir} holds a run with a different configuration (it differs in: "
            f"{', '.join(differing)}); resume it with the options it was started with, or "
            "train into another folder. Nothing in it was changed."
        )


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
    - `resume`: continue from `out/checkpoints/latest.eqx` when it exists.
    - `progress`: show a progress bar.
    - `coordinator`, `num_processes`, `process_id`: a multi-process run;
      `coordinator_timeout` seconds for every process to join it before each is refused.
    - `loggers`: also log every row of `metrics.csv` to `"tensorboard"` (event files in
      `out/tensorboard/`, needs `tensorboardX`) and/or `"wandb"` (an offline run in
      `out/wandb/`, needs `wandb`); a logger whose package is missing is refused first.

    **Returns:** the results dictionary (every seed's, in every process): per-seed
    `scores` and `returns` under each deployed policy's name and `diagnostics`, or, with a
    sweep, a `sweep` list of `{"params", "scores", "returns", "diagnostics"}`.
    """
    out = Path(out)
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
    problem = output_folder_problem(run_dir, resume)
    if problem:
        raise ValueError(problem)
    _check_resumed_config(run_dir, config) if resume else None
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
            host_lobby(coordinator, num_processes, coordinator_timeout)
        else:
            join_lobby(coordinator, process_id, num_processes, coordinator_timeout)
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
    run_dir.mkdir(parents=True, exist_ok=True)
    with _run_lock(run_dir):
        text = json.dumps(config.to_dict(), indent=2, sort_keys=True)
        for folder in {out, run_dir}:
            if (folder / "config.json").exists() and (folder / "config.json").read_text() == text:
                continue  # a resumed run: the file already says exactly this
            atomic_write(folder / "config.json", text)
        results = trainer.run(resume=resume)
    if num_processes > 1 and process_id == 0:
        atomic_write(out / "results.json", json.dumps(results, indent=2))
    return results


def stored_config(
    out: Path, advice: str = "give the --out folder of a `spar-eqx train` run."
) -> RunConfig:
    """The configuration the run folder `out` was trained with.

    Raises `ValueError` saying what `out` is instead (no folder, a file, a folder without a
    `config.json`, an unreadable one), followed by `advice`.
    """
    path = out / "config.json"
    if not out.exists():
        raise ValueError(f"{out}: no such folder; {advice}")
    if not out.is_dir():
        raise ValueError(f"{out} is not a folder; {advice}")
    if not path.is_file():
        raise ValueError(f"{out} is not a run folder (it has no config.json); {advice}")
    try:
        return RunConfig.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, AttributeError) as error:
        reason = str(error).rstrip(".")
        raise ValueError(f"{out}: {path} is not a run configuration ({reason}); {advice}") from None


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
        resolution = read_header(path).get("resolution")
        for t in {id(trainer): trainer, id(part): part}.values():
            if resolution is not None and t.resolution is None:
                t.apply_resolution(resolution)  # e.g. the variant --variant auto chose
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
