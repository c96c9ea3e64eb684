"""module_jit: filter_jit's semantics with the module's partition kept between calls.

Probes count traces (a Python side effect runs only when JAX traces) and watch the partition
table, so each property fails if the partition is redone, shared wrongly, or leaked.
"""

import gc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from spar_eqx._module_jit import _PARTITIONS, module_jit


class Affine(eqx.Module):
    weight: jax.Array
    bias: jax.Array
    activation: object = jnp.tanh  # a non-array field: static, as under filter_jit
    scale: float = 2.0


def _affine(key, n=3, activation=jnp.tanh, scale=2.0):
    w, b = jr.normal(key, (2, n))
    return Affine(w, b, activation, scale)


def _counting(traces):
    def apply(module, x, flip):
        traces.append(1)
        y = module.activation(module.weight * x + module.bias) * module.scale
        return -y if flip else y

    return apply


def test_equals_filter_jit_bit_for_bit():
    apply = _counting([])
    fast, reference = module_jit(apply, static_argnums=(2,)), eqx.filter_jit(apply)
    module, x = _affine(jr.key(0)), jr.normal(jr.key(1), (3,))
    for flip in (False, True):
        assert (
            np.asarray(fast(module, x, flip)).tobytes()
            == np.asarray(reference(module, x, flip)).tobytes()
        )


def test_one_trace_per_structure_and_static_argument():
    traces = []
    fast = module_jit(_counting(traces), static_argnums=(2,))
    x = jnp.ones(3)
    first, second = _affine(jr.key(0)), _affine(jr.key(1))
    fast(first, x, False)
    fast(first, x, False)
    fast(second, x, False)  # another module of the same structure: no new trace
    assert len(traces) == 1
    fast(first, x, True)  # a new static argument
    fast(_affine(jr.key(2), scale=3.0), x, False)  # a new static field value
    fast(_affine(jr.key(3), activation=jnp.sin), x, False)
    fast(_affine(jr.key(4), n=4), jnp.ones(4), False)  # new shapes
    assert len(traces) == 5
    # Every result is the module's own, not a neighbour's from a shared cache entry.
    expected = jnp.tanh(second.weight * x + second.bias) * 2.0
    np.testing.assert_allclose(fast(second, x, False), expected, rtol=1e-6)


def test_the_partition_lives_as_long_as_the_module():
    fast = module_jit(_counting([]), static_argnums=(2,))
    before = len(_PARTITIONS)
    module = _affine(jr.key(0))
    fast(module, jnp.ones(3), False)
    assert len(_PARTITIONS) == before + 1
    fast(module, jnp.ones(3), False)
    assert len(_PARTITIONS) == before + 1  # remembered, not stored again
    del module
    gc.collect()
    assert len(_PARTITIONS) == before


def test_a_module_built_inside_a_trace_is_not_kept():
    fast = module_jit(_counting([]), static_argnums=(2,))
    before = len(_PARTITIONS)

    @jax.jit
    def outer(weight, x):
        return fast(Affine(weight, jnp.zeros(3)), x, False)

    np.testing.assert_allclose(outer(jnp.ones(3), jnp.ones(3)), np.tanh(np.ones(3)) * 2.0)
    assert len(_PARTITIONS) == before
    # Under vmap over modules, too: the traced leaves reach the computation.
    stacked = eqx.filter_vmap(lambda k: _affine(k))(jr.split(jr.key(0), 4))
    out = eqx.filter_vmap(lambda m: fast(m, jnp.ones(3), False))(stacked)
    expected = jnp.tanh(stacked.weight + stacked.bias) * 2.0
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert len(_PARTITIONS) == before


def test_a_numpy_leaf_changed_in_place_is_seen():
    fast = module_jit(_counting([]), static_argnums=(2,))
    weight = np.ones(3, np.float32)
    module = Affine(weight, np.zeros(3, np.float32), lambda v: v, 1.0)
    np.testing.assert_array_equal(fast(module, jnp.ones(3), False), np.ones(3))
    weight[:] = 5.0
    np.testing.assert_array_equal(fast(module, jnp.ones(3), False), np.full(3, 5.0))


def test_compile_runs_the_same_bits_and_refuses_new_shapes():
    traces = []
    fast = module_jit(_counting(traces), static_argnums=(2,))
    module, x = _affine(jr.key(0)), jr.normal(jr.key(1), (3,))
    run = fast.compile(module, x, True)
    assert np.asarray(run(x)).tobytes() == np.asarray(fast(module, x, True)).tobytes()
    with pytest.raises(TypeError):
        run(jnp.ones(4))
