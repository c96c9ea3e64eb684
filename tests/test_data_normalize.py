"""Observation normalisation and reward transforms."""

import io

import equinox as eqx
import jax.numpy as jnp
import jaxtyping
import numpy as np
import pytest

from spar_eqx import reference_scores
from spar_eqx.data import (
    DatasetError,
    ObservationNormalizer,
    OfflineDataset,
    Transitions,
    antmaze_reward,
    apply_reward_transform,
    default_reward_transform,
    episode_returns,
    scale_locomotion_rewards,
)


def make(n=200, obs_dim=4, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(3.0, 5.0, size=(n, obs_dim)).astype(np.float32)
    obs[:, 1] = 7.0  # a constant dimension
    terminals = np.zeros(n, bool)
    terminals[[19, 79, 139]] = True
    return Transitions(
        observations=obs,
        actions=rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
        rewards=rng.uniform(0, 2, size=n).astype(np.float32),
        next_observations=obs + 1.0,
        terminals=terminals,
        timeouts=np.zeros(n, bool),
    )


def test_normalised_data_has_zero_mean_unit_std_and_floored_constant_column():
    t = make()
    norm = ObservationNormalizer.from_transitions(t, eps=1e-3)
    z = np.asarray(norm(t.observations))
    varying = [0, 2, 3]
    np.testing.assert_allclose(z[:, varying].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z[:, varying].std(axis=0), 1.0, atol=1e-5)
    assert float(norm.std[1]) == pytest.approx(1e-3)
    np.testing.assert_array_equal(z[:, 1], 0.0)
    assert norm.mean.dtype == jnp.float32 and norm.std.dtype == jnp.float32


@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_any_leading_batch_dims_and_inverse(batch):
    norm = ObservationNormalizer.from_transitions(make())
    obs = jnp.asarray(np.random.default_rng(0).normal(size=(*batch, 4)), jnp.float32)
    z = norm(obs)
    assert z.shape == obs.shape
    np.testing.assert_allclose(norm.inverse(z), obs, rtol=1e-5, atol=1e-4)
    if batch == (5,):
        np.testing.assert_allclose(eqx.filter_jit(lambda n, o: n(o))(norm, obs), z, rtol=1e-6)


def test_identity_and_normalize_transitions():
    t = make()
    ident = ObservationNormalizer.identity(4)
    np.testing.assert_array_equal(ident(t.observations), t.observations)
    norm = ObservationNormalizer.from_transitions(t)
    n = norm.normalize_transitions(t)
    np.testing.assert_allclose(n.next_observations, norm(t.next_observations))
    np.testing.assert_array_equal(n.actions, t.actions)


def test_normaliser_is_a_checkpointable_pytree():
    norm = ObservationNormalizer.from_transitions(make())
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, norm)
    buffer.seek(0)
    loaded = eqx.tree_deserialise_leaves(buffer, ObservationNormalizer.identity(4))
    np.testing.assert_array_equal(loaded.mean, norm.mean)
    np.testing.assert_array_equal(loaded.std, norm.std)


def test_invalid_normalisers_are_refused():
    with pytest.raises(ValueError, match="finite and > 0"):
        ObservationNormalizer(jnp.zeros(3), jnp.array([1.0, 0.0, 1.0]))
    # (under the test suite's runtime type checking, jaxtyping may object first)
    with pytest.raises((ValueError, jaxtyping.TypeCheckError)):
        ObservationNormalizer(jnp.zeros(3), jnp.ones(2))
    with pytest.raises(ValueError, match="eps must be > 0"):
        ObservationNormalizer.from_transitions(make(), eps=0.0)


def test_antmaze_reward():
    np.testing.assert_array_equal(antmaze_reward(jnp.array([0.0, 1.0])), [-1.0, 0.0])
    t = apply_reward_transform(make(), "antmaze")
    np.testing.assert_allclose(t.rewards, make().rewards - 1.0)


def test_locomotion_scaling_gives_a_return_spread_of_1000():
    t = make()
    scaled = scale_locomotion_rewards(t)
    returns = np.asarray(episode_returns(scaled))
    assert returns.max() - returns.min() == pytest.approx(1000.0, rel=1e-5)
    ratio = np.asarray(scaled.rewards) / np.asarray(t.rewards)
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)
    assert scaled.rewards.dtype == jnp.float32


def test_locomotion_scaling_refuses_equal_returns():
    t = eqx.tree_at(lambda x: x.rewards, make(), jnp.ones(200, jnp.float32))
    t = eqx.tree_at(lambda x: x.terminals, t, jnp.zeros(200, bool).at[99].set(True))
    with pytest.raises(DatasetError, match="same return 100"):
        scale_locomotion_rewards(t)


def _dataset(t):
    return OfflineDataset(
        transitions=t,
        env_id="Hopper-v5",
        name="toy",
        reference=reference_scores("Hopper-v5"),
        action_low=-jnp.ones(2),
        action_high=jnp.ones(2),
    )


def test_apply_reward_transform_on_datasets_records_and_refuses_twice():
    dataset = _dataset(make())
    assert apply_reward_transform(dataset, "none") is dataset
    scaled = apply_reward_transform(dataset, "locomotion")
    assert isinstance(scaled, OfflineDataset) and scaled.reward_transform == "locomotion"
    assert dataset.reward_transform == "none"  # the input is untouched
    with pytest.raises(ValueError, match="already has the 'locomotion' reward transform"):
        apply_reward_transform(scaled, "antmaze")
    with pytest.raises((ValueError, jaxtyping.TypeCheckError), match="scale"):
        apply_reward_transform(dataset, "scale")  # type: ignore[arg-type]
    flat = _dataset(eqx.tree_at(lambda x: x.rewards, make(), jnp.zeros(200, jnp.float32)))
    with pytest.raises(DatasetError, match="Dataset 'toy': Cannot scale"):
        apply_reward_transform(flat, "locomotion")


@pytest.mark.parametrize(
    "env_id, spar, iql",
    [
        ("Hopper-v5", "none", "locomotion"),
        ("halfcheetah-medium-replay-v2", "none", "locomotion"),
        ("mujoco/walker2d/expert-v0", "none", "locomotion"),
        ("Ant-v5", "none", "locomotion"),
        ("antmaze-large-diverse-v2", "antmaze", "antmaze"),
        ("D4RL/antmaze/umaze-diverse-v1", "antmaze", "antmaze"),
        ("pen-cloned-v1", "none", "none"),
        ("CartPole-v1", "none", "none"),
    ],
)
def test_default_reward_transform(env_id, spar, iql):
    assert default_reward_transform(env_id) == spar
    assert default_reward_transform(env_id, "iql") == iql
