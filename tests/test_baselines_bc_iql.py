"""BC and IQL baselines: probes with known answers, stop-gradients, hyperparameter leaves.

Every run is `STEPS` updates in one jitted `lax.scan` on a fixed batch of `N` rows at one
state. Learners are passed through `hyperparameter_arrays`, so their float hyperparameters
are traced and the probes below share one compile per learner class.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jaxtyping
import numpy as np
import pytest

from spar_eqx._learner import TrainingBatch, hyperparameter_arrays
from spar_eqx._learners._iql_losses import actor_loss, critic_loss, value_loss
from spar_eqx._learners.bc import BC, BCConfig, BCState
from spar_eqx._learners.iql import IQL, IQLConfig, IQLState
from spar_eqx._losses import expectile_loss
from spar_eqx._residual import polyak
from spar_eqx.data._normalize import ObservationNormalizer
from spar_eqx.data._transitions import Transitions

from .helpers import tree_allclose, tree_equal_bits

OBS, ACT, WIDTH, DEPTH, CRITICS = 3, 2, 32, 2, 2
STEPS = 400
STATE = np.array([0.5, -0.3, 1.0], np.float32)
GRID = np.array([-0.9, -0.3, 0.3, 0.9], np.float32)
# 16 data actions spread uniformly over [-0.9, 0.9]^2; their mean is 0.
ACTIONS = np.stack(np.meshgrid(GRID, GRID, indexing="ij"), -1).reshape(-1, ACT)
N = len(ACTIONS)
A_STAR = np.array([0.3, -0.3], np.float32)


def _batch(actions, rewards, terminal: bool) -> TrainingBatch:
    """`N` rows at one state with s' = s (never a timeout: the data simply ends)."""
    obs = np.tile(STATE, (N, 1))
    return TrainingBatch.from_transitions(
        Transitions(
            observations=obs,
            actions=np.asarray(actions, np.float32),
            rewards=np.asarray(rewards, np.float32),
            next_observations=obs,
            terminals=np.full(N, terminal),
            timeouts=np.zeros(N, bool),
        )
    )


def _iql(**overrides) -> IQL:
    # Tiny networks, a large learning rate and fast targets so the probes converge in STEPS.
    base = dict(
        width=WIDTH,
        depth=DEPTH,
        num_critics=CRITICS,
        learning_rate=1e-2,
        polyak=0.1,
        actor_lr_schedule="constant",
    )
    return IQL(IQLConfig(**(base | overrides)), OBS, ACT)


def _bc(**overrides) -> BC:
    base = dict(width=WIDTH, depth=DEPTH, learning_rate=1e-2)
    return BC(BCConfig(**(base | overrides)), OBS, ACT)


def _moved(a, b) -> jax.Array:
    pairs = zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    return jnp.any(jnp.stack([jnp.any(x != y) for x, y in pairs if eqx.is_inexact_array(x)]))


def _checks(learner, old, new) -> dict:
    """Per-step facts measured inside the scan."""
    out = {"step_increment": new.step - old.step, "policy_moved": _moved(old.policy, new.policy)}
    if isinstance(new, IQLState):
        expected = polyak(old.target_critic, new.critic, learner.config.polyak)
        errors = [
            jnp.max(jnp.abs(x - y))
            for x, y in zip(
                jax.tree_util.tree_leaves(eqx.filter(new.target_critic, eqx.is_inexact_array)),
                jax.tree_util.tree_leaves(eqx.filter(expected, eqx.is_inexact_array)),
                strict=True,
            )
        ]
        out["target_polyak_error"] = jnp.max(jnp.stack(errors))
    return out


def _run(learner, state, batch, steps: int):
    params, static = eqx.partition(state, eqx.is_array)

    def body(p, k):
        old = eqx.combine(p, static)
        new, metrics = learner.update(old, batch, k)
        return eqx.filter(new, eqx.is_array), metrics | _checks(learner, old, new)

    params, metrics = jax.lax.scan(body, params, jr.split(jr.key(1), steps))
    return eqx.combine(params, static), metrics


_scan = eqx.filter_jit(_run)
_stacked_scan = eqx.filter_jit(eqx.filter_vmap(_run, in_axes=(0, None, None, None)))


def _train(learner, batch, steps: int = STEPS, seed: int = 0):
    state = learner.init(jr.key(seed))
    return _scan(hyperparameter_arrays(learner), state, batch, steps)


