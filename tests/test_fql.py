"""FQL: probe problems with known answers (a one-action MDP, a bandit with a known optimum),
the critic's target with hand-made numbers, stop-gradients, the published defaults."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from spar_eqx._flow import FlowPolicy
from spar_eqx._learner import TrainingBatch, hyperparameter_arrays
from spar_eqx._learners.fql import FQL, FQLConfig, FQLPolicy
from spar_eqx._registry import algorithm
from spar_eqx.data._normalize import ObservationNormalizer
from spar_eqx.data._transitions import Transitions

OBS, ACT, WIDTH, DEPTH = 3, 2, 32, 2
STATE = np.array([0.5, -0.3, 1.0], np.float32)
A_STAR = np.array([0.6, -0.4], np.float32)
IDENTITY = ObservationNormalizer(jnp.zeros(OBS, jnp.float32), jnp.ones(OBS, jnp.float32))


def _learner(**overrides) -> FQL:
    base = dict(width=WIDTH, depth=DEPTH, learning_rate=3e-3, flow_steps=4)
    return hyperparameter_arrays(FQL(FQLConfig(**(base | overrides)), OBS, ACT))


def _batch(actions, rewards, terminal=True) -> TrainingBatch:
    n = len(actions)
    obs = np.tile(STATE, (n, 1))
    flags = np.full(n, terminal)
    t = Transitions(obs, actions, rewards.astype(np.float32), obs, flags, np.zeros(n, bool))
    return TrainingBatch.from_transitions(t)


STEPS = 500


@functools.cache
def _runner():
    """`STEPS` updates in one compiled scan; every probe below shares its one trace (float
    hyperparameters are array leaves, and every probe's batch has 64 rows)."""

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def run(learner, state, batch, key):
        params, static = eqx.partition(state, eqx.is_array)

        def body(p, k):
            new, metrics = learner.update(eqx.combine(p, static), batch, k)
            return eqx.filter(new, eqx.is_array), metrics

        params, metrics = jax.lax.scan(body, params, jr.split(key, STEPS))
        return eqx.combine(params, static), metrics

    return run


@functools.cache
def _train(bandit: bool, **overrides):
    learner = _learner(**overrides)
    if bandit:  # an 8 x 8 grid over [-1, 1]^2, terminal reward 1 - ||a - a*||^2
        grid = np.linspace(-1.0, 1.0, 8, dtype=np.float32)
        actions = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, ACT)
        batch = _batch(actions, 1.0 - np.sum((actions - A_STAR) ** 2, axis=-1))
    else:  # one state, one action a*, reward 1 and a discount: Q(s, a*) = 1 / (1 - gamma)
        batch = _batch(np.tile(A_STAR, (64, 1)), np.ones(64), terminal=False)
    return learner, *_runner()(learner, learner.init(jr.key(0)), batch, jr.key(1))


def _actions(learner, state, n=16):
    policy = learner.policies(state, IDENTITY)["fql"]
    assert isinstance(policy, FQLPolicy)
    return np.asarray(policy(jnp.tile(jnp.asarray(STATE), (n, 1)), jr.key(7)))


def test_one_action_mdp_critic_learns_the_discounted_return_and_the_policies_the_action():
    learner, state, metrics = _train(False, gamma=0.5, alpha=100.0, polyak=0.05)
    np.testing.assert_allclose(float(metrics["q_data"][-1]), 2.0, atol=0.1)
    np.testing.assert_allclose(_actions(learner, state), np.tile(A_STAR, (16, 1)), atol=0.1)
    flow = learner.policies(state, IDENTITY)["fql_flow"]
    np.testing.assert_allclose(np.asarray(flow(jnp.asarray(STATE)[None], jr.key(0)))[0], A_STAR,
                               atol=0.1)  # fmt: skip


def test_bandit_with_a_small_distillation_weight_climbs_the_critic_towards_the_optimum():
    """A small alpha: the one-step policy mostly maximises Q, whose maximiser is a* (the data
    mean is 0): its actions must move from the data mean more than half the way to a*.
    (alpha = 0 is no probe: Adam overshoots into the clipped corner, where the gradient is 0.)"""
    learner, state, metrics = _train(True, alpha=1.0, gamma=0.99, polyak=0.005)
    actions = _actions(learner, state)
    assert np.linalg.norm(actions.mean(axis=0) - A_STAR) < 0.5 * np.linalg.norm(A_STAR)
    assert float(metrics["q_policy"][-1]) > float(metrics["q_data"][-1])


