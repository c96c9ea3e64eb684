"""The losses: closed forms, minimisers, and gradients stopped where the paper stops them."""

import functools

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from spar_eqx import (
    bc_loss,
    bc_nll_loss,
    convex_targets,
    expectile_loss,
    gaussian_kl,
    latent_self_imitation,
    value_guidance,
    weighted_reconstruction,
)

B, K, A, DZ = 4, 5, 2, 3  # fixed shapes: hypothesis varies values, not shapes (no recompiles)

_f = st.floats(-10.0, 10.0, width=32, allow_subnormal=False)
taus = st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9, 0.99])


def _arr(shape, elements=_f):
    return hnp.arrays(np.float32, shape, elements=elements)


# Jitted once (fixed shapes), so hypothesis examples run compiled code instead of re-tracing
# `jax.grad` eagerly each time. Runtime type checks still run, at trace time.
_bc = jax.jit(jax.value_and_grad(bc_loss))
_recon = jax.jit(jax.value_and_grad(weighted_reconstruction, argnums=(0, 2)))
_kl = jax.jit(gaussian_kl)
_guidance = jax.jit(jax.value_and_grad(value_guidance))
_self_imitation = jax.jit(jax.value_and_grad(latent_self_imitation, argnums=(0, 1, 2)))


@functools.partial(jax.jit, static_argnums=2)
def _expectile_landscape(x, grid, tau):
    """`E[expectile(x - m)]` for a constant prediction m at every point, and its gradient."""
    loss = lambda m: expectile_loss(x - m, tau)
    return jax.vmap(loss)(grid), jax.vmap(jax.grad(loss))(grid)


def _expectile(x: np.ndarray, tau: float) -> float:
    """The tau-expectile of a sample: the root of tau E(x-m)_+ = (1-tau) E(m-x)_+ (bisection)."""
    x = x.astype(np.float64)
    lo, hi = x.min(), x.max()
    for _ in range(200):
        m = 0.5 * (lo + hi)
        g = tau * np.sum(np.maximum(x - m, 0)) - (1 - tau) * np.sum(np.maximum(m - x, 0))
        lo, hi = (m, hi) if g > 0 else (lo, m)
    return 0.5 * (lo + hi)


# --- expectile -------------------------------------------------------------------------------


@given(diff=_arr(8))
def test_expectile_half_is_half_mse(diff):
    loss = expectile_loss(jnp.asarray(diff), 0.5)
    assert loss.shape == () and loss.dtype == jnp.float32
    assert float(loss) == pytest.approx(0.5 * np.mean(diff.astype(np.float64) ** 2), rel=1e-5)


@given(diff=_arr(8), tau=taus)
def test_expectile_is_asymmetric(diff, tau):
    d = diff.astype(np.float64)
    # u = target - prediction: under-estimates (u > 0) weigh tau, over-estimates 1 - tau.
    expected = np.mean(np.where(d < 0, 1 - tau, tau) * d**2)
    assert float(expectile_loss(jnp.asarray(diff), tau)) == pytest.approx(
        expected, rel=1e-5, abs=1e-7
    )
    mirrored = expectile_loss(jnp.asarray(-diff), 1.0 - tau)
    assert float(mirrored) == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_expectile_weights_by_sign():
    pos, neg = jnp.array([1.0, 2.0]), jnp.array([-1.0, -2.0])
    assert float(expectile_loss(pos, 0.9)) == pytest.approx(0.9 * 2.5)
    assert float(expectile_loss(neg, 0.9)) == pytest.approx(0.1 * 2.5)


@given(x=_arr(8), tau=taus)
def test_expectile_minimiser_over_a_constant_is_the_sample_expectile(x, tau):
    target = _expectile(x, tau)
    grid = np.linspace(x.min() - 1, x.max() + 1, 401, dtype=np.float32)
    # Evaluate at the closed-form expectile too (last point).
    points = jnp.asarray(np.append(grid, np.float32(target)))
    values, grads = _expectile_landscape(jnp.asarray(x), points, tau)
    values, grads = np.asarray(values), np.asarray(grads)
    # The gradient vanishes at the closed-form expectile ...
    scale = 1.0 + np.mean(np.abs(x))
    assert abs(grads[-1]) <= 1e-4 * scale
    # ... and the expectile beats every point of a grid over the sample's range.
    best = grid[int(np.argmin(values[:-1]))]
    assert abs(best - target) <= (grid[1] - grid[0]) + 1e-5
    assert values[-1] <= values[:-1].min() + 1e-5 * scale**2


def test_expectile_minimiser_known_values():
    # Two equally likely values 0 and 1: the tau-expectile is tau itself.
    x = np.array([0.0, 1.0] * 4, np.float32)
    grad = jax.grad(lambda m, tau: expectile_loss(jnp.asarray(x) - m, tau))
    for tau in (0.5, 0.7, 0.9):
        assert _expectile(x, tau) == pytest.approx(tau)
        assert float(grad(jnp.float32(tau), tau)) == pytest.approx(0.0, abs=1e-6)