def _expectile(values: np.ndarray, tau: float) -> float:
    """The tau-expectile of `values` (equal mass), by bisection on its first-order condition."""
    lo, hi = float(values.min()), float(values.max())
    for _ in range(100):
        v = 0.5 * (lo + hi)
        w = np.where(values > v, tau, 1.0 - tau)
        lo, hi = (v, hi) if np.sum(w * (values - v)) > 0 else (lo, v)
    return 0.5 * (lo + hi)


# ---- BC


def test_bc_learns_the_mean_action():
    rng = np.random.default_rng(0)
    center = np.array([0.4, -0.2], np.float32)
    actions = (center + 0.2 * rng.standard_normal((N, ACT))).astype(np.float32)
    learner = _bc()
    state, metrics = _train(learner, _batch(actions, np.zeros(N), terminal=True))
    mean = actions.mean(axis=0)
    assert np.linalg.norm(mean - center) > 2e-2  # the sample mean, not the centre, is the answer
    np.testing.assert_allclose(state.policy(jnp.asarray(STATE)), mean, atol=1e-2)
    # The loss ends at the data's variance (the minimum of E||pi(s) - a||^2).
    np.testing.assert_allclose(
        metrics["bc_loss"][-1], np.mean(np.sum((actions - mean) ** 2, -1)), rtol=1e-2
    )
    assert np.all(np.asarray(metrics["step_increment"]) == 1) and int(state.step) == STEPS
    # The deployed policy: the mode, on raw observations through the normaliser.
    normalizer = ObservationNormalizer(mean=jnp.asarray(STATE), std=jnp.full(OBS, 2.0))
    ((name, policy),) = learner.policies(state, normalizer).items()
    assert name == "bc"
    np.testing.assert_allclose(
        policy(jnp.asarray(STATE)[None], jr.key(0))[0], state.policy(jnp.zeros(OBS)), atol=1e-6
    )
    (phase,) = learner.phases(123)
    assert (phase.name, phase.steps) == ("bc", 123)


# ---- IQL probes


def test_iql_bandit_moves_to_the_best_action_and_v_is_the_expectile():
    # One step, terminal; reward -||a - a*||^2 over actions spread uniformly around 0.
    rewards = -np.sum((ACTIONS - A_STAR) ** 2, axis=-1)
    batch = _batch(ACTIONS, rewards, terminal=True)
    learner = _iql()
    state, metrics = _train(learner, batch)
    s = jnp.asarray(STATE)

    # The critics fit the rewards (Q is exact on the data) ...
    q = jax.vmap(state.critic, in_axes=(None, 0))(s, jnp.asarray(ACTIONS))
    np.testing.assert_allclose(q, np.repeat(rewards[:, None], CRITICS, 1), atol=3e-2)
    # ... so V is the 0.7-expectile of the rewards, above their mean.
    v = float(state.value(s))
    expected_v = _expectile(rewards.astype(np.float64), 0.7)
    assert expected_v > rewards.mean() + 0.2
    np.testing.assert_allclose(v, expected_v, atol=3e-2)

    # The deployed action moves to a*, much closer than the data mean and BC (both ~0).
    bc_state, _ = _train(_bc(), batch)
    iql_action = np.asarray(
        learner.policies(state, ObservationNormalizer.identity(OBS))["iql"](s[None], jr.key(0))
    )[0]
    bc_action = np.asarray(bc_state.policy(s))
    np.testing.assert_allclose(bc_action, ACTIONS.mean(0), atol=2e-2)
    iql_error = np.linalg.norm(iql_action - A_STAR)
    assert iql_error < 0.3 * np.linalg.norm(ACTIONS.mean(0) - A_STAR)
    assert iql_error < 0.3 * np.linalg.norm(bc_action - A_STAR)

    assert np.max(np.asarray(metrics["target_polyak_error"])) <= 1e-6
    assert np.all(np.asarray(metrics["step_increment"]) == 1) and int(state.step) == STEPS
    for name in ("value_loss", "critic_loss", "actor_loss", "adv_mean", "weight_mean"):
        assert metrics[name].shape == (STEPS,) and metrics[name].dtype == jnp.float32, name
    np.testing.assert_allclose(metrics["actor_lr"], 1e-2)


