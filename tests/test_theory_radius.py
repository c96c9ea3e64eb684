"""Eq. (3): the residual radius delta_rho, an empirical (1 - rho)-quantile, not interpolated."""

import math
from fractions import Fraction

import equinox as eqx
import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import spar_eqx.theory as T

# small value sets make ties common; "round" rhos make n (1 - rho) an integer for some n
values = st.one_of(
    st.floats(0.0, 10.0, width=32),
    st.sampled_from([0.0, 0.5, 1.0, 2.0]),
)
norms_strategy = hnp.arrays(np.float32, st.integers(1, 40), elements=values)
rhos = st.one_of(
    st.floats(0.0, 1.0, exclude_min=True, exclude_max=True),
    st.sampled_from([0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 0.9]),
)


def _fraction_at_most(norms, value):
    return Fraction(int(np.sum(norms <= value)), len(norms))


@hypothesis.given(norms=norms_strategy, rho=rhos)
def test_residual_radius_is_the_smallest_quantile_value(norms, rho):
    delta = float(T.residual_radius(jnp.asarray(norms), rho))
    target = 1 - Fraction(repr(rho))  # rho as its shortest decimal (0.3 is 3/10), exactly
    assert delta in norms.tolist()  # a sample value, not an interpolation
    assert _fraction_at_most(norms, delta) >= target
    for smaller in np.unique(norms[norms < delta]):
        assert _fraction_at_most(norms, smaller) < target
    # numpy's inverted-CDF quantile is the same definition (up to its float rounding of n * q)
    q = float(target)
    if abs(len(norms) * q - round(len(norms) * q)) > 1e-6:
        assert delta == float(np.quantile(norms, q, method="inverted_cdf"))


@hypothesis.given(norms=norms_strategy, rho1=rhos, rho2=rhos, seed=st.integers(0, 2**32 - 1))
def test_residual_radius_monotone_and_permutation_invariant(norms, rho1, rho2, seed):
    low, high = min(rho1, rho2), max(rho1, rho2)
    norms_jnp = jnp.asarray(norms)
    assert float(T.residual_radius(norms_jnp, low)) >= float(T.residual_radius(norms_jnp, high))
    permuted = jnp.asarray(np.random.default_rng(seed).permutation(norms))
    assert float(T.residual_radius(permuted, low)) == float(T.residual_radius(norms_jnp, low))


def test_residual_radius_examples_and_traced_path():
    norms = jnp.arange(1.0, 101.0)  # 1, 2, ..., 100
    # rho = 0.05: the 95th value (95/100 >= 0.95 exactly), not the 96th (0.95 * 100 in floats)
    assert float(T.residual_radius(norms, 0.05)) == 95.0
    assert float(T.residual_radius(norms, 0.5)) == 50.0
    assert float(T.residual_radius(norms, 0.999)) == 1.0
    assert float(T.residual_radius(norms, 0.001)) == 100.0
    assert float(T.residual_radius(norms, 0.055)) == 95.0  # ceil(94.5) = 95
    # rho = 0.3 is 3/10, not the binary 0.29999999999999998890: 7 of 10 values, not 8
    assert float(T.residual_radius(norms[:10], 0.3)) == 7.0
    assert float(T.residual_radius(norms[:10], jnp.float32(0.3))) == 7.0
    assert float(T.residual_radius(norms[:20], 0.65)) == 7.0
    assert float(T.residual_radius(jnp.array([3.0]), 0.5)) == 3.0
    assert float(T.residual_radius(np.array([1, 2, 3, 4]), 0.5)) == 2.0  # ints and NumPy accepted
    # traced rho (jit, vmap) matches the exact path, ties of n (1 - rho) with integers included
    rhos = [0.013, 0.05, 0.17, 0.3, 0.333, 0.5, 0.6, 0.65, 0.7, 0.71, 0.9, 0.987]
    traced_fn = jax.jit(jax.vmap(T.residual_radius, in_axes=(None, 0)))
    for n in [10, 20, 100]:
        traced = traced_fn(norms[:n], jnp.asarray(rhos, dtype=jnp.float32))
        exact = [float(T.residual_radius(norms[:n], r)) for r in rhos]
        np.testing.assert_array_equal(np.asarray(traced), exact)


@hypothesis.given(
    actions=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 30), st.integers(1, 4)),
        elements=st.floats(-1, 1, width=32),
    ),
    shift=st.floats(-1, 1, width=32),
    rho=rhos,
)
def test_residual_radius_from_actions(actions, shift, rho):
    base = np.roll(actions, 1, axis=0) * np.float32(shift)
    delta = float(T.residual_radius_from(jnp.asarray(actions), jnp.asarray(base), rho))
    norms = np.linalg.norm(actions.astype(np.float64) - base, axis=-1)
    tolerance = 1e-6 * max(1.0, delta)  # float32 rounding (and underflow) of the norms
    assert _fraction_at_most(norms, delta + tolerance) >= 1 - Fraction(repr(rho))
    assert np.min(np.abs(norms - delta)) <= tolerance  # one of the norms


def test_residual_radius_refusals():
    with pytest.raises(
        ValueError, match=r"`rho` must be a float in the open interval \(0, 1\), got 1.0"
    ):
        T.residual_radius(jnp.ones(3), 1.0)
    with pytest.raises(ValueError, match="`rho`.*got 0.0"):
        T.residual_radius(jnp.ones(3), 0.0)
    with pytest.raises(ValueError, match="`norms` must be finite and >= 0"):
        T.residual_radius(jnp.array([1.0, -2.0]), 0.1)
    with pytest.raises(ValueError, match="`norms` must be finite"):
        T.residual_radius(jnp.array([1.0, math.nan]), 0.1)
    with pytest.raises(ValueError, match="n=0"):
        T.residual_radius(jnp.zeros((0,)), 0.1)
    with pytest.raises(ValueError, match="`rho` must be a float"):
        T.residual_radius(jnp.ones(3), 1)
    with pytest.raises(Exception, match="`rho` must lie in the open interval"):
        eqx.filter_jit(T.residual_radius)(jnp.ones(3), jnp.array(1.5))
