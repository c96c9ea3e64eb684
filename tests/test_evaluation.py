import equinox as eqx
import gymnasium as gym
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import spar_eqx
from spar_eqx._evaluation import (
    BatchPolicy,
    EvaluationResult,
    ReportingPolicy,
    env_spaces,
    evaluate,
    make_env,
)
from spar_eqx._scores import ReferenceScores, normalized_score, reference_scores

ENV = "Hopper-v5"
STEPS = 30


def _sign_policy(observations, key):
    """Deterministic, closed form and exact in float32: +-0.5 from the signs of obs[1:4]."""
    return jnp.where(observations[:, 1:4] > 0, 0.5, -0.5)


def _sign_action(observation, index):
    return np.where(observation[1:4] > 0, 0.5, -0.5).astype(np.float32)


def _falls_first_policy(observations, key):
    """Episode 0 gets action -1 (Hopper falls after 6 steps); the others get 0 (they stand)."""
    first = jnp.arange(observations.shape[0])[:, None] == 0
    return jnp.broadcast_to(jnp.where(first, -1.0, 0.0), (observations.shape[0], 3))


def _falls_first_action(observation, index):
    return np.full(3, -1.0 if index == 0 else 0.0, dtype=np.float32)


def _random_policy(observations, key):
    return jr.uniform(key, (observations.shape[0], 3), minval=-1.0, maxval=1.0)


def _by_hand(action, episodes, seed, env_id=ENV, max_episode_steps=STEPS):
    """Plain single-env loop: episode i seeded with seed + i, summed until it ends."""
    returns, lengths = [], []
    for i in range(episodes):
        env = gym.make(env_id, max_episode_steps=max_episode_steps)
        observation, _ = env.reset(seed=seed + i)
        total, length = 0.0, 0
        while True:
            observation, reward, terminated, truncated, _ = env.step(
                action(observation.astype(np.float32), i)
            )
            total += float(reward)
            length += 1
            if terminated or truncated:
                break
        env.close()
        returns.append(total)
        lengths.append(length)
    return np.array(returns), np.array(lengths)


def test_matches_hand_rollout():
    result = evaluate(_sign_policy, ENV, 3, 5, max_episode_steps=STEPS)
    returns, lengths = _by_hand(_sign_action, 3, 5)
    assert isinstance(result, EvaluationResult)
    assert result.env_id == ENV
    assert result.returns.dtype == np.float64 and result.returns.shape == (3,)
    np.testing.assert_array_equal(result.returns, returns)
    np.testing.assert_array_equal(result.lengths, lengths)
    assert result.reference == reference_scores(ENV)
    np.testing.assert_array_equal(result.scores, normalized_score(returns, reference_scores(ENV)))
    assert result.mean_return == pytest.approx(np.mean(returns), rel=1e-12)
    assert result.mean_score == pytest.approx(np.mean(result.scores), rel=1e-12)


def test_early_termination_counted_while_others_continue():
    result = evaluate(_falls_first_policy, ENV, 3, 0, max_episode_steps=STEPS)
    returns, lengths = _by_hand(_falls_first_action, 3, 0)
    assert lengths[0] < STEPS and all(lengths[1:] == STEPS)
    np.testing.assert_array_equal(result.lengths, lengths)
    np.testing.assert_array_equal(result.returns, returns)


@pytest.mark.parametrize("num_envs", [1, 2])
def test_rounds_give_the_same_episodes(num_envs):
    full = evaluate(_falls_first_policy, ENV, 3, 0, max_episode_steps=STEPS)
    capped = evaluate(_sign_policy, ENV, 3, 0, max_episode_steps=STEPS, num_envs=num_envs)
    returns, lengths = _by_hand(_sign_action, 3, 0)
    np.testing.assert_array_equal(capped.returns, returns)
    np.testing.assert_array_equal(capped.lengths, lengths)
    # "Falls first" acts by row index: with a cap, row 0 of every round falls.
    rounds = evaluate(_falls_first_policy, ENV, 3, 0, max_episode_steps=STEPS, num_envs=2)
    np.testing.assert_array_equal(rounds.lengths[[0, 1]], full.lengths[[0, 1]])
    assert rounds.lengths[2] == full.lengths[0] != full.lengths[2]