@pytest.mark.parametrize("gamma", [0.5, 0.75])
def test_iql_constant_reward_chain_converges_to_the_discounted_sum(gamma):
    # Reward 1 forever at one state (s' = s, never terminal): Q = V = 1 / (1 - gamma).
    # Fast targets (polyak 0.5) so that the value iteration takes many rounds in STEPS.
    learner = _iql(gamma=gamma, polyak=0.5)
    state, metrics = _train(learner, _batch(ACTIONS, np.ones(N), terminal=False))
    s = jnp.asarray(STATE)
    expected = 1.0 / (1.0 - gamma)
    np.testing.assert_allclose(state.value(s), expected, rtol=2e-2)
    q = jax.vmap(state.critic, in_axes=(None, 0))(s, jnp.asarray(ACTIONS))
    np.testing.assert_allclose(q, expected, rtol=2e-2)
    q_target = jax.vmap(state.target_critic, in_axes=(None, 0))(s, jnp.asarray(ACTIONS))
    np.testing.assert_allclose(q_target, expected, rtol=2e-2)
    assert np.max(np.asarray(metrics["target_polyak_error"])) <= 1e-6


# ---- stop-gradients and the update's structure


def _random_batch(key) -> TrainingBatch:
    k1, k2, k3, k4 = jr.split(key, 4)
    return TrainingBatch.from_transitions(
        Transitions(
            observations=jr.normal(k1, (N, OBS)),
            actions=jr.uniform(k2, (N, ACT), minval=-0.9, maxval=0.9),
            rewards=jr.normal(k3, (N,)),
            next_observations=jr.normal(k4, (N, OBS)),
            terminals=jnp.arange(N) % 4 == 0,
            timeouts=jnp.zeros(N, bool),
        )
    )


def _nonzero(tree) -> bool:
    return any(bool(jnp.any(x != 0)) for x in jax.tree_util.tree_leaves(tree))


@eqx.filter_jit
def _stop_gradient_grads(learner, state, batch):
    obs, act, c = batch.observations, batch.actions, learner.config
    critic = eqx.filter_grad(lambda pair: critic_loss(pair[0], pair[1], batch, c.gamma)[0])(
        (state.critic, state.value)
    )
    actor = eqx.filter_grad(
        lambda t: actor_loss(t[0], t[1], t[2], obs, act, c.temperature, c.max_weight)[0]
    )((state.policy, state.target_critic, state.value))
    value = eqx.filter_grad(lambda pair: value_loss(pair[0], pair[1], obs, act, c.expectile)[0])(
        (state.value, state.target_critic)
    )
    return critic, actor, value


def test_iql_stop_gradients():
    learner = _iql()
    state = learner.init(jr.key(0))
    # Make the target critics differ from the online ones.
    state = dataclasses.replace(state, target_critic=learner.init(jr.key(1)).critic)
    critic, actor, value = _stop_gradient_grads(learner, state, _random_batch(jr.key(2)))
    # The critics' target carries no gradient into V (which only its own loss trains).
    g_critic, g_value = critic
    assert _nonzero(g_critic) and not _nonzero(g_value)
    # The actor's loss gives no gradient to the target critics or to V.
    g_policy, g_target, g_value = actor
    assert _nonzero(g_policy) and not _nonzero(g_target) and not _nonzero(g_value)
    # V's loss gives no gradient to the target critics.
    g_value, g_target = value
    assert _nonzero(g_value) and not _nonzero(g_target)
    # (That the target critics move only by Polyak averaging is checked at every step of
    # the scans above: `target_polyak_error`.)


