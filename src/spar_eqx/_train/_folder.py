"""A run folder's state, checked under its lock: what it holds, whether it can take this
run, and what a start that fails before its first checkpoint must take away again.

`train` checks the folder twice: once before loading the data (to refuse a mistake early,
cheaply) and again once it holds the folder's lock, because another process may have
trained into it meanwhile. Nothing in the folder is written until the second check passes.
"""

import contextlib
import json
import os
from pathlib import Path

from .._run_config import RunConfig

LOCK = ".spar-eqx.lock"
CONFIG = "config.json"
CHECKPOINTS = "checkpoints"


def contents(folder: Path) -> list[Path]:
    """What `folder` holds besides the run lock (nothing when it does not exist)."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.name != LOCK]


def is_run(folder: Path) -> bool:
    """Whether `folder` holds a spar-eqx run: its `config.json` or its `checkpoints/`."""
    return (folder / CONFIG).exists() or (folder / CHECKPOINTS).is_dir()


def output_folder_problem(out: Path, resume: bool) -> str | None:
    """Why `out` cannot take a new run (or, with `resume`, be continued); None when it can.

    An empty folder (or one holding only the run lock) takes a new run; with `resume` it is
    started afresh (`train` says so). A folder with other files that is not a run
    (`is_run`) is refused with `resume` too: resuming it would train from scratch over them.
    """
    for path in (out, *out.parents):
        if path.is_symlink() and not path.exists():
            return f"{path} is a broken symbolic link; point it at a folder or choose another --out"
        if path.exists() and not path.is_dir():
            return f"{path} exists and is not a folder"
        if path.exists():
            break
    held = contents(out)
    if held and not resume:
        return (
            f"{out} is not empty; pass --resume to continue the run in it, "
            "or choose an empty folder"
        )
    if held and not is_run(out):
        names = ", ".join(sorted(p.name for p in held)[:3]) + (", ..." if len(held) > 3 else "")
        return (
            f"--resume: {out} is not a spar-eqx run (it holds {names}, but no {CONFIG} and no "
            f"{CHECKPOINTS}/); give --out the folder of the run to continue, or an empty "
            "folder to start afresh"
        )
    probe = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not os.access(probe, os.W_OK):
        return f"{probe} is not writable"
    return None


def check_resumed_config(run_dir: Path, config: RunConfig) -> None:
    """Refuse to resume `run_dir` with another configuration, before any file changes."""
    path = run_dir / CONFIG
    if not path.exists():
        return
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(
            f"cannot read {path} ({error}); it is not a run's configuration."
        ) from None
    given = config.to_dict()
    if not isinstance(stored, dict):
        raise ValueError(f"{path} is not a run's configuration (not a JSON object).")
    if stored != given:
        differing = sorted(k for k in set(stored) | set(given) if stored.get(k) != given.get(k))
        raise ValueError(
            f"{run_dir} holds a run with a different configuration (it differs in: "
            f"{', '.join(differing)}); resume it with the options it was started with, or "
            "train into another folder. Nothing in it was changed."
        )


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold `run_dir` for this process: a second process on it is refused.

    An advisory `flock` on `run_dir/.spar-eqx.lock`: the operating system releases it when
    the process ends, however it ends, so a killed run never leaves the folder locked.
    Yields a function that records this process's id in the lock file (call it once the
    folder's checks have passed: a refused command writes nothing).
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

    def claim() -> None:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()

    try:
        yield claim
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def make_folders(*folders: Path) -> list[Path]:
    """Create `folders` (and their parents); returns the ones that did not exist, deepest
    first, for `discard_start`."""
    created = []
    for folder in folders:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        created += [p for p in missing if p not in created]
    return sorted(created, key=lambda p: len(p.parts), reverse=True)


def discard_start(files: list[Path], created: list[Path]) -> None:
    """Take away what a start that failed before its first checkpoint wrote: `files` (a
    folder among them only if it is empty), the locks in the `created` folders, then those
    folders if they are empty; so the corrected command finds the folder as it was."""
    for path in files:
        if path.is_dir():
            with contextlib.suppress(OSError):
                path.rmdir()
        else:
            path.unlink(missing_ok=True)
    for folder in created:
        (folder / LOCK).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty


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