def test_deterministic_in_seed():
    a = evaluate(_sign_policy, ENV, 2, 3, max_episode_steps=STEPS)
    b = evaluate(_sign_policy, ENV, 2, 3, max_episode_steps=STEPS)
    c = evaluate(_sign_policy, ENV, 2, 4, max_episode_steps=STEPS)
    np.testing.assert_array_equal(a.returns, b.returns)
    assert not np.any(a.returns == c.returns)
    # Seed 4 episode 0 is seed 3 episode 1.
    assert c.returns[0] == a.returns[1]


def test_stochastic_policy_follows_key():
    def run(**kwargs):
        return evaluate(_random_policy, ENV, 2, 0, max_episode_steps=STEPS, **kwargs).returns

    np.testing.assert_array_equal(run(key=jr.key(7)), run(key=jr.key(7)))
    np.testing.assert_array_equal(run(), run(key=jr.key(0)))
    assert not np.any(run(key=jr.key(7)) == run(key=jr.key(8)))


def test_one_batched_call_per_step_and_one_trace():
    shapes = []

    @eqx.debug.assert_max_traces(max_traces=1)
    def policy(observations, key):
        jax.debug.callback(lambda o: shapes.append(o.shape), observations)
        return _sign_policy(observations, key)

    result = evaluate(policy, ENV, 3, 0, max_episode_steps=STEPS)
    assert shapes == [(3, 11)] * int(result.lengths.max())
    evaluate(policy, ENV, 3, 1, max_episode_steps=STEPS)  # Reuses the compiled call.


class _LinearPolicy(eqx.Module):
    weight: jax.Array

    def __call__(self, observations, key):
        return jnp.tanh(observations @ self.weight)


def test_module_policy():
    assert isinstance(_LinearPolicy(jnp.zeros((11, 3))), BatchPolicy)
    zero = evaluate(_LinearPolicy(jnp.zeros((11, 3))), ENV, 2, 0, max_episode_steps=STEPS)
    returns, lengths = _by_hand(lambda o, i: np.zeros(3, np.float32), 2, 0)
    np.testing.assert_array_equal(zero.returns, returns)
    np.testing.assert_array_equal(zero.lengths, lengths)
    weight = 0.1 * jr.normal(jr.key(0), (11, 3))
    other = evaluate(_LinearPolicy(weight), ENV, 2, 0, max_episode_steps=STEPS)
    assert not np.any(other.returns == zero.returns)


def test_reference_override_and_unknown_family():
    result = evaluate(
        _sign_policy, ENV, 1, 0, max_episode_steps=5, reference=ReferenceScores(0.0, 1.0)
    )
    np.testing.assert_allclose(result.scores, 100.0 * result.returns, rtol=1e-12)
    assert result.reference == ReferenceScores(0.0, 1.0)

    def push(observations, key):
        return jnp.zeros((observations.shape[0], 1))

    unknown = evaluate(push, "InvertedPendulum-v5", 2, 0, max_episode_steps=5)
    assert unknown.scores is None and unknown.mean_score is None and unknown.reference is None
    np.testing.assert_array_equal(unknown.returns, [5.0, 5.0])


def test_env_spaces():
    obs_dim, act_dim, low, high = env_spaces(ENV)
    assert (obs_dim, act_dim) == (11, 3)
    np.testing.assert_array_equal(low, -np.ones(3))
    np.testing.assert_array_equal(high, np.ones(3))
    env = make_env(ENV, max_episode_steps=7)
    assert env.spec.max_episode_steps == 7
    env.close()


