"""The dataset generator's SAC: probe problems with known answers, compilation, determinism."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from spar_eqx.data._replay import SACBatch, buffer_add, buffer_init
from spar_eqx.data._sac import SACConfig, act, num_chunk_traces, sac_init, sac_update_chunk

from .helpers import tree_equal_bits

# Shared with test_collect.py (equal configs hash equally, so the compiled chunk is reused): small
# networks, a fast target (tau) and a negligible entropy temperature so that the probes' answers
# are the plain Bellman ones; `gamma` only matters for the never-terminal probe.
TEST_CONFIG = SACConfig(
    width=32,
    learning_rate=1e-3,
    gamma=0.5,
    tau=0.05,
    batch_size=128,
    start_steps=100,
    chunk_size=100,
    buffer_size=1000,
    eval_interval=100,
    eval_episodes=2,
    init_alpha=1e-6,
)
OBS_DIM, ACT_DIM, CAPACITY, UPDATES = 11, 3, 1000, 100


def _buffer(obs, action, reward, done):
    batch = SACBatch(obs, action, reward, obs, done)
    return buffer_add(buffer_init(CAPACITY, OBS_DIM, ACT_DIM), batch)


def _random_actions(key):
    return jr.uniform(key, (CAPACITY, ACT_DIM), jnp.float32, -1.0, 1.0)


def _train(state, buffer, key, chunks):
    for i in range(chunks):
        state, metrics = sac_update_chunk(state, buffer, jr.fold_in(key, i), UPDATES)
    return state, metrics


def _q_on_buffer(state, buffer):
    return jax.vmap(state.critic)(buffer.data.obs, buffer.data.action)


def test_config_is_validated():
    with pytest.raises(ValueError, match="multiple of chunk_size"):
        SACConfig(chunk_size=1000, eval_interval=1500)
    with pytest.raises(ValueError, match="gamma"):
        SACConfig(gamma=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        SACConfig(batch_size=0)


def test_buffer_wraps_around():
    buffer = buffer_init(5, 1, 1)
    rows = lambda lo, hi: jnp.arange(lo, hi, dtype=jnp.float32)
    batch = lambda r: SACBatch(r[:, None], r[:, None], r, r[:, None], jnp.zeros_like(r))
    buffer = buffer_add(buffer, batch(rows(0, 3)))
    assert int(buffer.size) == 3 and int(buffer.position) == 3
    buffer = buffer_add(buffer, batch(rows(3, 6)))
    assert int(buffer.size) == 5 and int(buffer.position) == 1
    np.testing.assert_array_equal(buffer.data.reward, [5.0, 1.0, 2.0, 3.0, 4.0])


def test_bandit_actor_finds_the_best_action(getkey):
    # One state, gamma irrelevant (every transition terminal), r(a) = -||a - a*||^2.
    best = jnp.array([[0.5, -0.3, 0.1]], jnp.float32)
    obs = jnp.full((CAPACITY, OBS_DIM), 0.1, jnp.float32)
    actions = _random_actions(getkey())
    reward = -jnp.sum((actions - best) ** 2, axis=1)
    buffer = _buffer(obs, actions, reward, jnp.ones(CAPACITY, jnp.float32))
    state, _ = _train(sac_init(OBS_DIM, ACT_DIM, TEST_CONFIG, getkey()), buffer, getkey(), 30)
    # The ReLU critic is piecewise linear, so its argmax is only as sharp as its kinks: ask for
    # the mode within 0.15 of a*, a ball holding ~0.2% of the uniformly drawn actions.
    mode = act(state.actor, obs[0])
    assert float(jnp.linalg.norm(mode - best[0])) < 0.15, mode


@pytest.mark.parametrize("done, expected", [(1.0, 1.0), (0.0, 1.0 / (1.0 - TEST_CONFIG.gamma))])
def test_critic_learns_constant_reward_values(getkey, done, expected):
    # Reward 1 everywhere: Q = 1 when every transition is terminal, 1 / (1 - gamma) when none is.
    obs = jr.normal(getkey(), (CAPACITY, OBS_DIM), jnp.float32)
    buffer = _buffer(
        obs,
        _random_actions(getkey()),
        jnp.ones(CAPACITY, jnp.float32),
        jnp.full(CAPACITY, done, jnp.float32),
    )
    state, metrics = _train(sac_init(OBS_DIM, ACT_DIM, TEST_CONFIG, getkey()), buffer, getkey(), 15)
    q = _q_on_buffer(state, buffer)
    assert q.shape == (CAPACITY, 2)
    np.testing.assert_allclose(np.mean(q), expected, atol=0.05 * expected)
    np.testing.assert_allclose(q, expected, atol=0.2 * expected)
    assert float(metrics["critic_loss"]) < 0.01 * expected**2


def test_temperature_falls_when_entropy_exceeds_its_target(getkey):
    obs = jnp.zeros((CAPACITY, OBS_DIM), jnp.float32)
    zeros = jnp.zeros(CAPACITY, jnp.float32)
    buffer = _buffer(obs, _random_actions(getkey()), zeros, zeros)
    state = sac_init(OBS_DIM, ACT_DIM, TEST_CONFIG, getkey())
    # Same static config and shapes as the probes (no recompilation): only alpha = 1 differs.
    state = eqx.tree_at(lambda s: s.log_alpha, state, jnp.array(0.0, jnp.float32))
    state, metrics = sac_update_chunk(state, buffer, getkey(), UPDATES)
    assert float(metrics["entropy"]) > state.target_entropy
    assert float(state.log_alpha) < -0.05
    assert int(state.step) == UPDATES


def test_update_chunk_compiles_once(getkey):
    obs = jnp.zeros((CAPACITY, OBS_DIM), jnp.float32)
    zeros = jnp.zeros(CAPACITY, jnp.float32)
    before = num_chunk_traces()
    for _ in range(3):
        # New states, buffer contents and keys every call: all traced, never static.
        buffer = _buffer(obs, _random_actions(getkey()), zeros + 1.0, zeros)
        state = sac_init(OBS_DIM, ACT_DIM, TEST_CONFIG, getkey())
        state, _ = sac_update_chunk(state, buffer, getkey(), UPDATES)
        state, _ = sac_update_chunk(state, buffer, getkey(), UPDATES)
    assert num_chunk_traces() - before <= 1


def test_same_seed_gives_identical_parameters():
    obs = jnp.zeros((CAPACITY, OBS_DIM), jnp.float32)
    ones = jnp.ones(CAPACITY, jnp.float32)
    buffer = _buffer(obs, _random_actions(jr.key(3)), ones, 0.0 * ones)

    def run(seed):
        state = sac_init(OBS_DIM, ACT_DIM, TEST_CONFIG, jr.key(seed))
        return _train(state, buffer, jr.key(seed + 100), 2)[0]

    a, b, c = run(0), run(0), run(1)
    assert tree_equal_bits(a, b)
    assert not tree_equal_bits(a.actor, c.actor)


def test_act_shapes_bounds_and_mode(getkey):
    state = sac_init(OBS_DIM, ACT_DIM, TEST_CONFIG, getkey())
    obs = 10.0 * jr.normal(getkey(), (4, OBS_DIM), jnp.float32)
    mode = act(state.actor, obs)
    assert mode.shape == (4, ACT_DIM)
    np.testing.assert_allclose(mode[0], state.actor(obs[0]), rtol=1e-6)
    np.testing.assert_allclose(act(state.actor, obs[0]), mode[0], rtol=1e-6)
    sampled = act(state.actor, obs, getkey())
    assert sampled.shape == (4, ACT_DIM)
    assert bool(jnp.all(jnp.abs(sampled) <= 1.0))
    assert not bool(jnp.allclose(sampled, mode))


def test_sac_update_chunk_refuses_bad_arguments(getkey):
    state = sac_init(OBS_DIM, ACT_DIM, TEST_CONFIG, getkey())
    empty = buffer_init(CAPACITY, OBS_DIM, ACT_DIM)
    with pytest.raises(ValueError, match="non-empty"):
        sac_update_chunk(state, empty, getkey(), UPDATES)
    with pytest.raises(ValueError, match="num_updates"):
        sac_update_chunk(state, empty, getkey(), 0)


def test_config_is_hashable_and_frozen():
    assert hash(TEST_CONFIG) == hash(dataclasses.replace(TEST_CONFIG))
    with pytest.raises(dataclasses.FrozenInstanceError):
        TEST_CONFIG.width = 3  # type: ignore[misc]