# --- behaviour cloning ------------------------------------------------------------------------


@given(pred=_arr((B, A)), act=_arr((B, A)))
def test_bc_losses(pred, act):
    loss, grad = _bc(jnp.asarray(pred), jnp.asarray(act))
    d = pred.astype(np.float64) - act
    assert float(loss) == pytest.approx(np.mean(np.sum(d**2, -1)), rel=1e-5, abs=1e-6)
    assert float(_bc(jnp.asarray(act), jnp.asarray(act))[0]) == 0.0
    np.testing.assert_allclose(grad, 2 * d / B, rtol=1e-5, atol=1e-5)
    log_probs = jnp.asarray(pred[:, 0])
    assert float(bc_nll_loss(log_probs)) == pytest.approx(-np.mean(pred[:, 0]), rel=1e-5, abs=1e-6)


# --- weighted reconstruction -----------------------------------------------------------------


@given(
    pred=_arr((B, A)),
    target=_arr((B, A)),
    weights=_arr(B, st.floats(0.0, 100.0, width=32, allow_subnormal=False)),
    scale=st.floats(0.0, 10.0, width=32, allow_subnormal=False),
)
def test_weighted_reconstruction_value_and_gradients(pred, target, weights, scale):
    p, t, w = jnp.asarray(pred), jnp.asarray(target), jnp.asarray(weights)
    loss, (g_pred, g_w) = _recon(p, t, w)
    d = pred.astype(np.float64) - target
    expected = np.mean(weights * np.sum(d**2, -1))
    assert float(loss) == pytest.approx(expected, rel=1e-4, abs=1e-4)
    # Linear in the weights.
    scaled, _ = _recon(p, t, w * np.float32(scale))
    assert float(scaled) == pytest.approx(scale * float(loss), rel=1e-4, abs=1e-4)
    # The weights carry no gradient; the prediction does.
    np.testing.assert_array_equal(g_w, 0.0)
    np.testing.assert_allclose(
        g_pred, 2 * weights[:, None] * d / B, rtol=1e-4, atol=1e-4 * (1 + np.abs(expected))
    )


# --- KL ------------------------------------------------------------------------------------


@given(
    mean=_arr((B, DZ), st.floats(-3, 3, width=32, allow_subnormal=False)),
    log_std=_arr((B, DZ), st.floats(-3, 2)),
)
def test_kl_closed_form_and_non_negative(mean, log_std):
    kl = _kl(jnp.asarray(mean), jnp.asarray(log_std))
    m, s = mean.astype(np.float64), log_std.astype(np.float64)
    expected = np.mean(np.sum(0.5 * (m**2 + np.exp(2 * s) - 1 - 2 * s), -1))
    assert float(kl) == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert float(kl) >= -1e-6


def test_kl_is_zero_at_the_prior_with_zero_gradient():
    zeros = jnp.zeros((B, DZ))
    kl, (g_mean, g_log_std) = jax.jit(jax.value_and_grad(gaussian_kl, argnums=(0, 1)))(zeros, zeros)
    assert float(kl) == 0.0
    np.testing.assert_array_equal(g_mean, 0.0)
    np.testing.assert_array_equal(g_log_std, 0.0)
    nudged = np.zeros((B, DZ), np.float32)
    nudged[0, 0] = 0.1
    assert float(_kl(jnp.asarray(nudged), zeros)) > 0


@pytest.mark.parametrize(
    "mean, log_std", [([0.5, -1.0, 0.0], [0.0, -0.5, 0.7]), ([2.0, 0.0, 0.3], [-1.0, 0.2, 0.0])]
)
def test_kl_matches_monte_carlo(mean, log_std):
    m, s = np.array(mean), np.array(log_std)
    rng = np.random.default_rng(0)
    z = m + np.exp(s) * rng.normal(size=(400_000, 3))
    log_q = -0.5 * (((z - m) / np.exp(s)) ** 2 + 2 * s + np.log(2 * np.pi))
    log_p = -0.5 * (z**2 + np.log(2 * np.pi))
    samples = np.sum(log_q - log_p, -1)
    estimate, stderr = samples.mean(), samples.std() / np.sqrt(samples.size)
    kl = gaussian_kl(jnp.asarray([mean], jnp.float32), jnp.asarray([log_std], jnp.float32))
    assert abs(float(kl) - estimate) < 4 * stderr + 1e-4


# --- value guidance ----------------------------------------------------------------------------


