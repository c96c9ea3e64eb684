"""Proposition 3.3(i): the weighted regression target is the convex combination of the samples."""

import equinox as eqx
import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import spar_eqx.theory as T


@st.composite
def weighted_points(draw):
    """K = 8 points in dim 1 or 3; zero weights (drawn often) stand for a smaller K."""
    dim = draw(st.sampled_from([1, 3]))
    points = draw(hnp.arrays(np.float64, (8, dim), elements=st.floats(-10, 10)))
    raw = draw(hnp.arrays(np.float64, (8,), elements=st.floats(0, 1)))
    weights = raw / raw.sum() if raw.sum() > 0 else np.full(8, 1 / 8)
    perturbation = draw(hnp.arrays(np.float64, (dim,), elements=st.floats(-5, 5)))
    return points.astype(np.float32), weights.astype(np.float32), perturbation.astype(np.float32)


@jax.jit
def _optimality(points, weights, perturbation):
    x_star = T.convex_combination_minimizer(points, weights)

    def loss(x):
        return T.weighted_squared_loss(x, points, weights)

    return x_star, jax.grad(loss)(x_star), loss(x_star), loss(x_star + perturbation)


@hypothesis.given(weighted_points())
def test_convex_combination_is_the_minimiser(data):
    points, weights, perturbation = data
    x_star = T.convex_combination_minimizer(jnp.asarray(points), jnp.asarray(weights))
    reference = weights.astype(np.float64) @ points.astype(np.float64)
    np.testing.assert_allclose(np.asarray(x_star), reference, rtol=1e-5, atol=1e-5)
    # inside the convex hull: between the coordinate-wise extremes of the samples with weight > 0
    support = points[weights > 0]
    assert np.all(np.asarray(x_star) >= support.min(axis=0) - 1e-5)
    assert np.all(np.asarray(x_star) <= support.max(axis=0) + 1e-5)

    traced_x_star, gradient, loss_star, loss_perturbed = _optimality(
        jnp.asarray(points), jnp.asarray(weights), jnp.asarray(perturbation)
    )
    np.testing.assert_allclose(np.asarray(traced_x_star), np.asarray(x_star), rtol=1e-6, atol=1e-6)
    # eq. (34): the gradient vanishes at x*
    np.testing.assert_allclose(np.asarray(gradient), 0.0, atol=1e-4)
    # L(x) = L(x*) + |x - x*|^2 (weights sum to 1): a perturbation costs exactly its squared size
    increase = float(loss_perturbed - loss_star)
    expected = float(np.sum(perturbation.astype(np.float64) ** 2))
    assert increase == pytest.approx(expected, rel=1e-3, abs=1e-3)
    assert float(loss_star) <= float(loss_perturbed) + 1e-3


def test_convex_combination_refusals():
    points = jnp.eye(3)
    with pytest.raises(ValueError, match="`weights` must be non-negative"):
        T.convex_combination_minimizer(points, jnp.array([1.5, -0.5, 0.0]))
    with pytest.raises(ValueError, match="`weights` must sum to 1 within .*summing to 2.0"):
        T.convex_combination_minimizer(points, jnp.array([1.0, 0.5, 0.5]))
    with pytest.raises(ValueError, match="must be non-negative"):
        T.convex_combination_minimizer(points, jnp.array([jnp.nan, 0.5, 0.5]))
    with pytest.raises(Exception, match="`weights` must sum to 1"):
        eqx.filter_jit(T.convex_combination_minimizer)(points, jnp.array([0.2, 0.2, 0.2]))
    # softmax weights pass, under jit too
    w = jax.nn.softmax(jnp.array([0.3, -1.0, 2.0]))
    np.testing.assert_allclose(
        eqx.filter_jit(T.convex_combination_minimizer)(points, w), w, rtol=1e-6
    )


def test_residual_regressor_converges_to_the_convex_combination(getkey):
    """A small MLP trained on the latent self-imitation loss (10) for one fixed state outputs x*."""
    rng = np.random.default_rng(0)
    state = jnp.asarray(rng.normal(size=3).astype(np.float32))
    points = jnp.asarray(rng.normal(size=(6, 2)).astype(np.float32))
    scores = rng.normal(size=6) / 0.5
    weights = jnp.asarray((np.exp(scores) / np.exp(scores).sum()).astype(np.float32))
    target = T.convex_combination_minimizer(points, weights)
    model = eqx.nn.MLP(3, 2, width_size=16, depth=1, key=getkey())
    optimiser = optax.adam(1e-2)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimiser.init(params)

    def loss_fn(params):
        return T.weighted_squared_loss(eqx.combine(params, static)(state), points, weights)

    @jax.jit
    def train(params, opt_state):
        def step(carry, _):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = optimiser.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), loss

        return jax.lax.scan(step, (params, opt_state), None, length=400)

    with jax.numpy_dtype_promotion("standard"):  # optax's bias correction raises int32 to a power
        (params, _), losses = train(params, opt_state)
    output = eqx.combine(params, static)(state)
    assert float(jnp.linalg.norm(target)) > 0.05  # a non-trivial target
    np.testing.assert_allclose(np.asarray(output), np.asarray(target), atol=1e-3)
    # the loss reaches its minimum, the weighted spread of the samples around x*
    floor = float(T.weighted_squared_loss(target, points, weights))
    assert float(losses[0]) > floor + 1e-2
    assert float(losses[-1]) == pytest.approx(floor, abs=1e-5)