def test_bandit_with_a_huge_distillation_weight_stays_with_the_behaviour_flow():
    """alpha huge: the one-step policy copies the flow, whose samples spread over the data
    (mean about 0), not the optimum."""
    learner, state, _ = _train(True, alpha=1e4, gamma=0.99, polyak=0.005)
    actions = _actions(learner, state, 64)
    assert np.linalg.norm(actions.mean(axis=0)) < 0.3
    assert actions.std(axis=0).min() > 0.3


@pytest.mark.parametrize("q_agg", ["mean", "min"])
def test_critic_target_with_known_numbers(q_agg):
    """`y = r + gamma (1 - d) agg_i Q'_i(s', mu(s', z'))`, the loss the mean over members."""
    learner = _learner(q_agg=q_agg, gamma=0.9)
    state = learner.init(jr.key(0))
    batch = _batch(np.tile(A_STAR, (4, 1)), np.array([1.0, 0.0, -1.0, 2.0]), terminal=False)

    @eqx.filter_jit
    def by_hand_and_learner(learner, state, batch, key):
        noise = jr.normal(key, (4, ACT))
        next_actions = jax.vmap(state.actor)(batch.next_observations, noise)
        q_next = state.target_critic.batch(batch.next_observations, next_actions)
        agg = q_next.mean(axis=-1) if q_agg == "mean" else q_next.min(axis=-1)
        y = batch.rewards + 0.9 * agg
        q = state.critic.batch(batch.observations, batch.actions)
        expected = jnp.mean((q - y[:, None]) ** 2)
        return y, expected, learner.critic_loss(state.critic, state, batch, key)

    y, expected, (loss, metrics) = by_hand_and_learner(learner, state, batch, jr.key(3))
    np.testing.assert_allclose(float(loss), float(expected), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["q_target"]), float(y.mean()), rtol=1e-5)


def test_actor_loss_reaches_only_the_one_step_policy():
    learner = _learner()
    state = learner.init(jr.key(0))
    batch = _batch(np.tile(A_STAR, (4, 1)), np.ones(4))

    def through_state(s):
        return learner.actor_loss(s.actor, s, batch, jr.key(1))[0]

    grads = eqx.filter_jit(eqx.filter_grad(through_state))(state)
    zero = lambda tree: all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree_util.tree_leaves(
        eqx.filter(tree, eqx.is_inexact_array)))  # fmt: skip
    assert zero(grads.flow) and zero(grads.critic)
    assert not zero(grads.actor)


def test_published_defaults_networks_and_registry():
    c = FQLConfig()
    assert (c.alpha, c.q_agg, c.normalize_q_loss, c.width, c.depth, c.flow_steps) == (
        10.0, "mean", False, 512, 4, 10,
    )  # fmt: skip
    assert (c.learning_rate, c.gamma, c.polyak, c.batch_size, c.num_critics) == (
        3e-4, 0.99, 0.005, 256, 2,
    )  # fmt: skip
    state = FQL(FQLConfig(width=WIDTH, depth=DEPTH), OBS, ACT).init(jr.key(0))
    assert isinstance(state.flow, FlowPolicy) and state.critic.layer_norm
    assert state.critic.members.activation == "gelu"
    assert algorithm("fql").label(c) == "FQL"


@pytest.mark.parametrize(
    "overrides, match",
    [({"alpha": -1.0}, "alpha"), ({"flow_steps": 0}, "flow_steps"), ({"gamma": 1.5}, "gamma")],
)
def test_bad_config_values_are_refused(overrides, match):
    with pytest.raises(ValueError, match=match):
        FQLConfig(**overrides)


def test_presets_are_the_authors_published_values():
    from spar_eqx._presets import preset_overrides

    assert preset_overrides("pen-cloned", algo="fql") == {"alpha": 10000.0, "q_agg": "min"}
    assert preset_overrides("antmaze-large-diverse", algo="fql") == {"alpha": 3.0}
    # OGBench: the README's command per environment (alpha, q_agg=min on the AntMazes, and
    # the discount 0.995 on the long-horizon environments).
    assert preset_overrides("antmaze-giant-navigate", algo="fql") == {
        "alpha": 10.0, "gamma": 0.995, "q_agg": "min"}  # fmt: skip
    assert preset_overrides("humanoidmaze-medium-navigate", algo="fql") == {
        "alpha": 30.0, "gamma": 0.995}  # fmt: skip
    assert preset_overrides("cube-double-play", algo="fql") == {"alpha": 300.0, "gamma": 0.99}
    assert preset_overrides("puzzle-4x4-play", algo="fql")["alpha"] == 1000.0
    with pytest.raises(KeyError, match="mujoco tasks .*only for"):
        preset_overrides("hopper-medium-replay", algo="fql")
