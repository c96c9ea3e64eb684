"""TD3+BC and ReBRAC: bandit probes with known optima, the penalised target with hand-made
numbers, the delayed actor, stop-gradients, LayerNorm critics, hyperparameters as leaves.

Training runs are one compiled `lax.scan` per learner class (the learner is an argument
whose float hyperparameters are arrays, so changing alpha or beta_1 does not retrace).
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jaxtyping
import numpy as np
import pytest

from spar_eqx._ensemble import CriticEnsemble
from spar_eqx._hyper import hyperparameters
from spar_eqx._learner import TrainingBatch, hyperparameter_arrays
from spar_eqx._learners._td3_steps import smoothed_target_actions
from spar_eqx._learners.rebrac import ReBRAC, ReBRACConfig, ReBRACState
from spar_eqx._learners.td3bc import TD3BC, TD3BCConfig, TD3BCState
from spar_eqx._networks import DeterministicPolicy, QNetwork
from spar_eqx._residual import polyak
from spar_eqx.data._normalize import ObservationNormalizer
from spar_eqx.data._transitions import Transitions

from .helpers import tree_allclose, tree_equal_bits

# One network shape for the whole file: random initialisation compiles once per shape.
OBS, ACT, M, WIDTH, DEPTH = 3, 2, 2, 32, 2
STEPS = 2000
STATE = np.array([0.5, -0.3, 1.0], np.float32)
A_STAR = np.array([0.7, -0.6], np.float32)
IDENTITY = ObservationNormalizer(jnp.zeros(OBS, jnp.float32), jnp.ones(OBS, jnp.float32))
LEARNERS = {"td3bc": (TD3BC, TD3BCConfig), "rebrac": (ReBRAC, ReBRACConfig)}


def _learner(name, **overrides):
    """Tiny networks and faster Adam so the probes converge in STEPS updates."""
    cls, config = LEARNERS[name]
    base = dict(width=WIDTH, depth=DEPTH, actor_learning_rate=3e-3, critic_learning_rate=3e-3)
    return cls(config(**(base | overrides)), OBS, ACT)


def _bandit() -> TrainingBatch:
    """One state, an 8 x 8 grid of actions over [-1, 1]^2 (mean exactly 0), terminal rewards
    `1 - ||a - a*||^2`: the optimum is a*, and Q(s, .) is that quadratic."""
    grid = np.linspace(-1.0, 1.0, 8, dtype=np.float32)
    actions = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, ACT)
    n = len(actions)
    obs = np.tile(STATE, (n, 1))
    rewards = (1.0 - np.sum((actions - A_STAR) ** 2, axis=-1)).astype(np.float32)
    transitions = Transitions(obs, actions, rewards, obs, np.ones(n, bool), np.zeros(n, bool))
    return TrainingBatch.from_transitions(transitions)


def _changed(a, b) -> jax.Array:
    pairs = zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    return jnp.any(jnp.stack([jnp.any(x != y) for x, y in pairs if eqx.is_array(x)]))


def _max_error(a, b) -> jax.Array:
    pairs = zip(
        jax.tree_util.tree_leaves(eqx.filter(a, eqx.is_inexact_array)),
        jax.tree_util.tree_leaves(eqx.filter(b, eqx.is_inexact_array)),
        strict=True,
    )
    return jnp.max(jnp.stack([jnp.max(jnp.abs(x - y)) for x, y in pairs]))


def _checks(learner, old, new) -> dict:
    """Per-step facts inside the scan: what moved, and whether the targets are Polyak means."""
    tau = learner.config.polyak
    return {
        "step": old.step,
        "actor_moved": _changed(old.actor, new.actor),
        "actor_opt_moved": _changed(old.actor_opt, new.actor_opt),
        "critic_moved": _changed(old.critic, new.critic),
        "target_actor_moved": _changed(old.target_actor, new.target_actor),
        "target_critic_moved": _changed(old.target_critic, new.target_critic),
        "polyak_error": jnp.maximum(
            _max_error(new.target_actor, polyak(old.target_actor, new.actor, tau)),
            _max_error(new.target_critic, polyak(old.target_critic, new.critic, tau)),
        ),
    }


@functools.cache
def _chunk(cls: type, steps: int):
    """`steps` updates of a `cls` learner in one compiled scan, asserted to trace once."""

    def run(learner, state, batch, key):
        params, static = eqx.partition(state, eqx.is_array)

        def body(p, k):
            old = eqx.combine(p, static)
            new, metrics = learner.update(old, batch, k)
            return eqx.filter(new, eqx.is_array), metrics | _checks(learner, old, new)

        params, metrics = jax.lax.scan(body, params, jr.split(key, steps))
        return eqx.combine(params, static), metrics

    return eqx.filter_jit(eqx.debug.assert_max_traces(run, max_traces=1))


@functools.cache
def _bandit_run(name: str, **overrides):
    learner = hyperparameter_arrays(_learner(name, **overrides))
    state = learner.init(jr.key(0))
    final, metrics = _chunk(type(learner), STEPS)(learner, state, _bandit(), jr.key(10))
    action = learner.policies(final, IDENTITY)[name](jnp.asarray(STATE)[None], jr.key(0))[0]
    return final, metrics, np.asarray(action)


def _fixed_point(weight_of_q):
    """Solve `pi = a* lam / (lam + w)` with `lam = weight_of_q(|Q(pi)|)`, Q(pi) = 1 - ||pi - a*||^2.

    The actor losses are `w ||pi - abar||^2 - lam Q(pi)` per row up to constants with
    `abar = 0` (TD3+BC: `w = 1 / act_dim`, lam = alpha / |Q|; ReBRAC: `w = beta_1`,
    lam = 1 / |Q|); their minimiser on the quadratic Q is this point.
    """
    pi = A_STAR.astype(np.float64)
    for _ in range(200):
        q = 1.0 - np.sum((pi - A_STAR) ** 2)
        lam, w = weight_of_q(abs(q))
        pi = A_STAR * lam / (lam + w)
    return pi


# --- the bandit: both learners improve on the data, and a huge BC weight pins them to it ---


@pytest.mark.parametrize("name", ["td3bc", "rebrac"])
def test_bandit_moves_the_deployed_action_towards_the_optimum(name):
    _, metrics, action = _bandit_run(name)
    data_mean = np.zeros(ACT)  # the grid is symmetric
    baseline = np.linalg.norm(data_mean - A_STAR)
    assert np.linalg.norm(action - A_STAR) < 0.3 * baseline, action
    # Near the optimum of the actor loss on the true quadratic Q (loose: the ReLU critic is only
    # piecewise linear; the loss coefficients themselves are pinned by the tests further down).
    if name == "td3bc":
        expected = _fixed_point(lambda q: (2.5 / q, 1.0 / ACT))
    else:
        expected = _fixed_point(lambda q: (1.0 / q, 0.05))
    np.testing.assert_allclose(action, expected, atol=0.08)
    assert float(metrics["critic_loss"][-1]) < 1e-2


@pytest.mark.parametrize(
    "name, overrides", [("td3bc", {"alpha": 1e-3}), ("rebrac", {"actor_bc_coef": 100.0})]
)
def test_bandit_with_a_huge_bc_weight_stays_at_the_data_mean(name, overrides):
    _, _, action = _bandit_run(name, **overrides)
    assert np.linalg.norm(action) < 0.1, action
    assert np.linalg.norm(action - A_STAR) > 0.8 * np.linalg.norm(A_STAR)


@pytest.mark.parametrize("name", ["td3bc", "rebrac"])
def test_delayed_actor_and_targets(name):
    final, metrics, _ = _bandit_run(name)
    m = {k: np.asarray(v) for k, v in metrics.items()}
    np.testing.assert_array_equal(m["step"], np.arange(STEPS))
    assert int(final.step) == STEPS
    actor_step = m["step"] % 2 == 0
    np.testing.assert_array_equal(m["actor_updated"], actor_step.astype(np.float32))
    # Step 0, 2, ...: the actor, its optimiser and both targets move; the targets are exactly
    # polyak(old target, new online network, tau).
    for key in ("actor_moved", "actor_opt_moved", "target_actor_moved", "target_critic_moved"):
        assert np.all(m[key][actor_step]), key
        # Step 1, 3, ...: all of them are unchanged, bit for bit.
        assert not np.any(m[key][~actor_step]), key
    assert np.max(m["polyak_error"][actor_step]) <= 1e-6
    # The critics step every update (checked where they are far from converged).
    assert np.all(m["critic_moved"][:50])
    # The actor metrics are zeros on critic-only steps and real numbers on actor steps, and
    # the phase declares them sparse, so the log averages them over actor steps alone.
    sparse = _learner(name).phases(STEPS)[0].sparse_metrics
    names = ("actor_loss", "bc_loss", "q_policy", "lambda")
    assert sparse == {k: "actor_updated" for k in names}
    for k in names:
        assert np.all(m[k][~actor_step] == 0.0), k
    assert np.all(m["lambda"][actor_step] > 0.0)


# --- the targets ---


def _hand_made_state(learner, pre_tanh, member_values):
    """`learner.init` with a constant target actor `tanh(pre_tanh)` and target critics whose
    members output the constants `member_values` (last layers zeroed, biases set)."""
    state = learner.init(jr.key(0))
    last_pi = state.target_actor.mlp.layers[-1]
    last_q = state.target_critic.members.mlp.layers[-1]
    return eqx.tree_at(
        lambda s: (
            s.target_actor.mlp.layers[-1].weight,
            s.target_actor.mlp.layers[-1].bias,
            s.target_critic.members.mlp.layers[-1].weight,
            s.target_critic.members.mlp.layers[-1].bias,
        ),
        state,
        (
            jnp.zeros_like(last_pi.weight),
            jnp.asarray(pre_tanh, jnp.float32),
            jnp.zeros_like(last_q.weight),
            jnp.asarray(member_values, jnp.float32).reshape(last_q.bias.shape),
        ),
    )


def _hand_made_batch() -> TrainingBatch:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(3, OBS)).astype(np.float32)
    return TrainingBatch(
        observations=obs,
        actions=np.zeros((3, ACT), np.float32),
        rewards=np.array([1.0, -0.5, 0.25], np.float32),
        next_observations=rng.normal(size=(3, OBS)).astype(np.float32),
        terminals=np.array([False, True, False]),
        timeouts=np.zeros(3, bool),
        next_actions=np.array([[0.5, -0.25], [1.0, 1.0], [-0.5, 0.75]], np.float32),
    )


@pytest.mark.parametrize("layer_norm", ["on", "off"])
def test_rebrac_critic_penalty_lowers_the_target_exactly(layer_norm):
    # pi'(s') = (0.5, -0.25) everywhere, Q'_1 = 2.0, Q'_2 = 1.5 (min 1.5), no noise.
    # ||a' - a'_data||^2 per row: 0, 1.8125 (terminal), 2.0; gamma 0.9, beta_2 0.5:
    # y = r + 0.9 (1 - d) (1.5 - 0.5 ||a' - a'_data||^2) = [2.35, -0.5, 0.7].
    batch, key = _hand_made_batch(), jr.key(3)
    targets = {}
    for beta in (0.5, 0.0):
        learner = _learner(
            "rebrac", gamma=0.9, policy_noise=0.0, critic_bc_coef=beta, critic_layer_norm=layer_norm
        )
        state = _hand_made_state(learner, np.arctanh([0.5, -0.25]), [2.0, 1.5])
        targets[beta] = np.asarray(learner.critic_target(state, batch, key))
    np.testing.assert_allclose(targets[0.5], [2.35, -0.5, 0.7], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(targets[0.0], [2.35, -0.5, 1.6], rtol=1e-6, atol=1e-6)
    distance = np.array([0.0, 1.8125, 2.0])
    not_done = np.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(
        targets[0.0] - targets[0.5], 0.9 * not_done * 0.5 * distance, rtol=1e-6, atol=1e-6
    )


def test_td3bc_target_and_critic_loss_with_known_numbers():
    learner = _learner("td3bc", gamma=0.9, policy_noise=0.0)
    state = _hand_made_state(learner, np.arctanh([0.5, -0.25]), [2.0, 1.5])
    batch, key = _hand_made_batch(), jr.key(3)
    target = learner.critic_target(state, batch, key)
    np.testing.assert_allclose(target, [2.35, -0.5, 1.6], rtol=1e-6, atol=1e-6)
    # Online critics that output 1.0 and -1.0 everywhere: the loss sums the members' MSEs.
    last = state.critic.members.mlp.layers[-1]
    critic = eqx.tree_at(
        lambda c: (c.members.mlp.layers[-1].weight, c.members.mlp.layers[-1].bias),
        state.critic,
        (jnp.zeros_like(last.weight), jnp.array([[1.0], [-1.0]])),
    )
    loss, metrics = learner.critic_loss(critic, state, batch, key)
    y = np.array([2.35, -0.5, 1.6])
    expected = np.mean((1.0 - y) ** 2) + np.mean((-1.0 - y) ** 2)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(metrics["q_target"], np.mean(y), rtol=1e-5)
    np.testing.assert_allclose(metrics["q_data"], 0.0, atol=1e-6)


def test_target_policy_smoothing():
    actor = DeterministicPolicy(OBS, ACT, WIDTH, DEPTH, key=jr.key(0))
    actor = eqx.tree_at(
        lambda p: (p.mlp.layers[-1].weight, p.mlp.layers[-1].bias),
        actor,
        (jnp.zeros_like(actor.mlp.layers[-1].weight), jnp.arctanh(jnp.array([0.9, -0.2]))),
    )
    s_next = jnp.asarray(np.random.default_rng(1).normal(size=(500, OBS)), jnp.float32)
    clean = np.array([0.9, -0.2], np.float32)
    smooth = lambda key, sigma, c: np.asarray(smoothed_target_actions(actor, s_next, key, sigma, c))
    np.testing.assert_allclose(smooth(jr.key(0), 0.0, 0.5), np.tile(clean, (500, 1)), atol=1e-6)
    # Large noise is clipped at +-c before the actions are clipped to [-1, 1].
    a = smooth(jr.key(0), 1e6, 0.3)
    noise = a - clean
    assert np.all(np.abs(noise) <= 0.3 + 1e-6) and np.all(np.abs(a) <= 1.0)
    np.testing.assert_allclose(np.sort(np.unique(np.round(a[:, 0], 5))), [0.6, 1.0], atol=1e-5)
    np.testing.assert_allclose(np.sort(np.unique(np.round(a[:, 1], 5))), [-0.5, 0.1], atol=1e-5)
    # Same key, same bits; another key, other noise. Moderate noise: N(0, 0.2^2) inside the clip.
    assert np.array_equal(a, smooth(jr.key(0), 1e6, 0.3))
    b = smooth(jr.key(1), 0.2, 10.0)[:, 1] - clean[1]
    assert not np.array_equal(b, smooth(jr.key(2), 0.2, 10.0)[:, 1] - clean[1])
    assert abs(np.std(b) - 0.2) < 0.03 and abs(np.mean(b)) < 0.03


# --- stop-gradients ---


def _random_batch(n=8) -> TrainingBatch:
    rng = np.random.default_rng(2)
    f = lambda *shape: rng.normal(size=shape).astype(np.float32)
    return TrainingBatch(
        observations=f(n, OBS),
        actions=np.tanh(f(n, ACT)),
        rewards=f(n),
        next_observations=f(n, OBS),
        terminals=rng.random(n) < 0.3,
        timeouts=np.zeros(n, bool),
        next_actions=np.tanh(f(n, ACT)),
    )


def _all_zero(tree) -> bool:
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_inexact_array))
    return bool(leaves) and all(np.all(np.asarray(g) == 0) for g in leaves)


def _all_nonzero(tree) -> bool:
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_inexact_array))
    return bool(leaves) and all(np.any(np.asarray(g) != 0) for g in leaves)


@pytest.mark.parametrize("name", ["td3bc", "rebrac"])
def test_critic_loss_gives_no_gradient_to_the_actor_or_the_targets(name):
    learner, batch = _learner(name), _random_batch()
    state = learner.init(jr.key(1))
    # Move the targets off the online networks, so a leak could not hide behind equal values.
    state = eqx.tree_at(lambda s: s.target_critic, state, learner.init(jr.key(2)).critic)
    loss = lambda models: learner.critic_loss(models[0], models[1], batch, jr.key(0))[0]
    g_critic, g_state = eqx.filter_grad(loss)((state.critic, state))
    assert _all_nonzero(g_critic)
    assert _all_zero(g_state)  # actor, target actor, target critics: nothing


@pytest.mark.parametrize("name", ["td3bc", "rebrac"])
def test_actor_loss_gives_no_gradient_to_the_critics(name):
    learner, batch = _learner(name), _random_batch()
    state = learner.init(jr.key(1))
    loss = lambda models: learner.actor_loss(models[0], models[1], batch)[0]
    g_actor, g_critic = eqx.filter_grad(loss)((state.actor, state.critic))
    assert _all_nonzero(g_actor)
    assert _all_zero(g_critic)


@pytest.mark.parametrize("name", ["td3bc", "rebrac"])
def test_lambda_is_stop_gradiented(name):
    learner, batch = _learner(name), _random_batch()
    state = learner.init(jr.key(1))
    obs, data = batch.observations, batch.actions
    _, aux = learner.actor_loss(state.actor, state.critic, batch)
    constant = float(aux["lambda"])

    def reference(actor, lam):
        """The actor loss written out, with `lam` either a constant or a live function of Q."""
        pi = jax.vmap(actor)(obs)
        q_all = jax.vmap(state.critic)(obs, pi)
        if name == "td3bc":
            q = q_all[:, 0]
            lam = 2.5 / jnp.mean(jnp.abs(q)) if lam is None else lam
            return -lam * jnp.mean(q) + jnp.mean((pi - data) ** 2)
        q = jnp.min(q_all, axis=-1)
        lam = 1.0 / jnp.mean(jnp.abs(q)) if lam is None else lam
        return jnp.mean(0.05 * jnp.sum((pi - data) ** 2, axis=-1) - lam * q)

    got = eqx.filter_grad(lambda a: learner.actor_loss(a, state.critic, batch)[0])(state.actor)
    const = eqx.filter_grad(lambda a: reference(a, constant))(state.actor)
    live = eqx.filter_grad(lambda a: reference(a, None))(state.actor)
    np.testing.assert_allclose(
        float(learner.actor_loss(state.actor, state.critic, batch)[0]),
        float(reference(state.actor, constant)),
        rtol=1e-5,
    )
    assert tree_allclose(got, const, rtol=1e-4, atol=1e-6)
    assert not tree_allclose(got, live, rtol=1e-2, atol=1e-4)  # the test can tell them apart


# --- LayerNorm critics ---


def _layer_norm_reference(net: QNetwork, obs, act):
    """Linear -> ReLU -> LayerNorm per hidden layer, then the last linear layer, by hand."""
    x = jnp.concatenate([obs, act])
    for linear, norm in zip(net.mlp.layers[:-1], net.norms, strict=True):
        h = jax.nn.relu(linear.weight @ x + linear.bias)
        h = (h - jnp.mean(h)) / jnp.sqrt(jnp.var(h) + 1e-6)
        x = norm.weight * h + norm.bias
    last = net.mlp.layers[-1]
    return (last.weight @ x + last.bias)[0]


def test_q_network_layer_norm():
    key = jr.key(5)
    plain = QNetwork(OBS, ACT, WIDTH, DEPTH, key=key)
    normed = QNetwork(OBS, ACT, WIDTH, DEPTH, key=key, layer_norm=True)
    assert not plain.layer_norm and plain.norms == ()
    assert normed.layer_norm and len(normed.norms) == DEPTH
    assert all(isinstance(n, eqx.nn.LayerNorm) for n in normed.norms)
    assert tree_equal_bits(plain.mlp, normed.mlp)  # same key, same linear layers
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(5, OBS)), jnp.float32)
    act = jnp.asarray(rng.uniform(-1, 1, size=(5, ACT)), jnp.float32)
    q_plain, q_normed = jax.vmap(plain)(obs, act), jax.vmap(normed)(obs, act)
    assert not np.allclose(q_plain, q_normed)
    np.testing.assert_allclose(
        q_normed,
        jax.vmap(lambda o, a: _layer_norm_reference(normed, o, a))(obs, act),
        rtol=1e-5,
        atol=1e-6,
    )
    # LayerNorm after the ReLU makes Q invariant to a positive rescaling of the first layer.
    scale = lambda net: eqx.tree_at(
        lambda n: (n.mlp.layers[0].weight, n.mlp.layers[0].bias),
        net,
        (3.0 * net.mlp.layers[0].weight, 3.0 * net.mlp.layers[0].bias),
    )
    np.testing.assert_allclose(jax.vmap(scale(normed))(obs, act), q_normed, rtol=1e-4, atol=1e-5)
    assert not np.allclose(jax.vmap(scale(plain))(obs, act), q_plain)


def test_critic_ensemble_layer_norm():
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(5, OBS)), jnp.float32)
    act = jnp.asarray(rng.uniform(-1, 1, size=(5, ACT)), jnp.float32)
    default = CriticEnsemble(OBS, ACT, M, WIDTH, DEPTH, key=jr.key(0))
    normed = CriticEnsemble(OBS, ACT, M, WIDTH, DEPTH, key=jr.key(0), layer_norm=True)
    assert not default.layer_norm and normed.layer_norm and normed.num_members == M
    q = jax.vmap(normed)(obs, act)
    assert q.shape == (5, M) and q.dtype == jnp.float32
    assert np.all(np.std(np.asarray(q), axis=1) > 0)  # members differ
    # Member 1 of the ensemble is a LayerNorm QNetwork.
    member = jax.tree_util.tree_map(lambda x: x[1] if eqx.is_array(x) else x, normed.members)
    np.testing.assert_allclose(jax.vmap(member)(obs, act), q[:, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        jax.vmap(lambda o, a: _layer_norm_reference(member, o, a))(obs, act),
        q[:, 1],
        rtol=1e-5,
        atol=1e-6,
    )
    assert not np.allclose(jax.vmap(default)(obs, act), q)


# --- hyperparameters as leaves, configs, init ---


def test_stacked_learners_vmap_like_the_unstacked_ones():
    # Two TD3+BC learners that differ only in float hyperparameters, stacked along a grid axis
    # and vmapped like the trainer does it: everything but `step`, which stays shared (so the
    # delayed-actor cond is a real branch). Each slice must match its own unstacked run.
    batch = _random_batch(16)
    learners = [
        hyperparameter_arrays(_learner("td3bc", alpha=a, critic_learning_rate=lr))
        for a, lr in ((2.5, 3e-3), (0.1, 1e-3))
    ]
    state = learners[0].init(jr.key(1))

    def split(s):
        """`(step_tree, rest)`: the `step` field apart from every other leaf."""
        is_step = eqx.tree_at(lambda t: t.step, jax.tree_util.tree_map(lambda _: False, s), True)
        return eqx.partition(s, is_step)

    def stack(*trees):
        return jax.tree_util.tree_map(
            lambda *xs: jnp.stack(xs) if eqx.is_array(xs[0]) else xs[0], *trees
        )

    @eqx.filter_jit
    def stacked_update(stacked_learners, stacked_rest, step_tree, key):
        def one(learner, rest):
            new, metrics = learner.update(eqx.combine(rest, step_tree), batch, key)
            return split(new)[1], metrics

        return eqx.filter_vmap(one)(stacked_learners, stacked_rest)

    single_update = eqx.filter_jit(lambda learner, s, key: learner.update(s, batch, key))
    step_tree, rest = split(state)
    stacked_learners, stacked_rest = stack(*learners), stack(rest, rest)
    singles = [state, state]
    for key in jr.split(jr.key(7), 3):  # steps 0 (actor), 1 (critics only), 2 (actor)
        stacked_rest, stacked_metrics = stacked_update(
            stacked_learners, stacked_rest, step_tree, key
        )
        step_tree = eqx.tree_at(lambda t: t.step, step_tree, step_tree.step + 1)
        outs = [single_update(lr, s, key) for lr, s in zip(learners, singles, strict=True)]
        singles = [out[0] for out in outs]
        for i, (single, metrics) in enumerate(outs):
            rest_i = jax.tree_util.tree_map(
                lambda x, i=i: x[i] if eqx.is_array(x) else x, stacked_rest
            )
            assert tree_allclose(eqx.combine(rest_i, step_tree), single, rtol=1e-5, atol=1e-6)
            for k, v in metrics.items():
                np.testing.assert_allclose(stacked_metrics[k][i], v, rtol=1e-5, atol=1e-6)
    assert int(singles[0].step) == int(step_tree.step) == 3
    # Same initial state: the two alphas (and critic learning rates) gave two different actors.
    assert not tree_allclose(singles[0].actor, singles[1].actor)


@pytest.mark.parametrize(
    "config, overrides, match",
    [
        (TD3BCConfig, dict(alpha=-1.0), "alpha"),
        (TD3BCConfig, dict(policy_delay=0), "policy_delay"),
        (TD3BCConfig, dict(gamma=1.5), "gamma"),
        (TD3BCConfig, dict(noise_clip=-0.1), "noise_clip"),
        (TD3BCConfig, dict(batch_size=0), "batch_size"),
        (TD3BCConfig, dict(num_critics=0), "num_critics"),
        (TD3BCConfig, dict(actor_learning_rate=0.0), "actor_learning_rate"),
        (ReBRACConfig, dict(critic_layer_norm="yes"), "critic_layer_norm"),
        (ReBRACConfig, dict(actor_bc_coef=-1.0), "actor_bc_coef"),
        (ReBRACConfig, dict(critic_bc_coef=-0.5), "critic_bc_coef"),
        (ReBRACConfig, dict(depth=0), "depth"),
        (ReBRACConfig, dict(polyak=2.0), "polyak"),
        (ReBRACConfig, dict(policy_noise=-0.2), "policy_noise"),
        (ReBRACConfig, dict(critic_learning_rate=-1e-3), "critic_learning_rate"),
    ],
)
def test_bad_config_values_are_refused(config, overrides, match):
    # A bad Literal is refused first by the runtime type checker these tests run with ...
    literal = "critic_layer_norm" in overrides
    errors = (ValueError, jaxtyping.TypeCheckError) if literal else ValueError
    with pytest.raises(errors, match=match):
        config(**overrides)
    # ... so run the validation itself too, as it runs without the checker.
    valid = config()
    for name, value in overrides.items():
        object.__setattr__(valid, name, value)  # bypass the frozen dataclass
    with pytest.raises(ValueError, match=match):
        valid.__check_init__()


def test_published_defaults_and_flags():
    td3 = TD3BCConfig()
    assert (td3.alpha, td3.policy_noise, td3.noise_clip, td3.policy_delay) == (2.5, 0.2, 0.5, 2)
    assert (td3.actor_learning_rate, td3.critic_learning_rate, td3.batch_size) == (3e-4, 3e-4, 256)
    assert (td3.width, td3.depth, td3.num_critics) == (256, 2, 2)
    assert (td3.gamma, td3.polyak) == (0.99, 0.005)
    rb = ReBRACConfig()
    assert (rb.actor_learning_rate, rb.critic_learning_rate, rb.batch_size) == (1e-3, 1e-3, 1024)
    assert (rb.width, rb.depth, rb.critic_layer_norm, rb.num_critics) == (256, 3, "on", 2)
    assert (rb.actor_bc_coef, rb.critic_bc_coef) == (0.05, 0.5)
    assert (rb.gamma, rb.polyak, rb.policy_noise, rb.noise_clip, rb.policy_delay) == (
        0.99, 0.005, 0.2, 0.5, 2,
    )  # fmt: skip
    for config in (TD3BCConfig, ReBRACConfig):
        fields = list(hyperparameters(config))
        assert all(h.flag and h.flag.startswith("--") for h in fields)
        for h in fields:
            # Floats are leaves; ints and strings (sizes, periods, switches) are static.
            assert h.static == (not isinstance(h.default, float)), h.path
    flags = {h.flag: h.path for h in hyperparameters(ReBRACConfig)}
    assert flags["--actor-bc-coef"] == "actor_bc_coef"
    assert flags["--critic-bc-coef"] == "critic_bc_coef"
    assert {h.flag: h.path for h in hyperparameters(TD3BCConfig)}["--alpha"] == "alpha"


@pytest.mark.parametrize("name", ["td3bc", "rebrac"])
def test_init_phases_and_policies(name):
    learner = _learner(name)
    state = learner.init(jr.key(0))
    assert isinstance(state, TD3BCState if name == "td3bc" else ReBRACState)
    assert state.step.dtype == jnp.int32 and int(state.step) == 0
    assert tree_equal_bits(state, learner.init(jr.key(0)))  # same key, same bits
    assert not tree_equal_bits(state.actor, learner.init(jr.key(1)).actor)
    assert tree_equal_bits(state.actor, state.target_actor)
    assert tree_equal_bits(state.critic, state.target_critic)
    assert state.critic.num_members == M
    assert state.critic.layer_norm == (name == "rebrac")
    (phase,) = learner.phases(123)
    assert (phase.name, phase.steps, phase.evaluate) == (name, 123, True)
    policies = learner.policies(state, IDENTITY)
    assert list(policies) == [name]
    actions = policies[name](jnp.zeros((4, OBS)), jr.key(0))
    assert actions.shape == (4, ACT) and np.all(np.abs(np.asarray(actions)) <= 1.0)


def test_rebrac_layer_norm_switch():
    learner = _learner("rebrac", critic_layer_norm="off")
    state = learner.init(jr.key(0))
    assert not state.critic.layer_norm and state.critic.members.norms == ()
