"""Checkpoints: a JSON header line, then `eqx.tree_serialise_leaves`, written atomically."""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import equinox as eqx


def save_checkpoint(path: str | os.PathLike, header: dict[str, Any], tree: Any) -> None:
    """Write `header` and `tree` to `path` atomically (temp file, fsync, rename).

    A reader sees either the previous checkpoint or the new one, never a torn
    file, even if the process is killed mid-write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write((json.dumps(header, sort_keys=True) + "\n").encode())
            eqx.tree_serialise_leaves(f, tree)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; use the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a checkpoint, without reading its arrays."""
    with open(path, "rb") as f:
        return json.loads(f.readline())


def load_checkpoint(path: str | os.PathLike, skeleton: Any) -> tuple[dict[str, Any], Any]:
    """`(header, tree)`: `skeleton` gives the structure, shapes and dtypes to fill."""
    with open(path, "rb") as f:
        header = json.loads(f.readline())
        tree = eqx.tree_deserialise_leaves(f, skeleton)
    return header, tree
