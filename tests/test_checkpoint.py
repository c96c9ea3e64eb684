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


def _rewrite_header(path, **changes) -> None:
    """Change header fields, keeping the payload (and so its checksum) intact."""
    first, payload = path.read_bytes().split(b"\n", 1)
    header = json.loads(first)
    for name, value in changes.items():
        if value is None:
            header.pop(name, None)
        else:
            header[name] = value
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


def test_a_checkpoint_from_before_layouts_still_loads_when_it_fits(tmp_path):
    state = _state()
    path = tmp_path / "old.eqx"
    save_checkpoint(path, {}, state)
    _rewrite_header(path, spar_eqx=None, arrays=None, layout=None)
    _, loaded = load_checkpoint(path, eqx.filter_eval_shape(_state))
    assert tree_equal_bits(loaded, state)


def test_a_checkpoint_from_before_layouts_that_does_not_fit_says_where_it_came_from(tmp_path):
    path = tmp_path / "old.eqx"
    save_checkpoint(path, {}, _state(width=3))
    _rewrite_header(path, spar_eqx=None, arrays=None, layout=None)
    with pytest.raises(ForeignCheckpointError) as error:
        load_checkpoint(path, eqx.filter_eval_shape(lambda: _state(width=5)))
    message = str(error.value)
    assert "does not hold this run's arrays" in message
    assert "earlier spar_eqx" in message and "start afresh" in message


def test_a_foreign_checkpoint_is_still_a_checkpoint_error():
    assert issubclass(ForeignCheckpointError, CheckpointError)
    assert issubclass(CheckpointError, ValueError)  # the CLI prints these without a traceback
