"""CriticEnsemble: stacked members, sub-ensembles, robust statistics, no loop over members."""

import functools

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given

from spar_eqx import CriticEnsemble, QNetwork, QStats

# Sizes shared with the other test files (random init compiles once per parameter shape).
OBS, ACT, WIDTH, DEPTH, M = 3, 2, 16, 1, 4


def _data(seed, *shape):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


@functools.cache
def _ensemble() -> CriticEnsemble:
    return CriticEnsemble(OBS, ACT, num_members=M, width=WIDTH, depth=DEPTH, key=jr.key(7))


def _num_eqns(jaxpr) -> int:
    """Equations in a jaxpr, counting those of nested jaxprs (pjit, custom_jvp, ...) too."""
    total = 0
    for eqn in jaxpr.eqns:
        total += 1
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                if hasattr(sub, "eqns"):
                    total += _num_eqns(sub)
                elif hasattr(sub, "jaxpr") and hasattr(sub.jaxpr, "eqns"):
                    total += _num_eqns(sub.jaxpr)
    return total


def test_shapes_properties_and_dtypes():
    ens = _ensemble()
    assert (ens.num_members, ens.obs_dim, ens.act_dim) == (M, OBS, ACT)
    for leaf in jax.tree_util.tree_leaves(eqx.filter(ens, eqx.is_array)):
        assert leaf.shape[0] == M
    obs, act = _data(0, OBS), _data(1, ACT)
    q = ens(obs, act)
    assert q.shape == (M,) and q.dtype == jnp.float32
    stats = ens.stats(obs, act, 0.5)
    assert isinstance(stats, QStats)
    assert all(x.shape == () and x.dtype == jnp.float32 for x in stats)
    assert ens.lcb(obs, act, 0.5).shape == ()


def test_members_are_genuinely_different():
    ens = _ensemble()
    for leaf in jax.tree_util.tree_leaves(eqx.filter(ens.members, eqx.is_inexact_array)):
        if leaf.ndim > 1:  # weight matrices (biases may start equal in some initialisers)
            flat = leaf.reshape(M, -1)
            assert len({np.asarray(flat[i]).tobytes() for i in range(M)}) == M
    q = ens(_data(2, OBS), _data(3, ACT))
    assert len(set(np.asarray(q).tolist())) == M
    assert np.std(np.asarray(q)) > 0


def test_members_equal_standalone_networks():
    # Member i is the QNetwork built from the i-th of `jr.split(key, M)`.
    ens = _ensemble()
    obs, act = _data(4, OBS), _data(5, ACT)
    expected = [QNetwork(OBS, ACT, WIDTH, DEPTH, key=k)(obs, act) for k in jr.split(jr.key(7), M)]
    np.testing.assert_allclose(ens(obs, act), np.array(expected), rtol=1e-6, atol=1e-6)


def test_vmap_over_a_batch():
    ens = _ensemble()
    obs, act = _data(6, 6, OBS), _data(7, 6, ACT)
    batched = jax.vmap(ens)(obs, act)
    assert batched.shape == (6, M)
    rows = np.stack([np.asarray(ens(o, a)) for o, a in zip(obs, act, strict=True)])
    np.testing.assert_allclose(batched, rows, rtol=1e-6, atol=1e-6)
    stats = jax.vmap(ens.stats, in_axes=(0, 0, None))(obs, act, 0.5)
    assert all(x.shape == (6,) for x in stats)
    # The members-outermost batch call gives the same values (and the same gradients).
    np.testing.assert_allclose(ens.batch(obs, act), rows, rtol=1e-6, atol=1e-6)
    loss = lambda e, f: jnp.sum(jnp.tanh(f(e)))
    g1 = eqx.filter_grad(loss)(ens, lambda e: e.batch(obs, act))
    g2 = eqx.filter_grad(loss)(ens, lambda e: jax.vmap(e)(obs, act))
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@given(
    # Subsets of one member and reorderings of all of them (two sizes: each new size
    # recompiles every op, the values are what varies).
    indices=st.permutations(range(M)).flatmap(lambda p: st.sampled_from([p[:1], p])),
    seed=st.integers(0, 2**16),
)
def test_select_matches_the_full_ensemble(indices, seed):
    ens = _ensemble()
    obs, act = _data(seed, OBS), _data(seed + 1, ACT)
    sub = ens.select(indices)
    assert sub.num_members == len(indices)
    np.testing.assert_allclose(
        sub(obs, act), np.asarray(ens(obs, act))[indices], rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("indices", [(), (0, 0), (-1,), (M,), (1, M + 3)])
def test_select_refuses_bad_subsets(indices):
    with pytest.raises(ValueError, match="subset"):
        _ensemble().select(indices)


def test_num_members_must_be_positive():
    with pytest.raises(ValueError, match="num_members"):
        CriticEnsemble(OBS, ACT, num_members=0, key=jr.key(0))


@eqx.filter_jit
def _values_and_stats(ens, obs, act, lambda_u):
    return ens(obs, act), ens.stats(obs, act, lambda_u)


@given(
    lambda_u=st.floats(0.0, 5.0),
    scale=st.sampled_from([0.1, 1.0, 10.0]),
    seed=st.integers(0, 2**16),
)
def test_stats_match_numpy(lambda_u, scale, seed):
    ens = _ensemble()
    obs, act = scale * _data(seed, OBS), _data(seed + 1, ACT)
    q, (mean, std, lcb) = _values_and_stats(ens, obs, act, jnp.float32(lambda_u))
    q = np.asarray(q, np.float64)
    assert float(mean) == pytest.approx(np.mean(q), rel=1e-5, abs=1e-6)
    assert float(std) == pytest.approx(np.std(q, ddof=0), rel=1e-4, abs=1e-6)
    assert float(lcb) == pytest.approx(float(mean) - lambda_u * float(std), rel=1e-5, abs=1e-5)
    assert float(ens.lcb(obs, act, lambda_u)) == pytest.approx(float(lcb), rel=1e-6, abs=1e-6)
    assert float(lcb) <= float(mean) + 1e-6


def test_no_python_loop_over_members():
    obs, act = jnp.zeros(OBS), jnp.zeros(ACT)

    def sizes(m):
        # Abstract parameters are enough to trace (and cost no random-init compile).
        ens = eqx.filter_eval_shape(
            CriticEnsemble, OBS, ACT, num_members=m, width=8, depth=2, key=jr.key(0)
        )
        apply = eqx.filter_make_jaxpr(lambda e, o, a: e(o, a))(ens, obs, act)[0]
        lcb = eqx.filter_make_jaxpr(lambda e, o, a: e.lcb(o, a, 0.5))(ens, obs, act)[0]
        build = eqx.filter_make_jaxpr(
            lambda k: CriticEnsemble(OBS, ACT, num_members=m, width=8, depth=2, key=k)
        )(jr.key(0))[0]
        return tuple(_num_eqns(j.jaxpr) for j in (apply, lcb, build))

    small, large = sizes(2), sizes(10)
    assert small == large
    assert all(n > 0 for n in small)
