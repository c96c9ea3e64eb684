"""Checkpoint files: a tree comes back bit for bit into its own skeleton, and only into it.

The end-to-end cases (damaged files, resuming, falling back to the previous checkpoint) are in
`test_train.py`; these state what the file format itself guarantees.
"""

import importlib.metadata
import json

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import pytest

from spar_eqx import CheckpointError
from spar_eqx._train._checkpoint import (
    ForeignCheckpointError,
    _digest,
    layout,
    load_checkpoint,
    read_header,
    save_checkpoint,
)

from .helpers import tree_equal_bits


class _State(eqx.Module):
    weights: jnp.ndarray
    bias: jnp.ndarray
    step: jnp.ndarray
    key: jnp.ndarray


def _state(width: int = 3) -> _State:
    k1, k2 = jr.split(jr.key(0))
    return _State(
        weights=jr.normal(k1, (width, 2)),
        bias=jr.normal(k2, (2,)),
        step=jnp.asarray(7, jnp.int32),
        key=jr.PRNGKey(1),  # raw uint32 key data (equinox does not serialise typed keys)
    )


def _rewrite_header(path, *, sign: bool = True, **changes) -> None:
    """Change header fields, keeping the payload; with `sign`, the whole-file digest is
    recomputed (as another version of spar_eqx would have written it)."""
    first, payload = path.read_bytes().split(b"\n", 1)
    header = json.loads(first)
    for name, value in changes.items():
        if value is None:
            header.pop(name, None)
        else:
            header[name] = value
    if sign:
        header.pop("digest", None)
        header["digest"] = _digest(header, payload)
    path.write_bytes(json.dumps(header).encode() + b"\n" + payload)


def test_a_tree_comes_back_bit_for_bit_with_its_header(tmp_path):
    state = _state()
    path = tmp_path / "state.eqx"
    save_checkpoint(path, {"step": 40}, state)
    header, loaded = load_checkpoint(path, eqx.filter_eval_shape(_state))
    assert tree_equal_bits(loaded, state)
    assert header["step"] == 40
    assert header["spar_eqx"] == importlib.metadata.version("spar_eqx")
    assert header["arrays"] == 4 and header["layout"] == layout(state)[1]
    assert read_header(path) == header


def test_layout_is_the_same_for_a_tree_and_its_skeleton():
    assert layout(_state()) == layout(eqx.filter_eval_shape(_state))
    assert layout({"a": 1.0, "b": True}) == layout({"a": 2.5, "b": False})  # types, not values


def test_layout_sees_names_shapes_and_dtypes():
    base = layout({"w": jnp.zeros(3), "v": jnp.zeros(3)})
    assert layout({"w": jnp.zeros(3), "u": jnp.zeros(3)}) != base  # a renamed field
    assert layout({"w": jnp.zeros(4), "v": jnp.zeros(3)}) != base  # a shape
    assert layout({"w": jnp.zeros(3, jnp.int32), "v": jnp.zeros(3)}) != base  # a dtype


def test_a_tree_that_merely_fits_is_refused_not_loaded(tmp_path):
    """Same shapes and dtypes in the same order, other names: deserialising alone would fill
    the skeleton without complaint, with the arrays in the wrong fields."""
    path = tmp_path / "state.eqx"
    save_checkpoint(path, {}, {"critic": jnp.arange(3.0), "value": jnp.ones(3)})
    skeleton = {"actor": jnp.zeros(3), "critic": jnp.zeros(3)}
    with pytest.raises(ForeignCheckpointError) as error:
        load_checkpoint(path, skeleton)
    message = str(error.value)
    assert "state.eqx" in message and "different training state" in message
    assert "2 arrays" in message and "as many, with other names" in message
    assert "start afresh in an empty folder" in message


def test_a_checkpoint_of_another_size_names_both_counts(tmp_path):
    path = tmp_path / "state.eqx"
    save_checkpoint(path, {}, _state())
    _rewrite_header(path, spar_eqx="0.0.9")
    with pytest.raises(ForeignCheckpointError, match=r"spar_eqx 0\.0\.9 wrote 4 arrays.* has 2"):
        load_checkpoint(path, {"a": jnp.zeros(3), "b": jnp.zeros(2)})


def test_a_checkpoint_without_the_whole_file_digest_is_refused_by_name(tmp_path):
    """As written by a spar_eqx whose checksum covered only the payload: its header could
    have been changed unseen, so it is not loaded."""
    path = tmp_path / "old.eqx"
    save_checkpoint(path, {"step": 40}, _state())
    _rewrite_header(path, sign=False, digest=None, sha256="0" * 64)
    with pytest.raises(ForeignCheckpointError) as error:
        load_checkpoint(path, eqx.filter_eval_shape(_state))
    message = str(error.value)
    assert "old.eqx" in message and "no checksum over its header" in message
    assert "start afresh" in message


@pytest.mark.parametrize(
    "changes",
    [{"step": 41}, {"resolution": {"overrides": {"gate.eta_rel": 0.0}}}, {"log": "x"}],
    ids=["step", "planted-field", "log"],
)
def test_an_edited_header_is_damaged(tmp_path, changes):
    """The payload's checksum alone let a header's step, or a planted field, through."""
    path = tmp_path / "state.eqx"
    save_checkpoint(path, {"step": 40, "log": {"losses": []}}, _state())
    _rewrite_header(path, sign=False, **changes)
    with pytest.raises(CheckpointError, match="state.eqx is damaged"):
        load_checkpoint(path, eqx.filter_eval_shape(_state))


@pytest.mark.parametrize(
    "field, value", [("arrays", "4"), ("layout", None), ("payload_bytes", 1.5)]
)
def test_a_signed_header_with_a_field_of_the_wrong_type_is_damaged(tmp_path, field, value):
    path = tmp_path / "state.eqx"
    save_checkpoint(path, {}, _state())
    _rewrite_header(path, **{field: value})
    with pytest.raises(CheckpointError, match=f"damaged: its header's '{field}'"):
        load_checkpoint(path, eqx.filter_eval_shape(_state))


def test_every_bit_flip_anywhere_in_a_checkpoint_is_refused_or_harmless(tmp_path):
    """Flip each bit of each byte of a small checkpoint, header included: each damaged file is
    refused with `CheckpointError`, or loads to exactly the header and arrays that were
    written (a flip the JSON reading cannot see, such as `e` to `E` in a number)."""
    state = _state(width=2)
    path = tmp_path / "state.eqx"
    save_checkpoint(path, {"step": 40, "log": {"losses": [{"loss": 1e-05}]}}, state)
    original = path.read_bytes()
    skeleton = eqx.filter_eval_shape(lambda: _state(width=2))
    header, _ = load_checkpoint(path, skeleton)
    harmless = 0
    for offset in range(len(original)):
        for bit in range(8):
            damaged = bytearray(original)
            damaged[offset] ^= 1 << bit
            path.write_bytes(bytes(damaged))
            try:
                got_header, got = load_checkpoint(path, skeleton)
            except CheckpointError:
                continue
            assert got_header == header and tree_equal_bits(got, state), (offset, bit)
            harmless += 1
    assert harmless < 8  # only the odd flip of a number's spelling survives


def test_a_foreign_checkpoint_is_still_a_checkpoint_error():
    assert issubclass(ForeignCheckpointError, CheckpointError)
    assert issubclass(CheckpointError, ValueError)  # the CLI prints these without a traceback
