"""Checkpoints: a JSON header line, then `eqx.tree_serialise_leaves`, written atomically.

The header records the payload's length and one SHA-256 `digest` over the header's other
fields and the payload together, so a truncated, headerless or bit-flipped file, the header
included (a step, a resolution, a log), is detected on reading (`CheckpointError`, naming the
file) instead of being loaded as garbage or acted on. A checkpoint without that digest
(written by a spar_eqx from before it covered the header) is refused by name. The header
also records the layout of the tree (a digest of every array's
path, shape and dtype) and the spar_eqx version that wrote it, so a checkpoint of another
version's or another configuration's training state is refused with a message saying so,
never loaded into arrays it merely happens to fit. With `keep_previous`, the checkpoint being
replaced is kept as `<name>.previous`, so a damaged latest checkpoint leaves an older good one
to resume from.
"""

import hashlib
import importlib.metadata
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import equinox as eqx
import jax

from .._errors import CheckpointError


class ForeignCheckpointError(CheckpointError):
    """An intact checkpoint whose tree is not the one asked for (another spar_eqx version's
    training state, or another run's): the checkpoint before it would not fit either."""


def _version() -> str:
    return importlib.metadata.version("spar_eqx")


def layout(tree: Any) -> tuple[int, str]:
    """`(arrays, digest)`: how many leaves `tree_serialise_leaves` writes for `tree`, and a
    digest of their paths, shapes and dtypes (scalars: their Python type).

    The same for a tree of arrays and for its `eqx.filter_eval_shape` skeleton, so a
    checkpoint's recorded layout can be compared with the skeleton it is loaded into.
    """
    parts = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
            parts.append(f"{jax.tree_util.keystr(path)}:{leaf.dtype}{list(leaf.shape)}")
        elif isinstance(leaf, (bool, int, float, complex)):
            parts.append(f"{jax.tree_util.keystr(path)}:{type(leaf).__name__}")
    return len(parts), hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def previous_path(path: str | os.PathLike) -> Path:
    """Where `save_checkpoint(..., keep_previous=True)` keeps the checkpoint it replaced."""
    path = Path(path)
    return path.with_name(path.name + ".previous")


def _digest(fields: dict[str, Any], payload: bytes) -> str:
    """SHA-256 over the header's fields (canonical JSON, `digest` itself left out) and the
    payload: one checksum for the whole file."""
    text = json.dumps(fields, sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode() + b"\n" + payload).hexdigest()


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
    arrays, digest = layout(tree)
    header = {
        **header,
        "spar_eqx": _version(),
        "arrays": arrays,
        "layout": digest,
        "payload_bytes": len(payload),
    }
    header["digest"] = _digest(header, payload)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write((json.dumps(header, sort_keys=True, allow_nan=False) + "\n").encode())
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


# The fields `save_checkpoint` adds to every header, and their types.
_FILE_FIELDS = {"spar_eqx": str, "arrays": int, "layout": str, "payload_bytes": int}


def _read(path: Path) -> tuple[dict[str, Any], bytes]:
    try:
        with open(path, "rb") as f:
            first = f.readline()
            payload = f.read()
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path} ({error.strerror}).") from None
    try:
        header = json.loads(first, parse_constant=_no_constant)
        if not isinstance(header, dict):
            raise ValueError("not an object")
    except ValueError:
        raise CheckpointError(f"checkpoint {path} is damaged: its header is unreadable.") from None
    if "digest" not in header:
        raise ForeignCheckpointError(
            f"checkpoint {path} has no checksum over its header: it was written by "
            f"{_writer(header)}, from before checkpoints covered their header, or was edited. "
            f"{_WHAT_TO_DO}"
        )
    fields = {k: v for k, v in header.items() if k != "digest"}
    if header["digest"] != _digest(fields, payload):
        raise CheckpointError(
            f"checkpoint {path} is damaged: its header and contents do not match their "
            f"checksum ({len(payload)} bytes of contents, {header.get('payload_bytes')} "
            "written)."
        )
    for name, kind in _FILE_FIELDS.items():
        if type(header.get(name)) is not kind:
            raise CheckpointError(
                f"checkpoint {path} is damaged: its header's {name!r} is "
                f"{header.get(name)!r}, not a{'n' if kind is int else ''} {kind.__name__}."
            )
    return header, payload


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number a checkpoint writes")


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a checkpoint (the whole file's checksum is verified too)."""
    return _read(Path(path))[0]


def load_checkpoint(path: str | os.PathLike, skeleton: Any) -> tuple[dict[str, Any], Any]:
    """`(header, tree)`: `skeleton` gives the structure, shapes and dtypes to fill.

    Raises `CheckpointError` naming the file when it is damaged, and its subclass
    `ForeignCheckpointError` when it holds another tree than `skeleton` (another version's or
    another configuration's training state).
    """
    path = Path(path)
    header, payload = _read(path)
    arrays, digest = layout(skeleton)
    if header["layout"] != digest:
        written = header.get("arrays")
        how = " (as many, with other names, shapes or dtypes)" if written == arrays else ""
        raise ForeignCheckpointError(
            f"checkpoint {path} holds a different training state from the one this run "
            f"trains: spar_eqx {header.get('spar_eqx', '?')} wrote {written} arrays, and "
            f"spar_eqx {_version()} with this run's options has {arrays}{how}. {_WHAT_TO_DO}"
        )
    try:
        tree = eqx.tree_deserialise_leaves(io.BytesIO(payload), skeleton)
    except Exception as error:  # numpy/equinox raise several kinds on a foreign file
        raise ForeignCheckpointError(
            f"checkpoint {path} does not hold this run's arrays ({type(error).__name__}: "
            f"{error}); it was written by {_writer(header)}. {_WHAT_TO_DO}"
        ) from None
    return header, tree


_WHAT_TO_DO = (
    "A checkpoint continues only under the spar_eqx version and options that wrote it: start "
    "afresh in an empty folder, or go on with the version that wrote it."
)


def _writer(header: dict[str, Any]) -> str:
    if "spar_eqx" in header:
        return f"spar_eqx {header['spar_eqx']} (this is {_version()})"
    return "an earlier spar_eqx, from before checkpoints recorded their version"
