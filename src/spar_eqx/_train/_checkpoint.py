"""Checkpoints: a JSON header line, then `eqx.tree_serialise_leaves`, written atomically.

The header records the payload's length and SHA-256, so a truncated, headerless or
bit-flipped file is detected on reading (`CheckpointError`, naming the file) instead of
being loaded as garbage. With `keep_previous`, the checkpoint being replaced is kept as
`<name>.previous`, so a damaged latest checkpoint leaves an older good one to resume from.
"""

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import equinox as eqx

from .._errors import CheckpointError


def previous_path(path: str | os.PathLike) -> Path:
    """Where `save_checkpoint(..., keep_previous=True)` keeps the checkpoint it replaced."""
    path = Path(path)
    return path.with_name(path.name + ".previous")


def save_checkpoint(
    path: str | os.PathLike, header: dict[str, Any], tree: Any, *, keep_previous: bool = False
) -> None:
    """Write `header` and `tree` to `path` atomically (temp file, fsync, rename).

    A reader sees either the previous checkpoint or the new one, never a torn file, even if
    the process is killed mid-write. With `keep_previous`, the replaced file moves to
    `previous_path(path)` first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, tree)
    payload = buffer.getvalue()
    header = {
        **header,
        "payload_bytes": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write((json.dumps(header, sort_keys=True) + "\n").encode())
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; use the usual mode
        if keep_previous and path.exists():
            os.replace(path, previous_path(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Write a whole file atomically: a reader (or a kill) sees the old file or the new one.

    **Arguments:** `path`, the file; `data`, its new contents (text is UTF-8 encoded).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _read(path: Path) -> tuple[dict[str, Any], bytes]:
    try:
        with open(path, "rb") as f:
            first = f.readline()
            payload = f.read()
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path} ({error.strerror}).") from None
    try:
        header = json.loads(first)
        if not isinstance(header, dict):
            raise ValueError("not an object")
    except ValueError:
        raise CheckpointError(f"checkpoint {path} is damaged: its header is unreadable.") from None
    if "sha256" in header:
        if len(payload) != header.get("payload_bytes") or (
            hashlib.sha256(payload).hexdigest() != header["sha256"]
        ):
            raise CheckpointError(
                f"checkpoint {path} is damaged: its contents do not match their checksum "
                f"({len(payload)} bytes, {header.get('payload_bytes')} written)."
            )
    return header, payload


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a checkpoint (the file's checksum is verified too)."""
    return _read(Path(path))[0]


def load_checkpoint(path: str | os.PathLike, skeleton: Any) -> tuple[dict[str, Any], Any]:
    """`(header, tree)`: `skeleton` gives the structure, shapes and dtypes to fill.

    Raises `CheckpointError` naming the file when it is damaged or does not fit `skeleton`.
    """
    path = Path(path)
    header, payload = _read(path)
    try:
        tree = eqx.tree_deserialise_leaves(io.BytesIO(payload), skeleton)
    except Exception as error:  # numpy/equinox raise several kinds on a foreign file
        raise CheckpointError(
            f"checkpoint {path} does not hold this run's arrays ({type(error).__name__}: {error})."
        ) from None
    return header, tree
