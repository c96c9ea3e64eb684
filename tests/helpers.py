"""Small helpers shared by the tests."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8) -> bool:
    """True when two PyTrees have the same structure and all array leaves are close."""
    if jax.tree_util.tree_structure(x) != jax.tree_util.tree_structure(y):
        return False
    xs, ys = jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves(y)
    for a, b in zip(xs, ys, strict=True):
        if eqx.is_array(a):
            if a.shape != b.shape:
                return False
            if not np.allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol):
                return False
        elif a != b:
            return False
    return True


def tree_equal_bits(x, y) -> bool:
    """True when every array leaf is bit-for-bit equal."""
    return bool(eqx.tree_equal(x, y)) and all(
        bool(jnp.array_equal(a, b))
        for a, b in zip(jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves(y), strict=True)
        if eqx.is_array(a)
    )
