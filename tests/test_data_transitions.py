"""`Transitions` construction checks, concatenation and episode returns."""

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from spar_eqx.data import Transitions, episode_returns


def make(n=5, obs_dim=3, act_dim=2, *, rewards=None, terminals=None, timeouts=None, seed=0):
    rng = np.random.default_rng(seed)
    return Transitions(
        observations=rng.normal(size=(n, obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        rewards=np.zeros(n, np.float32) if rewards is None else np.asarray(rewards, np.float32),
        next_observations=rng.normal(size=(n, obs_dim)).astype(np.float32),
        terminals=np.zeros(n, bool) if terminals is None else np.asarray(terminals, bool),
        timeouts=np.zeros(n, bool) if timeouts is None else np.asarray(timeouts, bool),
    )


def test_fields_are_jax_arrays_with_exact_dtypes_and_properties():
    t = make(5, 3, 2)
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree_util.tree_leaves(t))
    assert t.observations.dtype == jnp.float32 and t.terminals.dtype == jnp.bool_
    assert (t.num_transitions, t.obs_dim, t.act_dim) == (5, 3, 2)


def test_float64_numpy_is_converted_but_wrong_kinds_are_refused():
    t = make()
    assert eqx.tree_at(lambda x: x.rewards, t, jnp.zeros(5)).rewards.dtype == jnp.float32
    with pytest.raises(ValueError, match=r"Transitions.terminals must be a 1-d bool array"):
        Transitions(
            t.observations, t.actions, t.rewards, t.next_observations, np.zeros(5), t.timeouts
        )
    with pytest.raises(ValueError, match=r"Transitions.actions must be a 2-d float32 array"):
        Transitions(
            t.observations,
            np.zeros((5, 2), np.int32),
            t.rewards,
            t.next_observations,
            t.terminals,
            t.timeouts,
        )


def test_mismatched_lengths_and_widths_are_refused():
    t = make(5)
    with pytest.raises(ValueError, match="observations=5, actions=4, rewards=5"):
        Transitions(
            t.observations, t.actions[:4], t.rewards, t.next_observations, t.terminals, t.timeouts
        )
    with pytest.raises(ValueError, match="next_observations must have the observations' width"):
        Transitions(
            t.observations,
            t.actions,
            t.rewards,
            t.next_observations[:, :2],
            t.terminals,
            t.timeouts,
        )


def test_concatenate():
    a, b = make(3, seed=1), make(4, seed=2)
    c = Transitions.concatenate([a, b])
    assert c.num_transitions == 7
    np.testing.assert_array_equal(c.observations[3:], b.observations)
    with pytest.raises(ValueError, match="at least one part"):
        Transitions.concatenate([])
    with pytest.raises(ValueError, match="equal"):
        Transitions.concatenate([a, make(3, obs_dim=4)])


def test_transitions_is_a_pytree_usable_under_jit():
    t = make(6)

    @eqx.filter_jit
    def batch(t, idx):
        return jax.tree_util.tree_map(lambda x: x[idx], t)

    b = batch(t, jnp.array([0, 2, 4]))
    assert isinstance(b, Transitions) and b.num_transitions == 3
    np.testing.assert_array_equal(b.rewards, t.rewards[jnp.array([0, 2, 4])])


def test_episode_returns_split_at_terminals_and_timeouts():
    t = make(
        7,
        rewards=[1, 2, 3, 4, 5, 6, 7],
        terminals=[0, 1, 0, 0, 0, 0, 0],
        timeouts=[0, 0, 0, 1, 0, 0, 0],
    )
    # Episodes [1, 2], [3, 4], and the unfinished [5, 6, 7].
    np.testing.assert_array_equal(episode_returns(t), [3.0, 7.0, 18.0])
    assert episode_returns(make(0)).shape == (0,)


@given(ends=st.lists(st.sampled_from(["", "terminal", "timeout"]), min_size=1, max_size=40))
def test_property_episode_returns(ends):
    n = len(ends)
    rewards = np.arange(1, n + 1, dtype=np.float32)
    t = make(
        n,
        rewards=rewards,
        terminals=[e == "terminal" for e in ends],
        timeouts=[e == "timeout" for e in ends],
    )
    returns = np.asarray(episode_returns(t))
    assert returns.dtype == np.float32
    assert len(returns) == sum(e != "" for e in ends[:-1]) + 1
    assert np.isclose(returns.sum(), rewards.sum())
    assert np.all(returns > 0)
