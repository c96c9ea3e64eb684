"""Residual models of Stage II (MLP, CVAE, latent policy) and Polyak averaging."""

import functools

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given

from spar_eqx import LatentPolicy, ResidualCVAE, ResidualMLP, polyak

from .helpers import tree_allclose, tree_equal_bits

# Sizes shared with the other test files (random init compiles once per parameter shape).
OBS, ACT, WIDTH, DEPTH, LATENT, BATCH = 3, 2, 16, 1, 2, 6


def _data(seed, *shape):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


@functools.cache
def _models():
    k1, k2, k3, k4 = jr.split(jr.key(3), 4)
    return (
        ResidualMLP(OBS, ACT, WIDTH, DEPTH, key=k1),
        ResidualCVAE(OBS, ACT, LATENT, WIDTH, DEPTH, key=k2),
        LatentPolicy(OBS, ACT, LATENT, WIDTH, DEPTH, max_latent=1.5, key=k3),
        ResidualCVAE(OBS, ACT, LATENT, WIDTH, DEPTH, key=k4),
    )


def _nonzero_leaves(tree):
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_inexact_array))
    return [bool(np.any(np.asarray(g) != 0)) for g in leaves]


def test_residual_mlp_shapes_and_gradients():
    res, _, _, _ = _models()
    obs, base = _data(0, BATCH, OBS), _data(1, BATCH, ACT)
    out = jax.vmap(res)(obs, base)
    assert out.shape == (BATCH, ACT) and out.dtype == jnp.float32
    # A linear head: the residual is unbounded (it is clipped only with a_base added).
    np.testing.assert_allclose(res(obs[0], base[0]), out[0], rtol=1e-6, atol=1e-6)
    grads = eqx.filter_jit(eqx.filter_grad(lambda m: jnp.sum(jax.vmap(m)(obs, base) ** 2)))(res)
    assert all(_nonzero_leaves(grads))
    # The residual depends on the base action it corrects.
    g = eqx.filter_jit(jax.grad(lambda b: jnp.sum(res(obs[0], b))))(base[0])
    assert np.any(np.asarray(g) != 0)


def test_cvae_shapes_and_log_std_range(getkey):
    _, cvae, _, _ = _models()
    obs, base, delta = 100.0 * _data(2, BATCH, OBS), _data(3, BATCH, ACT), _data(4, BATCH, ACT)
    mean, log_std = jax.vmap(cvae.encode)(obs, base, delta)
    assert mean.shape == log_std.shape == (BATCH, LATENT)
    assert np.all((np.asarray(log_std) >= -4.0) & (np.asarray(log_std) <= 15.0))
    keys = jr.split(getkey(), BATCH)
    recon, m2, s2 = jax.vmap(lambda o, b, d, k: cvae(o, b, d, key=k))(obs, base, delta, keys)
    assert recon.shape == (BATCH, ACT) and recon.dtype == jnp.float32
    assert np.array_equal(m2, mean) and np.array_equal(s2, log_std)
    latents = jax.vmap(lambda k: cvae.sample_latents(4, key=k))(keys)
    assert latents.shape == (BATCH, 4, LATENT)
    decoded = jax.vmap(cvae.decode)(obs, base, latents[:, 0])
    assert decoded.shape == (BATCH, ACT)


def test_cvae_call_is_the_reparameterised_decode(getkey):
    _, cvae, _, _ = _models()
    obs, base, delta = _data(5, OBS), _data(6, ACT), _data(7, ACT)
    key = getkey()
    recon, mean, log_std = cvae(obs, base, delta, key=key)
    z = mean + jnp.exp(log_std) * jr.normal(key, (LATENT,))
    np.testing.assert_allclose(recon, cvae.decode(obs, base, z), rtol=1e-5, atol=1e-6)
    again, _, _ = cvae(obs, base, delta, key=key)
    assert np.array_equal(recon, again)


