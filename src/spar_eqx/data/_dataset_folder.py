"""A collected dataset's folder: staging, atomic swap into place, recovery and metadata."""

import dataclasses
import os
import shlex
import shutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .._scores import reference_scores
from ._errors import CollectError


@contextmanager
def datasets_root(root: Path) -> Iterator[None]:
    """Point Minari (`MINARI_DATASETS_PATH`) at `root` for the duration of the block."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def collect_command(
    env_id, level, out, seed, steps, target_return, max_train_steps, max_episode_steps
):
    words = ["spar-eqx", "collect", "--env", env_id, "--level", level, "--out", str(out)]
    words += ["--seed", str(seed)]
    if level != "medium-replay":
        words += ["--steps", str(steps)]
    if level != "random":
        words += ["--max-train-steps", str(max_train_steps)]
    if target_return is not None:
        values = [target_return] if isinstance(target_return, int | float) else target_return
        words += ["--target-return", *(repr(float(v)) for v in values)]
    if max_episode_steps is not None:
        words += ["--max-episode-steps", str(max_episode_steps)]
    return shlex.join(words)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    names = ("spar_eqx", "jax", "equinox", "optax", "gymnasium", "mujoco", "minari")
    found = {}
    for name in names:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return found


def prepare_folder(out: Path, dataset: str, overwrite: bool) -> Path:
    """The dataset's final folder, checked; nothing in it is touched until the swap."""
    if out.exists() and not out.is_dir():
        raise CollectError(f"--out must be a directory (the datasets root), got the file {out}.")
    folder = out / dataset
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise CollectError(
            f"the dataset folder {folder} already exists and is not empty; choose another "
            "--out, delete it, or pass --overwrite to replace it."
        )
    out.mkdir(parents=True, exist_ok=True)
    return folder


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def recover_interrupted(root: Path, dataset: str) -> None:
    """Undo what a killed collection into `root` left: put back a dataset it had moved aside
    (if no new one took its place) and delete its staging folder.

    Only leftovers of processes that no longer run are touched, so a collection running
    beside this one keeps its files.
    """
    final = root / dataset
    for old in final.parent.glob(f".{final.name}.replaced-*"):
        pid = old.name.rpartition("-")[2]
        if not pid.isdigit() or _pid_alive(int(pid)):
            continue
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, final)
            print(
                f"spar-eqx collect: restored {final}, which an interrupted collection had "
                "moved aside.",
                file=sys.stderr,
            )
    for staging in root.glob(".collect-*-*"):
        pid = staging.name.split("-")[1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def swap_into_place(staging: Path, root: Path, dataset: str) -> None:
    """Move the finished dataset from `staging` to `root`, replacing any old one last.

    The old dataset is renamed aside, the new one renamed in, and only then the old one
    deleted: at every moment one complete dataset is at `root / dataset` or beside it.
    Minari's namespace files are copied when `root` has none.
    """
    for path in staging.rglob("namespace_metadata.json"):
        target = root / path.relative_to(staging)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    final = root / dataset
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(f".{final.name}.replaced-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(staging / dataset, final)
    shutil.rmtree(old, ignore_errors=True)


_DESCRIPTIONS = {
    "random": "{steps} transitions of uniform random actions",
    "medium": (
        "{steps} transitions of the sampled actions of the first SAC policy whose mean "
        "deterministic evaluation return reached {target}"
    ),
    "medium-replay": (
        "every transition an online SAC collected while training until its mean deterministic "
        "evaluation return first reached {target} (its replay buffer)"
    ),
    "expert": (
        "{steps} transitions of the sampled actions of the first SAC policy whose mean "
        "deterministic evaluation return reached {target}"
    ),
    "medium-expert": "the medium transitions followed by the expert ones (targets {target})",
}


def create_dataset(
    collector, folder: Path, env_id: str, level: str, command: str, parts: list[dict]
):
    ref = reference_scores(env_id)
    targets = " and ".join(f"{p['target_return']:.1f}" for p in parts if p["target_return"])
    what = _DESCRIPTIONS[level].format(steps=parts[0]["steps"], target=targets)
    description = (
        f"{level} data for {env_id}, D4RL recipe: {what}. Generated by spar_eqx with `{command}`."
    )
    with warnings.catch_warnings():
        # We have no versioned code URL or e-mail to give; Minari warns about each missing one.
        warnings.filterwarnings("ignore", message="`code_permalink` is set to None")
        warnings.filterwarnings("ignore", message="`author_email` is set to None")
        # Minari 0.5.4 replaces its (emptied) temporary folder without cleaning up the old one.
        warnings.filterwarnings(
            "ignore", message="Implicitly cleaning up", category=ResourceWarning
        )
        return collector.create_dataset(
            dataset_id=str(folder.relative_to(folder.parent.parent).as_posix()),
            eval_env=collector.env.spec,
            algorithm_name="random" if level == "random" else "SAC (spar_eqx, D4RL recipe)",
            author="spar_eqx",
            ref_min_score=None if ref is None else ref.min,
            ref_max_score=None if ref is None else ref.max,
            description=description,
        )


def write_metadata(
    folder,
    env_id,
    level,
    seed,
    steps,
    max_train_steps,
    max_episode_steps,
    command,
    config,
    parts,
    elapsed,
) -> None:
    from minari.dataset.minari_storage import MinariStorage

    ref = reference_scores(env_id)
    info = {
        "command": command,
        "seed": seed,
        "env_id": env_id,
        "level": level,
        "steps": None if level == "medium-replay" else steps,
        "max_train_steps": max_train_steps if level != "random" else None,
        "max_episode_steps": max_episode_steps,
        "reference_scores": None if ref is None else {"min": ref.min, "max": ref.max},
        "parts": parts,
        "sac_config": dataclasses.asdict(config) if level != "random" else None,
        "versions": _versions(),
        "wall_time_s": round(elapsed, 1),
    }
    MinariStorage.read(folder / "data").update_metadata({"spar_eqx": info})