def test_iql_update_order_and_targets():
    # Target critics with constant members Q'_i = c_i: V regresses on min_i c_i, the actor's
    # advantages are min_i c_i - V_new(s), and the critics bootstrap from V_new(s') (the
    # order of the authors' code). Each metric is recomputed by hand from the two states.
    learner = _iql(gamma=0.8)
    state = learner.init(jr.key(0))
    consts = jnp.array([[0.7], [-0.4]])  # (members, 1): the last layer's bias
    zero = jax.tree_util.tree_map(
        lambda x: jnp.zeros_like(x) if eqx.is_inexact_array(x) else x, state.critic
    )
    target = eqx.tree_at(lambda e: e.members.mlp.layers[-1].bias, zero, consts)
    state = dataclasses.replace(state, target_critic=target)
    batch = _random_batch(jr.key(2))
    obs, act, c = batch.observations, batch.actions, learner.config
    new, metrics = eqx.filter_jit(learner.update)(state, batch, jr.key(3))

    v_old = jax.vmap(state.value)(obs)
    np.testing.assert_allclose(metrics["value_loss"], expectile_loss(-0.4 - v_old, 0.7), rtol=1e-5)
    v_new = jax.vmap(new.value)(obs)
    np.testing.assert_allclose(metrics["adv_mean"], jnp.mean(-0.4 - v_new), rtol=1e-5)
    weights = jnp.minimum(jnp.exp(c.temperature * (-0.4 - v_new)), c.max_weight)
    np.testing.assert_allclose(metrics["weight_mean"], jnp.mean(weights), rtol=1e-5)
    log_probs = jax.vmap(state.policy.log_prob)(obs, act)
    np.testing.assert_allclose(metrics["actor_loss"], -jnp.mean(weights * log_probs), rtol=1e-5)
    q = jax.vmap(state.critic)(obs, act)
    y = batch.rewards + 0.8 * jnp.where(
        batch.terminals, 0.0, jax.vmap(new.value)(batch.next_observations)
    )
    np.testing.assert_allclose(
        metrics["critic_loss"], jnp.sum(jnp.mean((y[:, None] - q) ** 2, axis=0)), rtol=1e-5
    )
    # The target critics move only by Polyak averaging (up to float rounding: XLA may fuse
    # the average differently inside and outside jit).
    assert tree_allclose(new.target_critic, polyak(target, new.critic, c.polyak), rtol=0, atol=1e-6)
    assert int(new.step) == 1
    assert all(m.shape == () and m.dtype == jnp.float32 for m in metrics.values())


def test_iql_critic_target_uses_value_and_terminals():
    # The critic loss at Q = 0 is sum_i E[target^2] with target = r + gamma (1 - d) V(s').
    learner = _iql(gamma=0.5)
    state = learner.init(jr.key(0))
    batch = _random_batch(jr.key(2))
    zero = jax.tree_util.tree_map(
        lambda x: jnp.zeros_like(x) if eqx.is_inexact_array(x) else x, state.critic
    )
    loss, _ = critic_loss(zero, state.value, batch, 0.5)
    v_next = jax.vmap(state.value)(batch.next_observations)
    target = batch.rewards + 0.5 * jnp.where(batch.terminals, 0.0, v_next)
    np.testing.assert_allclose(loss, CRITICS * jnp.mean(target**2), rtol=1e-5)


# ---- hyperparameters are leaves


def test_float_hyperparameters_are_vmappable_leaves():
    batch = _batch(ACTIONS, -np.sum((ACTIONS - A_STAR) ** 2, axis=-1), terminal=True)
    learners = [_iql(temperature=1.0, expectile=0.6), _iql(temperature=8.0, expectile=0.9)]
    arrays = [hyperparameter_arrays(learner) for learner in learners]
    assert all(
        isinstance(x, jax.Array) and x.dtype == jnp.float32
        for x in (arrays[0].config.temperature, arrays[0].config.expectile)
    )
    stacked = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), *arrays)
    state = learners[0].init(jr.key(0))
    steps = 20
    both, _ = _stacked_scan(stacked, state, batch, steps)
    singles = [_scan(learner, state, batch, steps)[0] for learner in arrays]
    for i, single in enumerate(singles):
        part = jax.tree_util.tree_map(lambda x, i=i: x[i] if eqx.is_array(x) else x, both)
        assert tree_allclose(part, single, rtol=1e-4, atol=1e-5), i
    # The two grid points really differ (the hyperparameters reached the update).
    assert not tree_allclose(singles[0].value, singles[1].value, rtol=1e-3, atol=1e-3)
    assert not tree_allclose(singles[0].policy, singles[1].policy, rtol=1e-3, atol=1e-3)


# ---- the cosine actor schedule