def test_cvae_gradients_reach_encoder_through_the_latent(getkey):
    _, cvae, _, _ = _models()
    obs, base, delta = _data(8, BATCH, OBS), _data(9, BATCH, ACT), _data(10, BATCH, ACT)
    keys = jr.split(getkey(), BATCH)

    def recon_loss(model):
        recon, _, _ = jax.vmap(lambda o, b, d, k: model(o, b, d, key=k))(obs, base, delta, keys)
        return jnp.sum((recon - delta) ** 2)

    grads = eqx.filter_jit(eqx.filter_grad(recon_loss))(cvae)
    # The reconstruction alone trains the decoder and, via z = mean + std * eps, the encoder.
    assert all(_nonzero_leaves(grads.decoder)) and all(_nonzero_leaves(grads.encoder))


def test_cvae_sample_decodes_prior_latents(getkey):
    _, cvae, _, _ = _models()
    obs, base, key = _data(11, OBS), _data(12, ACT), getkey()
    samples = cvae.sample(obs, base, 7, key=key)
    assert samples.shape == (7, ACT)
    latents = cvae.sample_latents(7, key=key)
    expected = jnp.stack([cvae.decode(obs, base, z) for z in latents])
    np.testing.assert_allclose(samples, expected, rtol=1e-5, atol=1e-6)
    assert len({tuple(np.asarray(r).tolist()) for r in samples}) == 7


def test_prior_latents_are_standard_normal():
    _, cvae, _, _ = _models()
    z = np.asarray(cvae.sample_latents(20_000, key=jr.key(0)), np.float64)
    assert z.shape == (20_000, LATENT)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=0.03)
    assert abs(np.corrcoef(z.T)[0, 1]) < 0.03


@given(scale=st.sampled_from([0.0, 1.0, 1e3, 1e6]), seed=st.integers(0, 2**16))
def test_latent_policy_is_bounded(scale, seed):
    _, _, latent_policy, _ = _models()
    z = jax.vmap(latent_policy)(scale * _data(seed, BATCH, OBS), _data(seed + 1, BATCH, ACT))
    assert z.shape == (BATCH, LATENT) and z.dtype == jnp.float32
    assert np.all(np.abs(z) <= 1.5)


@pytest.mark.parametrize(
    "make",
    [
        lambda k: ResidualMLP(OBS, 0, key=k),
        lambda k: ResidualCVAE(OBS, ACT, latent_dim=0, key=k),
        lambda k: ResidualCVAE(OBS, ACT, depth=0, key=k),
        lambda k: LatentPolicy(OBS, ACT, LATENT, WIDTH, DEPTH, max_latent=0.0, key=k),
    ],
)
def test_bad_sizes_are_refused(make):
    with pytest.raises(ValueError):
        make(jr.key(0))


@given(tau=st.floats(0.0, 1.0))
def test_polyak_is_the_convex_combination(tau):
    _, online, _, target = _models()
    mixed = polyak(target, online, tau)
    assert jax.tree_util.tree_structure(mixed) == jax.tree_util.tree_structure(target)
    expected = jax.tree_util.tree_map(
        lambda t, o: (1.0 - tau) * np.asarray(t, np.float64) + tau * np.asarray(o, np.float64),
        eqx.filter(target, eqx.is_inexact_array),
        eqx.filter(online, eqx.is_inexact_array),
    )
    assert tree_allclose(eqx.filter(mixed, eqx.is_inexact_array), expected, rtol=1e-5, atol=1e-6)
    assert mixed.latent_dim == target.latent_dim


def test_polyak_endpoints_are_exact():
    _, online, _, target = _models()
    assert tree_equal_bits(polyak(target, online, 0.0), target)
    assert tree_equal_bits(polyak(target, online, 1.0), online)


@pytest.mark.parametrize("tau", [-0.1, 1.5, float("nan")])
def test_polyak_refuses_bad_rates(tau):
    _, online, _, target = _models()
    with pytest.raises(ValueError, match="tau"):
        polyak(target, online, tau)