@pytest.mark.parametrize("env_id", ["Foo-v5", "mujoco/hopper/medium-v0", "hopper-tiny-v2"])
def test_unknown_env(env_id):
    with pytest.raises(ValueError, match=f"{env_id!r}.*'Hopper-v5'"):
        evaluate(_sign_policy, env_id, 1, 0)
    with pytest.raises(ValueError, match="'Hopper-v5'.*'hopper-medium-v2'"):
        env_spaces(env_id)


@pytest.mark.parametrize(
    "name, env_id",
    [("hopper-medium-v2", "Hopper-v5"), ("halfcheetah-medium-expert-v2", "HalfCheetah-v5"),
     ("walker2d-medium-replay-v0", "Walker2d-v5")],
)  # fmt: skip
def test_a_d4rl_dataset_name_names_its_environment(name, env_id):
    assert spar_eqx.environment(name).env_id == env_id
    _, act_dim, _, _ = spaces = env_spaces(name)
    assert spaces[:2] == env_spaces(env_id)[:2]
    still = lambda obs, key: jnp.zeros((obs.shape[0], act_dim), jnp.float32)
    result = evaluate(still, name, 1, 0, max_episode_steps=5)
    assert result.env_id == env_id and result.successes is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="episodes must be at least 1"):
        evaluate(_sign_policy, ENV, 0, 0)
    with pytest.raises(ValueError, match="num_envs must be at least 1"):
        evaluate(_sign_policy, ENV, 1, 0, num_envs=0)


@pytest.mark.parametrize(
    "policy, match",
    [
        (lambda o, k: jnp.zeros((o.shape[0], 2)), r"\(2, 3\).*\(2, 2\)"),
        (lambda o, k: jnp.zeros((3,)), r"\(2, 3\).*\(3,\)"),
        (lambda o, k: jnp.full((o.shape[0], 3), 1.5), "outside the action space"),
        (lambda o, k: jnp.full((o.shape[0], 3), jnp.nan), "non-finite"),
        (lambda o, k: jnp.zeros((o.shape[0], 3), dtype=jnp.int32), "floating-point"),
    ],
)
def test_bad_actions(policy, match):
    with pytest.raises(ValueError, match=match):
        evaluate(policy, ENV, 2, 0, max_episode_steps=5)


def test_actions_within_tolerance_accepted():
    result = evaluate(
        lambda o, k: jnp.full((o.shape[0], 3), 1.0 + 1e-7), ENV, 1, 0, max_episode_steps=3
    )
    assert result.lengths[0] >= 1


class _ReportsItsRow(eqx.Module):
    """`_falls_first_policy`, reporting per row whether it is the vector env's row 0, and
    a constant 0.25."""

    def __call__(self, observations, key):
        return _falls_first_policy(observations, key)

    def act_and_report(self, observations, key):
        first = (jnp.arange(observations.shape[0]) == 0).astype(jnp.float32)
        quarter = jnp.full(observations.shape[0], 0.25, jnp.float32)
        return self(observations, key), {"first": first, "quarter": quarter}


@pytest.mark.parametrize("num_envs, first", [(3, [1.0, 0.0, 0.0]), (2, [1.0, 0.0, 1.0])])
def test_reports_are_averaged_over_each_episodes_own_steps(num_envs, first):
    """Reports follow the episode a row plays (row 0 of each round), and average over that
    episode's counted steps only (episode 0 falls early; its row keeps being stepped)."""
    policy = _ReportsItsRow()
    assert isinstance(policy, ReportingPolicy)
    result = evaluate(policy, ENV, 3, 0, max_episode_steps=STEPS, num_envs=num_envs)
    np.testing.assert_array_equal(result.reports["first"], first)
    np.testing.assert_allclose(result.reports["quarter"], 0.25, rtol=1e-12)
    plain = evaluate(_falls_first_policy, ENV, 3, 0, max_episode_steps=STEPS, num_envs=num_envs)
    np.testing.assert_array_equal(result.returns, plain.returns)
    assert plain.reports == {}