@given(q=_arr(B))
def test_value_guidance_ascends_q(q):
    value, grad = _guidance(jnp.asarray(q))
    assert float(value) == pytest.approx(-np.mean(q), rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(grad, -1.0 / B, rtol=1e-6)


# --- latent self-imitation -----------------------------------------------------------------------

omegas = _arr((B, K), st.floats(0.0, 1.0, width=32, allow_subnormal=False)).map(
    lambda w: w / np.maximum(w.sum(-1, keepdims=True), np.float32(1e-6))
)


@given(pred=_arr((B, K, A)), targets=_arr((B, K, A)), omega=omegas)
def test_latent_self_imitation_gradients_stop_at_targets_and_omega(pred, targets, omega):
    p, t, w = jnp.asarray(pred), jnp.asarray(targets), jnp.asarray(omega)
    loss, (g_pred, g_t, g_w) = _self_imitation(p, t, w)
    d = pred.astype(np.float64) - targets
    expected = np.mean(np.sum(omega * np.sum(d**2, -1), -1))
    assert loss.shape == () and float(loss) == pytest.approx(expected, rel=1e-4, abs=1e-4)
    np.testing.assert_array_equal(g_t, 0.0)
    np.testing.assert_array_equal(g_w, 0.0)
    np.testing.assert_allclose(g_pred, 2 * omega[..., None] * d / B, rtol=1e-4, atol=1e-4)
    if np.any(np.abs(2 * omega[..., None] * d / B) > 1e-30):  # not lost to underflow
        assert np.any(np.asarray(g_pred) != 0)


def _shared_loss(shared, targets, omega):
    """Eq. 10 with one prediction per state, shared by its K candidates."""
    return latent_self_imitation(jnp.broadcast_to(shared[:, None, :], (B, K, A)), targets, omega)


_shared_value_and_grad = jax.jit(jax.value_and_grad(_shared_loss))


@jax.jit
def _descend(targets, omega):
    """Plain gradient descent on the shared predictions, from zero (one compile)."""
    grad = jax.grad(_shared_loss)
    step = lambda _, shared: shared - 0.25 * B * grad(shared, targets, omega)
    return jax.lax.fori_loop(0, 60, step, jnp.zeros((B, A)))


@given(targets=_arr((B, K, A)), omega=omegas)
def test_shared_prediction_minimiser_is_the_weighted_combination(targets, omega):
    # Prop. 3.3 (i): a prediction shared by the K candidates of a state is pulled to
    # sum_k omega_k delta_k / sum_k omega_k (= the convex combination when omega sums to 1).
    totals = omega.sum(-1).astype(np.float64)
    rows = totals > 0.5  # rows where (nearly) every omega is 0 have (almost) no target
    t, w = jnp.asarray(targets), jnp.asarray(omega)
    combo = np.einsum("bk,bka->ba", omega.astype(np.float64), targets)
    combo = combo / np.maximum(totals, 1e-30)[:, None]
    at_combo = jnp.asarray(combo, jnp.float32)
    at_value, grad = _shared_value_and_grad(at_combo, t, w)
    np.testing.assert_allclose(np.asarray(grad)[rows], 0.0, atol=1e-4)
    nudged = jnp.asarray(combo + np.where(rows[:, None], 0.1, 0.0), jnp.float32)
    assert float(_shared_value_and_grad(nudged, t, w)[0]) >= float(at_value)
    np.testing.assert_allclose(np.asarray(_descend(t, w))[rows], combo[rows], atol=1e-3)


def test_the_two_readings_of_latent_self_imitation():
    """Literal eq. 10: each latent's minimiser is its own target (zero loss, zero gradient
    when the online decoder equals the target). Prop. 3.3(i): one combined target per state,
    sum_k omega_k delta_k, at which the gradient vanishes instead."""
    rng = np.random.default_rng(0)
    targets = jnp.asarray(rng.normal(size=(B, K, A)), jnp.float32)
    omega = jnp.asarray(rng.dirichlet(np.ones(K), size=B), jnp.float32)
    combined = convex_targets(targets, omega)
    np.testing.assert_allclose(
        combined, np.einsum("bk,bka->ba", np.asarray(omega), np.asarray(targets)), rtol=1e-5
    )
    # Literal: predicted == targets is the minimum (online == EMA target at step 0).
    grad = jax.grad(latent_self_imitation)(targets, targets, omega)
    assert float(latent_self_imitation(targets, targets, omega)) == 0.0
    assert np.all(np.asarray(grad) == 0.0)
    # Convex: the same point is not a minimum; the combination is.
    broadcast = jnp.broadcast_to(combined[:, None, :], targets.shape)
    assert float(latent_self_imitation(targets, broadcast, omega)) > 0.0
    grad_at_combined = jax.grad(
        lambda x: latent_self_imitation(jnp.broadcast_to(x[:, None, :], targets.shape),
                                        targets, omega)
    )(combined)  # fmt: skip
    np.testing.assert_allclose(grad_at_combined, 0.0, atol=1e-5)
    # A state whose candidates were all filtered out has no target.
    assert np.all(np.asarray(convex_targets(targets, jnp.zeros_like(omega))) == 0.0)
