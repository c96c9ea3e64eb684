"""Theorem 3.1, eq. (21)-(23): covering numbers and the efficiency ratio."""

import math

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np
import pytest

import spar_eqx.theory as T

SHAPES = ["ball", "cube", "ellipsoid", "simplex", "shell", "clusters", "grid"]


def _sample(shape, n, dim, rng, radius):
    """n points in R^dim from a set of the given kind (convex or not)."""
    if shape == "ball":
        u = rng.normal(size=(n, dim))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        return u * rng.uniform(size=(n, 1)) ** (1 / dim)
    if shape == "cube":
        return rng.uniform(-1, 1, size=(n, dim))
    if shape == "ellipsoid":  # a random linear image of a ball
        return _sample("ball", n, dim, rng, radius) @ rng.normal(size=(dim, dim))
    if shape == "simplex":
        return rng.dirichlet(np.ones(dim + 1), size=n)[:, :dim]
    if shape == "shell":  # non-convex: points on a sphere
        u = rng.normal(size=(n, dim))
        return u / np.linalg.norm(u, axis=1, keepdims=True)
    if shape == "clusters":  # non-convex: two far-apart tight clusters
        centres = np.stack([np.zeros(dim), 5 * np.ones(dim)])
        return centres[rng.integers(0, 2, n)] + 0.1 * rng.normal(size=(n, dim))
    # grid with spacing just above the radius: every grid point becomes a centre (the packing case)
    side = max(1, round(n ** (1 / dim)))
    axes = [np.arange(side) * radius * 1.0001] * dim
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, dim)


def _diameter(points):
    return float(np.sqrt(np.max(np.sum((points[:, None, :] - points[None, :, :]) ** 2, axis=-1))))


def _check_cover(points, radius):
    points = jnp.asarray(np.asarray(points, dtype=np.float32))
    centres = np.asarray(T.greedy_cover(points, radius), dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)  # the float32 values, exactly
    dim = points.shape[1]
    # every point within radius of a centre (1e-12: summation-order rounding only)
    to_centres = np.sqrt(np.sum((points[:, None, :] - centres[None, :, :]) ** 2, axis=-1))
    assert np.all(to_centres.min(axis=1) <= radius * (1 + 1e-12))
    # centres are points of the set, pairwise more than radius apart
    assert np.all(np.min(np.sum((centres[:, None, :] - points[None, :, :]) ** 2, -1), axis=1) == 0)
    between = np.sqrt(np.sum((centres[:, None, :] - centres[None, :, :]) ** 2, axis=-1))
    assert np.all(between[~np.eye(len(centres), dtype=bool)] > radius * (1 - 1e-12))
    # the size never exceeds the paper's (1 + D/r)^d, with D the sample's diameter
    diameter = _diameter(points)
    bound = float(T.covering_number_bound(diameter, radius, dim))
    assert bound == pytest.approx((1 + diameter / radius) ** dim, rel=1e-5)
    assert len(centres) <= bound * (1 + 1e-5)
    return len(centres), bound


@hypothesis.given(
    shape=st.sampled_from(SHAPES),
    n=st.integers(1, 150),
    dim=st.integers(1, 4),
    radius_fraction=st.floats(0.05, 1.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_greedy_cover_within_covering_bound(shape, n, dim, radius_fraction, seed):
    rng = np.random.default_rng(seed)
    points = _sample(shape, n, dim, rng, radius=1.0)
    scale = max(_diameter(points), 1e-3)
    radius = radius_fraction * scale
    if shape == "grid":
        points = _sample(shape, n, dim, rng, radius=radius)
    _check_cover(points, radius)


@hypothesis.settings(max_examples=2 * hypothesis.settings.default.max_examples)
@hypothesis.given(
    points=hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 16), st.integers(1, 3)),
        elements=st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False, width=32),
    ),
    radius=st.floats(0.05, 3.0),
)
def test_greedy_cover_adversarial_points(points, radius):
    """Hypothesis places the points itself (and shrinks towards tight packings) to look for a
    counterexample to (1 + D/r)^d."""
    count, bound = _check_cover(points, radius)
    hypothesis.target(count / bound)  # steer the search towards near-violations


def test_covering_bound_is_tight_in_one_dimension():
    # k points spaced just over r: all k are centres, and (1 + D/r) = 1 + (k-1) * 1.0001 ~ k
    radius, k = 0.3, 50
    points = (np.arange(k) * radius * 1.0001)[:, None]
    count, bound = _check_cover(points, radius)
    assert count == k
    assert count / bound > 0.999


def test_covering_bound_special_cases_and_log():
    # Vershynin's unit ball, N(B, eps) <= (1 + 2/eps)^n, is D = 2
    assert float(T.covering_number_bound(2.0, 0.5, 3)) == pytest.approx(125.0, rel=1e-6)
    assert float(T.covering_number_bound(0.0, 0.5, 7)) == 1.0  # a single point
    # eq. (21)/(22) at r = eps / (2L)
    lipschitz, epsilon, diameter, delta = 3.0, 0.1, 2 * math.sqrt(6), 0.4
    r = epsilon / (2 * lipschitz)
    assert float(T.covering_number_bound(diameter, r, 6)) == pytest.approx(
        (1 + 2 * lipschitz * diameter / epsilon) ** 6, rel=1e-5
    )
    assert float(T.covering_number_bound(2 * delta, r, 6)) == pytest.approx(
        (1 + 4 * lipschitz * delta / epsilon) ** 6, rel=1e-5
    )
    # the log version does not overflow where the plain one does
    assert math.isinf(float(T.covering_number_bound(1e3, 1e-3, 20)))
    assert float(T.log_covering_number_bound(1e3, 1e-3, 20)) == pytest.approx(
        20 * math.log1p(1e6), rel=1e-6
    )
    with pytest.raises(ValueError, match="`radius` must be a finite number > 0, got 0.0"):
        T.covering_number_bound(1.0, 0.0, 2)
    with pytest.raises(ValueError, match="`dim` must be an integer >= 1"):
        T.covering_number_bound(1.0, 0.5, 0)
    with pytest.raises(ValueError, match="`diameter`"):
        T.covering_number_bound(-1.0, 0.5, 2)
    with pytest.raises(ValueError, match="`radius`"):
        T.greedy_cover(jnp.zeros((3, 2)), -1.0)
    with pytest.raises(ValueError, match="finite"):
        T.greedy_cover(jnp.array([[0.0, jnp.nan]]), 1.0)


