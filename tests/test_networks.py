"""Policy and value networks: shapes under runtime checks, bounds, the tanh-Gaussian density."""

import functools

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import jaxtyping
import numpy as np
import pytest
from hypothesis import given

from spar_eqx import DeterministicPolicy, QNetwork, TanhGaussianPolicy, ValueNetwork

# Shared sizes across these test files: random initialisation compiles once per parameter
# shape (slow on 2 CPU cores), so every file reuses the same few shapes.
OBS, ACT, WIDTH, DEPTH, BATCH = 3, 2, 16, 1, 5


def _data(seed, *shape, low=None):
    """Test inputs from numpy (no JAX random program to compile): N(0, 1), or U(low, -low)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) if low is None else rng.uniform(low, -low, size=shape)
    return jnp.asarray(x, jnp.float32)


def _gaussian_bias(mean, log_std):
    """The last-layer bias that makes the pre-tanh Gaussian `N(mean, exp(log_std)^2)`."""
    raw = jnp.arctanh((log_std + 5.0) / 3.5 - 1.0)  # inverse of the squash onto [-5, 2]
    return jnp.concatenate([mean, raw])


def _with_bias(policy, bias):
    last = policy.mlp.layers[-1]
    return eqx.tree_at(
        lambda p: (p.mlp.layers[-1].weight, p.mlp.layers[-1].bias),
        policy,
        (jnp.zeros_like(last.weight), bias),
    )


@functools.cache
def _skeleton(act_dim, max_action):
    return TanhGaussianPolicy(
        OBS, act_dim, width=WIDTH, depth=DEPTH, max_action=max_action, key=jr.key(0)
    )


def _fixed_gaussian(mean, log_std, max_action=1.0):
    """A TanhGaussianPolicy whose pre-tanh Gaussian is `N(mean, exp(log_std)^2)` for every state.

    The last layer's weight is zeroed and its bias set so that `distribution` returns exactly
    `mean` and (up to float32 rounding) `log_std`.
    """
    mean = jnp.asarray(mean, jnp.float32)
    log_std = jnp.asarray(log_std, jnp.float32)
    return _with_bias(_skeleton(mean.shape[0], max_action), _gaussian_bias(mean, log_std))


_MAX_ACTIONS = (0.5, 3.0)


@functools.cache
def _sampler():
    """One jitted program (one compile) for every `max_action` in `_MAX_ACTIONS`: a 2-d fixed
    Gaussian from `(mean, log_std)` arrays; its samples, their log-probs, the log-probs that
    `log_prob` gives them, and `log_prob` at the bounds."""
    skeletons = [_skeleton(2, m) for m in _MAX_ACTIONS]

    def one(policy, key):
        m, obs = policy.max_action, jnp.zeros(OBS)
        actions, sampled = jax.vmap(lambda k: policy.sample(obs, key=k))(jr.split(key, 64))
        evaluated = jax.vmap(policy.log_prob, in_axes=(None, 0))(obs, actions)
        edges = jnp.array([[m, -m], [0.0, m]])
        edge_lp = jax.vmap(policy.log_prob, in_axes=(None, 0))(obs, edges)
        return actions, sampled, evaluated, edge_lp

    @jax.jit
    def run(mean, log_std, key):
        bias = _gaussian_bias(mean, log_std)
        return [one(_with_bias(skeleton, bias), key) for skeleton in skeletons]

    return run


def _networks(key):
    k1, k2, k3, k4 = jr.split(key, 4)
    return {
        "deterministic": DeterministicPolicy(OBS, ACT, width=WIDTH, depth=DEPTH, key=k1),
        "gaussian": TanhGaussianPolicy(OBS, ACT, width=WIDTH, depth=DEPTH, key=k2),
        "value": ValueNetwork(OBS, width=WIDTH, depth=DEPTH, key=k3),
        "q": QNetwork(OBS, ACT, width=WIDTH, depth=DEPTH, key=k4),
    }


def _apply(name, net, obs, act):
    return net(obs, act) if name == "q" else net(obs)


@pytest.mark.parametrize("name", ["deterministic", "gaussian", "value", "q"])
def test_shapes_and_dtypes_vmapped(name, getkey):
    net = _networks(getkey())[name]
    obs, act = _data(0, BATCH, OBS), _data(1, BATCH, ACT, low=-1.0)
    out = jax.vmap(lambda o, a: _apply(name, net, o, a))(obs, act)
    expected = (BATCH, ACT) if name in ("deterministic", "gaussian") else (BATCH,)
    assert out.shape == expected and out.dtype == jnp.float32
    single = _apply(name, net, obs[0], act[0])
    assert single.shape == expected[1:]
    np.testing.assert_allclose(single, out[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["deterministic", "gaussian", "value", "q"])
def test_unbatched_call_on_a_batch_is_refused(name, getkey):
    # The networks act on one example; a batch without vmap violates the annotations.
    net = _networks(getkey())[name]
    obs, act = _data(0, BATCH, OBS), jnp.zeros((BATCH, ACT))
    with pytest.raises(jaxtyping.TypeCheckError):
        _apply(name, net, obs, act)


@pytest.mark.parametrize("name", ["gaussian", "q"])  # two heads: (mean, log_std); (s, a) input
def test_gradients_reach_every_parameter(name, getkey):
    net = _networks(getkey())[name]
    obs, act = _data(2, 64, OBS), _data(3, 64, ACT, low=-1.0)

    def loss(model):
        return jnp.sum(jax.vmap(lambda o, a: _apply(name, model, o, a))(obs, act) ** 2)

    grads = eqx.filter_jit(eqx.filter_grad(loss))(net)
    leaves = jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert leaves and all(np.any(np.asarray(g) != 0) for g in leaves)


def test_q_depends_on_the_action(getkey):
    q = _networks(getkey())["q"]
    obs = _data(4, OBS)
    grad = eqx.filter_jit(jax.grad(lambda a: q(obs, a)))(jnp.zeros(ACT))
    assert grad.shape == (ACT,) and np.any(np.asarray(grad) != 0)


@pytest.mark.parametrize(
    "make",
    [
        lambda k: DeterministicPolicy(OBS, 0, key=k),
        lambda k: DeterministicPolicy(OBS, ACT, width=0, key=k),
        lambda k: DeterministicPolicy(OBS, ACT, width=WIDTH, depth=DEPTH, max_action=0.0, key=k),
        lambda k: TanhGaussianPolicy(0, ACT, key=k),
        lambda k: TanhGaussianPolicy(OBS, ACT, width=WIDTH, depth=DEPTH, max_action=-1.0, key=k),
        lambda k: ValueNetwork(OBS, depth=0, key=k),
        lambda k: QNetwork(OBS, 0, key=k),
    ],
)
def test_bad_sizes_are_refused(make):
    with pytest.raises(ValueError):
        make(jr.key(0))


@functools.cache
def _bounded_policies():
    policies = [
        DeterministicPolicy(OBS, ACT, width=WIDTH, depth=DEPTH, max_action=m, key=jr.key(1))
        for m in _MAX_ACTIONS
    ]
    return jax.jit(lambda obs: [jax.vmap(p)(obs) for p in policies])


@given(scale=st.sampled_from([0.0, 1.0, 100.0, 1e4]), seed=st.integers(0, 2**16))
def test_deterministic_policy_is_bounded(scale, seed):
    for max_action, act in zip(
        _MAX_ACTIONS, _bounded_policies()(scale * _data(seed, 16, OBS)), strict=True
    ):
        assert act.shape == (16, ACT)
        assert np.all(np.abs(act) <= max_action)
        if scale == 1e4:  # saturated: the bound is reached, not exceeded
            assert np.any(np.abs(act) == max_action)


@given(
    mean=st.floats(-20.0, 20.0, width=32, allow_subnormal=False),
    log_std=st.floats(-4.9, 1.9),
    seed=st.integers(0, 2**16),
)
def test_gaussian_samples_within_bounds_and_finite(mean, log_std, seed):
    results = _sampler()(jnp.array([mean, -mean]), jnp.array([log_std, log_std]), jr.key(seed))
    for max_action, (actions, sampled, _, edge_lp) in zip(_MAX_ACTIONS, results, strict=True):
        assert actions.shape == (64, 2) and sampled.shape == (64,)
        assert np.all(np.abs(actions) <= max_action)
        assert np.all(np.isfinite(sampled))
        # log_prob is finite everywhere, the bounds included.
        assert np.all(np.isfinite(edge_lp))


@given(mean=st.floats(-1.5, 1.5), log_std=st.floats(-3.0, 0.0), seed=st.integers(0, 2**16))
def test_gaussian_log_prob_matches_sample_log_prob(mean, log_std, seed):
    results = _sampler()(
        jnp.array([mean, 0.5 * mean]), jnp.array([log_std, log_std - 0.5]), jr.key(seed)
    )
    for max_action, (actions, sampled, evaluated, _) in zip(_MAX_ACTIONS, results, strict=True):
        # arctanh loses precision next to the bounds (float32), so compare away from them.
        inside = np.all(np.abs(np.asarray(actions)) < 0.995 * max_action, axis=-1)
        assert inside.sum() >= 16
        np.testing.assert_allclose(
            np.asarray(evaluated)[inside], np.asarray(sampled)[inside], rtol=1e-4, atol=2e-3
        )


def test_gaussian_sample_depends_only_on_key(getkey):
    policy = _networks(getkey())["gaussian"]
    obs = _data(4, OBS)
    key = getkey()
    a1, l1 = policy.sample(obs, key=key)
    a2, l2 = policy.sample(obs, key=key)
    a3, _ = policy.sample(obs, key=getkey())
    assert np.array_equal(a1, a2) and np.array_equal(l1, l2)
    assert not np.array_equal(a1, a3)


@eqx.filter_jit
def _log_density_on(policy, grid):
    return jax.vmap(policy.log_prob, in_axes=(None, 0))(jnp.zeros(OBS), grid[:, None])


@pytest.mark.parametrize(
    "mean, log_std, max_action",
    [(0.0, -1.0, 1.0), (0.8, -2.5, 1.0), (-1.2, -0.7, 1.0), (0.3, -1.5, 2.0)],
)
def test_gaussian_density_integrates_to_one_in_1d(mean, log_std, max_action):
    policy = _fixed_gaussian([mean], [log_std], max_action)
    edge = max_action * (1.0 - 1e-6)
    grid = np.linspace(-edge, edge, 200_001, dtype=np.float32)
    log_p = _log_density_on(policy, jnp.asarray(grid))  # one compile per max_action
    density = np.exp(np.asarray(log_p, np.float64))
    total = np.trapezoid(density, grid.astype(np.float64))
    assert total == pytest.approx(1.0, abs=2e-3)


def test_gaussian_mode_is_tanh_of_mean_and_log_std_in_range(getkey):
    policy = TanhGaussianPolicy(OBS, ACT, width=WIDTH, depth=DEPTH, max_action=2.0, key=getkey())
    obs = 50.0 * _data(5, 64, OBS)
    mean, log_std = jax.vmap(policy.distribution)(obs)
    assert mean.shape == log_std.shape == (64, ACT)
    assert np.all((np.asarray(log_std) >= -5.0) & (np.asarray(log_std) <= 2.0))
    mode = jax.vmap(policy)(obs)
    np.testing.assert_allclose(mode, 2.0 * np.tanh(np.asarray(mean)), rtol=1e-6, atol=1e-6)


def test_fixed_gaussian_helper_is_exact():
    policy = _fixed_gaussian([0.25, -0.5], [-1.0, 0.5])
    mean, log_std = policy.distribution(jnp.ones(OBS))
    np.testing.assert_allclose(mean, [0.25, -0.5], atol=1e-6)
    np.testing.assert_allclose(log_std, [-1.0, 0.5], atol=1e-5)