def test_iql_cosine_actor_schedule_spans_the_phase():
    steps = 50
    learner = _iql(actor_lr_schedule="cosine")
    assert learner.decay_steps is None
    (phase,) = learner.phases(steps)
    assert (phase.name, phase.steps) == ("iql", steps)
    scheduled = phase.update.__self__
    assert scheduled.decay_steps == steps and scheduled.config == learner.config

    batch = _batch(ACTIONS, -np.sum((ACTIONS - A_STAR) ** 2, axis=-1), terminal=True)
    state = learner.init(jr.key(0))
    _, metrics = _scan(hyperparameter_arrays(scheduled), state, batch, steps + 1)
    lr = np.asarray(metrics["actor_lr"])
    t = np.arange(steps + 1)
    np.testing.assert_allclose(
        lr, 1e-2 * 0.5 * (1 + np.cos(np.pi * np.minimum(t, steps) / steps)), atol=1e-7
    )
    moved = np.asarray(metrics["policy_moved"])
    assert moved[:10].all() and not moved[steps]  # rate 0 after the stage's last step

    # A schedule needs its length: a bare update refuses, so does a mismatched one.
    with pytest.raises(ValueError, match="decay_steps"):
        learner.update(state, batch, jr.key(0))
    with pytest.raises(ValueError, match="decay_steps"):
        IQL(learner.config, OBS, ACT, decay_steps=10).phases(20)
    # A constant schedule needs none.
    assert _iql().phases(20)[0].update.__self__.decay_steps is None


# ---- configs, init, class constants


@pytest.mark.parametrize(
    "cls, overrides, match",
    [
        (IQLConfig, dict(expectile=1.5), "expectile"),
        (IQLConfig, dict(expectile=0.0), "expectile"),
        (IQLConfig, dict(temperature=-1.0), "temperature"),
        (IQLConfig, dict(batch_size=0), "batch_size"),
        (IQLConfig, dict(max_weight=0.0), "max_weight"),
        (IQLConfig, dict(num_critics=0), "num_critics"),
        (IQLConfig, dict(gamma=1.5), "gamma"),
        (IQLConfig, dict(polyak=-0.1), "polyak"),
        (IQLConfig, dict(learning_rate=0.0), "learning_rate"),
        (IQLConfig, dict(grad_clip=-1.0), "grad_clip"),
        (IQLConfig, dict(actor_lr_schedule="linear"), "actor_lr_schedule"),
        (BCConfig, dict(batch_size=0), "batch_size"),
        (BCConfig, dict(width=0), "width"),
        (BCConfig, dict(learning_rate=-1.0), "learning_rate"),
        (BCConfig, dict(grad_clip=0.0), "grad_clip"),
    ],
)
def test_config_validation(cls, overrides, match):
    # A bad Literal is refused by the runtime type checker before the check runs ...
    literal = "actor_lr_schedule" in overrides
    errors = (ValueError, jaxtyping.TypeCheckError) if literal else ValueError
    with pytest.raises(errors, match=match):
        cls(**overrides)
    # ... so run the check itself too, as it runs without the checker.
    config = cls()
    for name, value in overrides.items():
        object.__setattr__(config, name, value)
    with pytest.raises(ValueError, match=match):
        config.__check_init__()


def test_defaults_and_class_constants():
    c = IQLConfig()
    assert (c.expectile, c.temperature, c.max_weight, c.num_critics) == (0.7, 3.0, 100.0, 2)
    assert (c.gamma, c.polyak, c.learning_rate, c.grad_clip) == (0.99, 0.005, 3e-4, None)
    assert (c.width, c.depth, c.batch_size, c.actor_lr_schedule) == (256, 2, 256, "cosine")
    b = BCConfig()
    assert (b.width, b.depth, b.learning_rate, b.grad_clip, b.batch_size) == (
        256, 2, 3e-4, None, 256,
    )  # fmt: skip
    assert IQL.REWARD_CONVENTION == "iql"
    assert "REWARD_CONVENTION" not in {f.name for f in dataclasses.fields(IQL)}
    flags = {f.name: f.metadata.get("flag") for f in dataclasses.fields(IQLConfig)}
    assert flags["temperature"] == "--temperature" and flags["num_critics"] == "--critics"


@pytest.mark.parametrize("make", [_iql, _bc])
def test_init_is_deterministic(make):
    learner = make()
    state = learner.init(jr.key(0))
    assert isinstance(state, IQLState | BCState)
    assert state.step.dtype == jnp.int32 and int(state.step) == 0
    assert tree_equal_bits(state, learner.init(jr.key(0)))
    assert not tree_allclose(state.policy, learner.init(jr.key(1)).policy)
    if isinstance(state, IQLState):
        assert tree_equal_bits(state.critic, state.target_critic)
        assert state.critic.num_members == CRITICS