@hypothesis.given(
    diameter=st.floats(0.1, 10.0),
    delta_fraction=st.floats(0.01, 2.0),
    lipschitz=st.floats(0.1, 10.0),
    epsilon=st.floats(1e-3, 1.0),
    dim=st.integers(1, 30),
)
def test_efficiency_ratio_properties(diameter, delta_fraction, lipschitz, epsilon, dim):
    delta = delta_fraction * diameter / 2
    log_ratio = float(T.log_efficiency_ratio(diameter, delta, lipschitz, epsilon, dim))
    expected = dim * math.log(diameter / (2 * delta)) + math.log(
        math.log1p(2 * lipschitz * diameter / epsilon) / math.log1p(4 * lipschitz * delta / epsilon)
    )
    assert log_ratio == pytest.approx(expected, rel=1e-4, abs=1e-4)
    if abs(log_ratio) < 50:
        ratio = float(T.efficiency_ratio(diameter, delta, lipschitz, epsilon, dim))
        assert ratio == pytest.approx(math.exp(log_ratio), rel=1e-4)
    # > 1 exactly when the residual ball is narrower than the action set (D > 2 delta)
    if delta_fraction < 0.999:
        assert log_ratio > 0
    elif delta_fraction > 1.001:
        assert log_ratio < 0
    # growing with the dimension when D > 2 delta
    if delta_fraction < 0.999:
        assert (
            float(T.log_efficiency_ratio(diameter, delta, lipschitz, epsilon, dim + 1)) > log_ratio
        )


@pytest.mark.parametrize("dim", [1, 3, 6])
def test_efficiency_ratio_is_the_leading_term_of_the_bound_ratio(dim):
    """(21)/(22) times the log factor, over eq. (23), is ((1 + eps/(2LD)) / (1 + eps/(4L delta)))^d,
    which tends to 1 as eps -> 0."""
    diameter, delta, lipschitz = 2.0, 0.2, 1.0
    for epsilon, tolerance in [(1e-1, 0.5), (1e-3, 0.01), (1e-5, 1e-4)]:
        log_bounds = T.log_covering_number_bound(diameter, epsilon / (2 * lipschitz), dim) - (
            T.log_covering_number_bound(2 * delta, epsilon / (2 * lipschitz), dim)
        )
        log_exact = log_bounds + jnp.log(
            T.log_covering_number_bound(diameter, epsilon / (2 * lipschitz), dim)
            / T.log_covering_number_bound(2 * delta, epsilon / (2 * lipschitz), dim)
        )
        gap = float(log_exact - T.log_efficiency_ratio(diameter, delta, lipschitz, epsilon, dim))
        expected_gap = dim * (
            math.log1p(epsilon / (2 * lipschitz * diameter))
            - math.log1p(epsilon / (4 * lipschitz * delta))
        )
        assert gap == pytest.approx(expected_gap, abs=2e-4 * dim)
        assert abs(gap) <= tolerance * dim


def test_efficiency_ratio_docs_example():
    """The example in docs/theory.md: d = 6, the cube [-1, 1]^6, delta = 0.4, L = 1, eps = 0.1."""
    dim, diameter, delta, lipschitz, epsilon = 6, 2 * math.sqrt(6), 0.4, 1.0, 0.1
    r = epsilon / (2 * lipschitz)
    log_global = float(T.log_covering_number_bound(diameter, r, dim))
    log_residual = float(T.log_covering_number_bound(2 * delta, r, dim))
    log_bounds_ratio = log_global - log_residual + math.log(log_global / log_residual)
    log_eq23 = float(T.log_efficiency_ratio(diameter, delta, lipschitz, epsilon, dim))
    assert log_eq23 / math.log(10) == pytest.approx(4.93, abs=0.005)
    assert log_bounds_ratio / math.log(10) == pytest.approx(4.80, abs=0.005)
    # d = 17 (humanoid-sized): the global bound is 10^37.7, near float32's largest value 3.4e38
    log_17 = float(T.log_covering_number_bound(2 * math.sqrt(17), r, 17))
    assert log_17 / math.log(10) == pytest.approx(37.74, abs=0.01)


def test_paper_log_factor_claim_is_not_general():
    """Appendix A.1 says the log factor is < 2 when eps < L delta < L D (for D4RL). It is not in
    general: with D / delta = 100 and eps = L delta / 2 it is 2.73."""
    diameter, delta, lipschitz = 2.0, 0.02, 1.0
    epsilon = lipschitz * delta / 2
    log_factor = float(T.log_efficiency_ratio(diameter, delta, lipschitz, epsilon, 1)) - math.log(
        diameter / (2 * delta)
    )
    assert math.exp(log_factor) == pytest.approx(math.log(401) / math.log(9), rel=1e-4)
    assert math.exp(log_factor) > 2.7
