"""Lemma 3.2, eq. (24)-(31): the localisation bias against Lipschitz test functions."""

import functools
import math

import equinox as eqx
import hypothesis
import hypothesis.strategies as st
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Float

import spar_eqx.theory as T

KINDS = ["cone_up", "cone_down", "sines", "peaks", "l1", "linear"]


class MixedQ(eqx.Module):
    """A sum of test terms with known Lipschitz constants (Euclidean norm):
    c |a - centre| (|c|), sum_i w_i sin(v_i . a + b_i) (sum_i |w_i| |v_i|),
    max_i (h_i - p |a - c_i|) (p), l |a - centre|_1 (|l| sqrt(d)) and u . a (|u|).
    A module, so one `eqx.filter_jit` compile serves every function of the same dimension."""

    cone: Float[Array, ""]
    centre: Float[Array, " dim"]
    sine_w: Float[Array, " 5"]
    sine_v: Float[Array, "5 dim"]
    sine_b: Float[Array, " 5"]
    peak_slope: Float[Array, ""]
    peak_centres: Float[Array, "4 dim"]
    peak_heights: Float[Array, " 4"]
    l1: Float[Array, ""]
    linear: Float[Array, " dim"]

    def __call__(self, a: Float[Array, " dim"]) -> Float[Array, ""]:
        cone = self.cone * jnp.linalg.norm(a - self.centre)
        sines = jnp.sum(self.sine_w * jnp.sin(self.sine_v @ a + self.sine_b))
        distances = jnp.linalg.norm(a[None, :] - self.peak_centres, axis=-1)
        peaks = jnp.max(self.peak_heights - self.peak_slope * distances)
        l1 = self.l1 * jnp.sum(jnp.abs(a - self.centre))
        return cone + sines + peaks + l1 + self.linear @ a


def _lipschitz_function(kinds, dim, lipschitz, rng):
    """A random MixedQ with the given terms, scaled to Lipschitz constant `lipschitz`."""
    f32 = lambda x: jnp.asarray(np.asarray(x, dtype=np.float32))  # noqa: E731
    share = lipschitz / len(kinds)
    sine_v = rng.normal(size=(5, dim)) * rng.uniform(0.1, 5.0)
    sine_w = rng.normal(size=5)
    sine_w *= share / np.sum(np.abs(sine_w) * np.linalg.norm(sine_v, axis=1))
    u = rng.normal(size=dim)
    return MixedQ(
        cone=f32(share if "cone_up" in kinds else -share if "cone_down" in kinds else 0.0),
        centre=f32(rng.uniform(-3, 3, dim)),
        sine_w=f32(sine_w if "sines" in kinds else np.zeros(5)),
        sine_v=f32(sine_v),
        sine_b=f32(rng.uniform(0, 6.3, 5)),
        peak_slope=f32(share if "peaks" in kinds else 0.0),
        peak_centres=f32(rng.uniform(-3, 3, (4, dim))),
        peak_heights=f32(rng.uniform(-5, 5, 4)),
        l1=f32(-share / math.sqrt(dim) if "l1" in kinds else 0.0),
        linear=f32(share * u / np.linalg.norm(u) if "linear" in kinds else np.zeros(dim)),
    )


_gap = eqx.filter_jit(functools.partial(T.localisation_gap, num_samples=512))
_difference = eqx.filter_jit(lambda q, a, b: q(a) - q(b))


@hypothesis.given(
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=3, unique=True).filter(
        lambda k: not {"cone_up", "cone_down"} <= set(k)
    ),
    dim=st.sampled_from([1, 3]),
    lipschitz=st.floats(0.1, 10.0),
    radius=st.floats(0.0, 3.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_localisation_gap_within_bound(kinds, dim, lipschitz, radius, seed):
    rng = np.random.default_rng(seed)
    q = _lipschitz_function(kinds, dim, lipschitz, rng)
    a_mu_np = rng.uniform(-3, 3, dim).astype(np.float32)
    a_base_np = rng.uniform(-3, 3, dim).astype(np.float32)
    a_mu, a_base = jnp.asarray(a_mu_np), jnp.asarray(a_base_np)
    distance = float(np.linalg.norm(a_mu_np - a_base_np))
    bound = float(T.localisation_bound(lipschitz, distance, radius))
    assert bound == pytest.approx(lipschitz * max(distance - radius, 0.0), rel=1e-5, abs=1e-6)
    tolerance = 1e-4 * (1 + lipschitz * 12)  # float32 rounding of Q values of size ~ L * 12

    projected = T.radial_projection(a_mu, a_base, radius)
    projected_np = np.asarray(projected)
    assert np.linalg.norm(projected_np - a_base_np) <= min(distance, radius) * (1 + 1e-5) + 1e-6
    assert np.linalg.norm(a_mu_np - projected_np) == pytest.approx(
        max(distance - radius, 0), abs=1e-5
    )
    drop_to_projection = float(_difference(q, a_mu, projected))
    assert drop_to_projection <= bound + tolerance  # eq. (29)-(31)

    gap = float(
        _gap(q, a_mu, a_base, jnp.asarray(radius, dtype=jnp.float32), key=jr.key(seed % 2**31))
    )
    assert gap <= bound + tolerance  # eq. (24), with a conservative (too large) estimate of the gap
    assert gap <= drop_to_projection + tolerance  # the projection is among the candidates


@pytest.mark.parametrize("dim", [1, 3])
def test_localisation_bound_is_attained_by_linear_functions(dim, getkey):
    """Q(a) = L u.a with u along a_mu - a_base: the ball's best point is the radial projection."""
    lipschitz, radius = 3.0, jnp.asarray(0.5)
    rng = np.random.default_rng(dim)
    q = _lipschitz_function(["linear"], dim, lipschitz, rng)
    u = q.linear / lipschitz
    a_base = jr.normal(getkey(), (dim,))
    a_mu = a_base + 2.0 * u
    gap = _gap(q, a_mu, a_base, radius, key=getkey())
    assert float(gap) == pytest.approx(
        float(T.localisation_bound(lipschitz, 2.0, radius)), rel=1e-4
    )
    assert float(gap) == pytest.approx(lipschitz * 1.5, rel=1e-4)
    # inside the ball the bound is 0 and the gap is <= 0
    inside = a_base + 0.25 * u
    assert float(T.localisation_bound(lipschitz, 0.25, radius)) == 0.0
    assert float(_gap(q, inside, a_base, radius, key=getkey())) <= 0
    np.testing.assert_array_equal(
        np.asarray(T.radial_projection(inside, a_base, radius)), np.asarray(inside)
    )
    # a_mu == a_base: no division by zero
    np.testing.assert_array_equal(
        np.asarray(T.radial_projection(a_base, a_base, radius)), np.asarray(a_base)
    )
    np.testing.assert_array_equal(
        np.asarray(T.radial_projection(a_base, a_base, 0.0)), np.asarray(a_base)
    )


def test_localisation_refusals():
    with pytest.raises(ValueError, match="`lipschitz` must be a finite number >= 0, got -1.0"):
        T.localisation_bound(-1.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="`radius` must be a finite number >= 0"):
        T.localisation_bound(1.0, 1.0, math.inf)
    with pytest.raises(ValueError, match="`radius`"):
        T.radial_projection(jnp.ones(2), jnp.zeros(2), -0.5)
    with pytest.raises(Exception, match="`distance_to_best` must be a finite number >= 0"):
        eqx.filter_jit(T.localisation_bound)(jnp.array(1.0), jnp.array(-1.0), jnp.array(0.5))
