"""Stage II (SPAR-MLP, SPAR-PROJ, SPAR-PLAS): frozen anchor, stopped gradients, probes.

The anchor is built by hand: a random base policy and a critic ensemble whose members are
exactly linear in the action, `Q_i(s, a) = c_i . a + d_i`, so every weight and every optimum
has a closed form computed here in numpy.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jaxtyping
import numpy as np
import pytest

from spar_eqx import (
    CriticEnsemble,
    DeterministicPolicy,
    FrozenAnchor,
    MLPState,
    PLASState,
    PROJState,
    RectifyMLP,
    RectifyPLAS,
    RectifyPROJ,
    ResidualConfig,
    critic_subsets,
    polyak,
)
from spar_eqx._learners.rectify_proj import self_imitation_targets, weighted_elbo
from spar_eqx._losses import latent_self_imitation
from spar_eqx.data._transitions import Transitions

from .helpers import tree_equal_bits

# Sizes shared with the other test files (random init compiles once per parameter shape).
OBS, ACT, WIDTH, DEPTH, M, LATENT, BATCH = 3, 2, 16, 1, 4, 2, 8
STEPS = 300
STATE = np.array([0.5, -0.3, 1.0], np.float32)
# Data critics are members (0, 1), guide critics (2, 3). The guide members share c = (1, 1),
# so their std is constant and Q_rob rises towards the corner (1, 1) of the action box.
COEFS = np.array([[1.0, 0.5], [0.8, 0.7], [1.0, 1.0], [1.0, 1.0]])
OFFSETS = np.array([0.0, 0.3, 0.0, 0.4])
DATA, GUIDE, _ = critic_subsets(M, 2, 2, 2)
CORNER = np.ones(ACT)


def _linear_critic(coefs, offsets) -> CriticEnsemble:
    """An ensemble with `Q_i(s, a) = coefs[i] . a + offsets[i]` for |a| < 10 (exactly ReLU-linear).

    Hidden unit j < ACT computes relu(a_j + 10) = a_j + 10; the others are switched off.
    """
    ens = CriticEnsemble(OBS, ACT, num_members=M, width=WIDTH, depth=DEPTH, key=jr.key(5))
    first, last = ens.members.mlp.layers
    w1 = np.zeros(first.weight.shape, np.float32)
    b1 = np.zeros(first.bias.shape, np.float32)
    for j in range(ACT):
        w1[:, j, OBS + j] = 1.0
        b1[:, j] = 10.0
    w2 = np.zeros(last.weight.shape, np.float32)
    w2[:, 0, :ACT] = coefs
    b2 = (np.asarray(offsets) - 10.0 * np.sum(coefs, axis=1))[:, None].astype(np.float32)
    return eqx.tree_at(
        lambda e: (
            e.members.mlp.layers[0].weight,
            e.members.mlp.layers[0].bias,
            e.members.mlp.layers[1].weight,
            e.members.mlp.layers[1].bias,
        ),
        ens,
        tuple(jnp.asarray(x) for x in (w1, b1, w2, b2)),
    )


@functools.cache
def _anchor() -> FrozenAnchor:
    policy = DeterministicPolicy(OBS, ACT, WIDTH, DEPTH, key=jr.key(11))
    return FrozenAnchor(policy, _linear_critic(COEFS, OFFSETS))


def _base() -> np.ndarray:
    return np.asarray(_anchor().policy(jnp.asarray(STATE)), np.float64)


def _q_rob(actions, members, lambda_u):
    """Numpy Q_rob and sigma over `members` at actions of shape (n, ACT)."""
    q = np.asarray(actions, np.float64) @ COEFS[list(members)].T + OFFSETS[list(members)]
    return q.mean(-1) - lambda_u * q.std(-1), q.std(-1)


def _batch(offsets) -> Transitions:
    """BATCH rows at STATE with actions a_base + offsets (cycled)."""
    actions = (_base() + np.asarray(offsets))[np.arange(BATCH) % len(offsets)]
    obs = np.tile(STATE, (BATCH, 1))
    return Transitions(
        observations=obs,
        actions=actions.astype(np.float32),
        rewards=np.zeros(BATCH, np.float32),
        next_observations=obs,
        terminals=np.zeros(BATCH, bool),
        timeouts=np.zeros(BATCH, bool),
    )


def _config(variant, **overrides) -> ResidualConfig:
    base = dict(
        variant=variant,
        data_critics=len(DATA),
        guide_critics=len(GUIDE),
        width=WIDTH,
        mlp_depth=DEPTH,
        cvae_depth=DEPTH,
        latent_policy_depth=DEPTH,
        latent_dim=LATENT,
        num_candidates=8,
        learning_rate=1e-2,
    )
    return ResidualConfig(**(base | overrides))


_LEARNERS = {"mlp": RectifyMLP, "proj": RectifyPROJ, "plas": RectifyPLAS}


def _learner(config):
    return _LEARNERS[config.variant](config, DATA, GUIDE)


PROJ_TAU = 0.002  # small, so a probe's target decoder stays (nearly) where it was put


def _leaves(tree):
    return jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))


def _same(a, b) -> jax.Array:
    """Inside jit: every array leaf of `a` equals that of `b`."""
    pairs = zip(_leaves(a), _leaves(b), strict=True)
    return jnp.all(jnp.stack([jnp.array_equal(x, y) for x, y in pairs]))


def _max_abs_diff(a, b) -> jax.Array:
    pairs = zip(_leaves(a), _leaves(b), strict=True)
    return jnp.max(jnp.stack([jnp.max(jnp.abs(x - y)) for x, y in pairs]))


# Per-step facts recorded inside the compiled scan, `check(old_state, new_state) -> dict`.
def _checks_mlp(old, new):
    return {"anchor_same": _same(old.anchor, new.anchor), "step_inc": new.step - old.step}


def _checks_proj(old, new):
    expected = polyak(old.target_generator, new.generator, PROJ_TAU)
    return {
        "anchor_same": _same(old.anchor, new.anchor),
        "target_polyak_error": _max_abs_diff(new.target_generator, expected),
        "step_inc": new.step - old.step,
    }


def _checks_plas(old, new):
    return {
        "anchor_same": _same(old.anchor, new.anchor),
        "cvae_same": _same((old.generator, old.generator_opt), (new.generator, new.generator_opt)),
        "latent_same": _same(
            (old.latent_policy, old.latent_opt), (new.latent_policy, new.latent_opt)
        ),
        "step_inc": new.step - old.step,
    }


@functools.cache
def _chunk(learner, method: str, steps: int, check):
    """`steps` updates of `learner.<method>` in one `eqx.filter_jit` + `lax.scan`, with the
    per-step `check` added to the metrics. Built once per argument set and asserted to trace
    once, however often it is called."""
    update = getattr(learner, method)

    def run(state, batch, key):
        params, static = eqx.partition(state, eqx.is_array)

        def body(p, k):
            old = eqx.combine(p, static)
            new, metrics = update(old, batch, k)
            return eqx.filter(new, eqx.is_array), metrics | check(old, new)

        params, metrics = jax.lax.scan(body, params, jr.split(key, steps))
        return eqx.combine(params, static), metrics

    return eqx.filter_jit(eqx.debug.assert_max_traces(run, max_traces=1))


# Parts of a Stage II state to differentiate the stage's loss against.
_ANCHOR = lambda s: s.anchor
_ANCHOR_AND_TARGET = lambda s: (s.anchor, s.target_generator)
_POLICY_AND_CVAE = lambda s: (s.anchor.policy, s.generator)


@functools.cache
def _loss_grad(learner, method: str, part):
    """Jitted: the gradient of the `loss` that `learner.<method>` reports, w.r.t. `part(state)`.
    Where every path is stopped the gradient is a symbolic zero, and this compiles to little."""
    update = getattr(learner, method)

    def grad(state, batch, key):
        loss_of = lambda sub: update(eqx.tree_at(part, state, sub), batch, key)[1]["loss"]
        return eqx.filter_grad(loss_of)(part(state))

    return eqx.filter_jit(grad)


def _all_zero(tree) -> bool:
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_inexact_array))
    return bool(leaves) and all(not np.any(np.asarray(g)) for g in leaves)


def _any_nonzero(tree) -> bool:
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_inexact_array))
    return any(np.any(np.asarray(g)) for g in leaves)


def _member(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i] if eqx.is_array(x) else x, tree)


# --- the hand-built anchor ----------------------------------------------------------------------


def test_linear_critic_helper_is_exact():
    actions = np.random.default_rng(0).uniform(-1, 1, size=(6, ACT)).astype(np.float32)
    q = jax.vmap(_anchor().critic, in_axes=(None, 0))(jnp.asarray(STATE), jnp.asarray(actions))
    np.testing.assert_allclose(q, actions @ COEFS.T + OFFSETS, rtol=1e-5, atol=1e-5)


# --- SPAR-MLP -------------------------------------------------------------------------------


def test_mlp_without_guidance_converges_to_the_weighted_mean_residual():
    # lambda_g = 0: the residual minimises E[w ||res - (a - a_base)||^2] at one state, so it
    # converges to sum_j w_j delta_j / sum_j w_j with w = exp(A~/T) 1{A~ > 0} (hard filter).
    config = _config("mlp", lambda_g=0.0, temperature=0.5)
    offsets = np.array([[0.3, 0.1], [0.1, 0.3], [-0.2, 0.1], [0.2, -0.3]])
    batch = _batch(offsets)
    base = _base()
    q_data, _ = _q_rob(base + offsets, DATA, config.lambda_u)
    q_base, sigma = _q_rob(base[None], DATA, config.lambda_u)
    adv = (q_data - q_base) / max(sigma[0], 1e-6)
    w = np.where(adv > 0, np.minimum(np.exp(adv / config.temperature), config.max_weight), 0.0)
    assert 0 < np.count_nonzero(w) < len(w) and len(set(w[w > 0])) > 1  # a real weighting
    expected = (w[:, None] * offsets).sum(0) / w.sum()

    learner = _learner(config)
    state = learner.init(jr.key(0), _anchor())
    assert isinstance(state, MLPState)
    state, metrics = _chunk(learner, "update", STEPS, _checks_mlp)(state, batch, jr.key(1))
    residual = np.asarray(state.residual(jnp.asarray(STATE), jnp.asarray(base, jnp.float32)))
    np.testing.assert_allclose(residual, expected, atol=5e-3)
    np.testing.assert_allclose(metrics["weight_mean"][0], w.mean(), rtol=1e-4)
    np.testing.assert_allclose(metrics["positive_advantage"][0], np.mean(adv > 0))
    assert np.all(np.asarray(metrics["anchor_same"])) and tree_equal_bits(state.anchor, _anchor())
    np.testing.assert_allclose(metrics["capped_weights"][0], np.mean(w >= config.max_weight))


def _mlp_guide_run(seed=1):
    # Every data action is worse than a_base, so hard filtering zeroes the fit term.
    learner = _learner(_config("mlp", lambda_g=1.0))
    batch = _batch(np.array([[-0.3, -0.2], [-0.1, -0.4]]))
    state = learner.init(jr.key(0), _anchor())
    return (
        learner,
        batch,
        state,
        _chunk(learner, "update", STEPS, _checks_mlp)(state, batch, jr.key(seed)),
    )


def test_mlp_guidance_ascends_the_guide_critics_to_the_action_bound():
    # What is left is gradient ascent on the guide critics' Q_rob, which rises towards the
    # corner (1, 1); the synthesised action is clipped, so the ascent stops exactly there.
    _, _, _, (state, metrics) = _mlp_guide_run()
    assert np.all(np.asarray(metrics["weight_mean"]) == 0)
    base = jnp.asarray(_base(), jnp.float32)
    res = state.residual(jnp.asarray(STATE), base)
    np.testing.assert_allclose(_anchor().clip(base + res), CORNER, atol=1e-6)
    assert np.all(np.diff(np.asarray(metrics["guide_q"])) >= -1e-5)  # monotone ascent
    assert np.all(np.asarray(metrics["anchor_same"])) and tree_equal_bits(state.anchor, _anchor())
    assert np.all(np.asarray(metrics["step_inc"]) == 1) and int(state.step) == STEPS


def test_mlp_loss_gradient_never_reaches_the_base_policy_or_the_weights():
    learner = _learner(_config("mlp", lambda_g=1.0))
    batch = _batch(np.array([[0.3, 0.1], [-0.2, 0.1], [0.2, -0.3]]))
    state = learner.init(jr.key(0), _anchor())
    grads = _loss_grad(learner, "update", _ANCHOR)(state, batch, jr.key(0))
    # a_base = pi_base(s) is a constant of the loss: no gradient into the base policy.
    assert _all_zero(grads.policy)
    # The weights use the data critics with gradients stopped; the guidance term does depend
    # on the guide critics (the update never applies that gradient: the anchor stays frozen).
    for i in DATA:
        assert _all_zero(_member(grads.critic.members, i))
    for i in GUIDE:
        assert _any_nonzero(_member(grads.critic.members, i))


# --- SPAR-PROJ --------------------------------------------------------------------------------


def _shift_decoder(cvae, delta):
    """The same CVAE with `delta` added to every decoded residual (last-layer bias)."""
    bias = cvae.decoder.layers[-1].bias
    return eqx.tree_at(lambda c: c.decoder.layers[-1].bias, cvae, bias + jnp.asarray(delta))


@eqx.filter_jit
def _self_imitation_pull(cvae, target, anchor, obs, config, key):
    """Omega, the decoder-bias gradient of eq. 10, and what it should equal (one compile)."""
    base = anchor.base_actions(obs)
    guide = anchor.critic.select(GUIDE)
    latents, targets, omega, _ = self_imitation_targets(
        anchor, target, guide, obs, base, config, key
    )

    def predict(model):
        return jax.vmap(jax.vmap(model.decode, in_axes=(None, None, 0)))(obs, base, latents)

    loss = lambda model: latent_self_imitation(predict(model), targets, omega)
    grad = eqx.filter_grad(loss)(cvae).decoder.layers[-1].bias
    weighted_pred = jnp.einsum("bk,bka->ba", omega, predict(cvae))
    combination = jnp.einsum("bk,bka->ba", omega, targets)
    return omega, grad, 2 * jnp.mean(weighted_pred - combination, axis=0)


def test_self_imitation_pulls_the_decoder_shift_towards_the_weighted_combination():
    # d/d(decoder output bias) of sum_k omega_k ||dec(z_k) - delta_k||^2 (averaged over states)
    # is 2 E_s[sum_k omega_k dec(z_k) - sum_k omega_k delta_k]: a uniform shift of the decoder
    # is pulled from its omega-weighted output to the weighted candidate combination.
    config = _config("proj", temperature=0.3)
    state = _learner(config).init(jr.key(0), _anchor())
    target = _shift_decoder(state.generator, [0.4, 0.2])
    obs = jnp.asarray(np.random.default_rng(0).normal(size=(BATCH, OBS)), jnp.float32)
    omega, grad, expected = _self_imitation_pull(
        state.generator, target, _anchor(), obs, config, jr.key(3)
    )
    rows = np.asarray(omega.sum(-1)) > 0
    assert rows.any()
    np.testing.assert_allclose(np.asarray(omega.sum(-1))[rows], 1.0, rtol=1e-5)
    assert np.max(np.asarray(omega)) < 1.0  # a genuine combination of several candidates
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)
    assert np.any(np.asarray(grad) != 0)


def _proj_probe_learner():
    # Only self-imitation (no ELBO), on every other step, against a slow target.
    config = _config(
        "proj",
        recon_weight=0.0,
        kl_weight=0.0,
        lambda_g=1.0,
        projection_period=2,
        target_tau=PROJ_TAU,
    )
    return _learner(config)


def _proj_probe(shift, seed=1):
    """(initial state, final state, metrics) of STEPS updates from a target decoder that is
    the online one shifted by `shift`."""
    learner = _proj_probe_learner()
    state = learner.init(jr.key(0), _anchor())
    assert isinstance(state, PROJState) and tree_equal_bits(state.generator, state.target_generator)
    state = eqx.tree_at(lambda s: s.target_generator, state, _shift_decoder(state.generator, shift))
    run = _chunk(learner, "update", STEPS, _checks_proj)
    return state, *run(state, _batch(np.zeros((1, ACT))), jr.key(seed))


def _decode(cvae, latents):
    return _decode_jit(cvae, latents, jnp.asarray(_base(), jnp.float32))


@eqx.filter_jit
def _decode_jit(cvae, latents, base):
    return jax.vmap(cvae.decode, in_axes=(None, None, 0))(jnp.asarray(STATE), base, latents)


def test_proj_self_imitation_imitates_better_candidates():
    # The target decodes the online decoder's residuals shifted by +0.6 towards the guide
    # critics' preferred corner: its candidates beat a_base, get weight, and the online
    # decoder is pulled onto them, so it ends up reproducing the target decoder.
    start, state, metrics = _proj_probe([0.6, 0.6])
    assert float(metrics["states_with_targets"][0]) == 1.0
    z = jnp.asarray(np.random.default_rng(42).normal(size=(256, LATENT)), jnp.float32)

    def gap(s):  # mean squared distance between online and target decoded residuals
        online, target = (
            np.asarray(_decode(s.generator, z)),
            np.asarray(_decode(s.target_generator, z)),
        )
        return np.mean(np.sum(np.square(online - target), -1))

    before, after = gap(start), gap(state)
    assert float(before) == pytest.approx(0.72, rel=1e-4)
    assert float(after) < 0.02 * float(before)
    # Self-imitation on steps 0, 2, 4, ... only (projection_period = 2).
    projected = np.asarray(metrics["projected"])
    np.testing.assert_array_equal(projected, np.arange(STEPS) % 2 == 0)
    assert np.all(np.asarray(metrics["self_imitation_loss"])[projected == 0] == 0)
    assert np.all(np.asarray(metrics["self_imitation_loss"])[:20:2] > 0)
    # The metrics that are zeros between projections are the ones the phase declares sparse,
    # so the log averages them over the projection steps alone.
    sparse = _proj_probe_learner().phases(STEPS)[0].sparse_metrics
    names = ("self_imitation_loss", "states_with_targets", "candidate_advantage")
    assert sparse == {name: "projected" for name in names}
    for name in names:
        assert np.all(np.asarray(metrics[name])[projected == 0] == 0), name
    # Every step: the target moved only by polyak(old target, new online, tau), and the
    # anchor did not move at all.
    assert np.max(np.asarray(metrics["target_polyak_error"])) <= 1e-6
    assert np.all(np.asarray(metrics["anchor_same"])) and tree_equal_bits(state.anchor, _anchor())
    assert np.all(np.asarray(metrics["step_inc"]) == 1)


def test_proj_self_imitation_ignores_worse_candidates():
    # Shifted by -3 every candidate clips into the worst corner: hard filtering gives every
    # omega 0, so there is no target and (with no ELBO) the CVAE does not move at all.
    start, state, metrics = _proj_probe([-3.0, -3.0])
    assert np.all(np.asarray(metrics["states_with_targets"]) == 0)
    assert np.all(np.asarray(metrics["self_imitation_loss"]) == 0)
    assert tree_equal_bits(state.generator, start.generator)


@pytest.mark.parametrize("elbo", [False, True])
def test_proj_loss_gradient_never_reaches_the_anchor_or_the_target(elbo):
    # At a projection step with a target that differs from the online CVAE (so eq. 10 is not
    # trivially 0): a_base, the weights, the candidates, omega and the target all carry no
    # gradient, with and without the weighted ELBO.
    learner = _learner(_config("proj")) if elbo else _proj_probe_learner()
    state = learner.init(jr.key(0), _anchor())
    state = eqx.tree_at(
        lambda s: s.target_generator, state, _shift_decoder(state.generator, [0.6, 0.6])
    )
    batch = _batch(np.array([[0.3, 0.1], [-0.2, 0.1], [0.2, -0.3]]))
    anchor_grads, target_grads = _loss_grad(learner, "update", _ANCHOR_AND_TARGET)(
        state, batch, jr.key(0)
    )
    assert _all_zero(anchor_grads) and _all_zero(target_grads)


@eqx.filter_jit
def _elbo_parts(cvae, obs, base, residual, weights, scales, config, key):
    """`weighted_elbo` at `scale * weights` for every scale, and the gradient at weights 0."""
    at = lambda w: weighted_elbo(cvae, obs, base, residual, w, config, key)
    parts = jax.vmap(lambda c: at(c * weights))(scales)
    zero_grad = eqx.filter_grad(
        lambda c: weighted_elbo(c, obs, base, residual, 0.0 * weights, config, key)[0]
    )(cvae)
    return parts, zero_grad


def test_kl_is_never_weighted():
    config = _config("proj")
    cvae = _learner(config).init(jr.key(0), _anchor()).generator
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(BATCH, OBS)), jnp.float32)
    base = jnp.asarray(rng.uniform(-0.5, 0.5, size=(BATCH, ACT)), jnp.float32)
    residual = jnp.asarray(rng.normal(scale=0.3, size=(BATCH, ACT)), jnp.float32)
    weights = jnp.asarray(rng.uniform(0, 3, size=BATCH), jnp.float32)
    scales = jnp.array([1.0, 0.0, 2.5, 40.0])
    (loss, (rec, kl)), zero_grad = _elbo_parts(
        cvae, obs, base, residual, weights, scales, config, jr.key(7)
    )
    assert float(kl[0]) > 0 and float(rec[0]) > 0
    # The KL part does not see the weights; the reconstruction scales with them.
    np.testing.assert_array_equal(kl, kl[0])
    np.testing.assert_allclose(rec, np.asarray(scales) * float(rec[0]), rtol=1e-5, atol=1e-7)
    expected = config.recon_weight * np.asarray(rec) + config.kl_weight * np.asarray(kl)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # With every weight 0 only the KL is left: it trains the encoder and not the decoder.
    assert _all_zero(zero_grad.decoder) and _any_nonzero(zero_grad.encoder)


# --- SPAR-PLAS ------------------------------------------------------------------------------


def _identity_decoder(cvae):
    """The same CVAE with `decode(s, a_base, z) = z` (needs LATENT == ACT, |z| < 10)."""
    first, last = cvae.decoder.layers
    w1 = np.zeros(first.weight.shape, np.float32)
    b1 = np.zeros(first.bias.shape, np.float32)
    for j in range(LATENT):
        w1[j, OBS + ACT + j] = 1.0
        b1[j] = 10.0
    w2 = np.zeros(last.weight.shape, np.float32)
    w2[np.arange(ACT), np.arange(ACT)] = 1.0
    b2 = np.full(last.bias.shape, -10.0, np.float32)
    return eqx.tree_at(
        lambda c: (
            c.decoder.layers[0].weight,
            c.decoder.layers[0].bias,
            c.decoder.layers[1].weight,
            c.decoder.layers[1].bias,
        ),
        cvae,
        tuple(jnp.asarray(x) for x in (w1, b1, w2, b2)),
    )


def test_plas_phases():
    learner = _learner(_config("plas", plas_vae_fraction=0.3))
    phases = learner.phases(100)
    assert [p.name for p in phases] == ["cvae", "latent"]
    assert [p.steps for p in phases] == [30, 70]
    assert [p.update for p in phases] == [learner.update_vae, learner.update_latent]
    # The CVAE phase trains no deployable latent policy: no periodic evaluation there.
    assert [p.evaluate for p in phases] == [False, True]
    assert sum(p.steps for p in learner.phases(1)) == 1
    for variant in ("mlp", "proj"):
        (phase,) = _learner(_config(variant)).phases(100)
        assert phase.steps == 100 and phase.update == _learner(_config(variant)).update


def test_plas_latent_phase_reaches_the_best_action_through_a_frozen_decoder():
    # With dec(s, a_base, z) = z, the latent policy ascends Q_rob(s, clip(a_base + z)), whose
    # maximum over the box is the corner (1, 1); the CVAE itself must not move.
    learner = _learner(_config("plas", lambda_g=1.0))
    state = learner.init(jr.key(0), _anchor())
    assert isinstance(state, PLASState)
    state = eqx.tree_at(lambda s: s.generator, state, _identity_decoder(state.generator))
    batch = _batch(np.zeros((1, ACT)))
    new, metrics = _chunk(learner, "update_latent", STEPS, _checks_plas)(state, batch, jr.key(1))
    # Every step: CVAE (and its optimiser state) and anchor untouched, latent policy trained.
    assert np.all(np.asarray(metrics["cvae_same"])) and np.all(np.asarray(metrics["anchor_same"]))
    assert not np.any(np.asarray(metrics["latent_same"][:10]))
    assert tree_equal_bits(new.generator, state.generator) and tree_equal_bits(
        new.anchor, _anchor()
    )
    base = jnp.asarray(_base(), jnp.float32)
    z = new.latent_policy(jnp.asarray(STATE), base)
    action = _anchor().clip(base + new.generator.decode(jnp.asarray(STATE), base, z))
    np.testing.assert_allclose(action, CORNER, atol=1e-6)
    guide_q = np.asarray(metrics["guide_q"])
    best, _ = _q_rob(CORNER[None], GUIDE, 0.5)
    assert guide_q[-1] == pytest.approx(best[0], abs=1e-4) and guide_q[0] < best[0] - 0.1
    # The frozen decoder carries no gradient, and neither does a_base.
    policy_grads, cvae_grads = _loss_grad(learner, "update_latent", _POLICY_AND_CVAE)(
        state, batch, jr.key(0)
    )
    assert _all_zero(policy_grads) and _all_zero(cvae_grads)


def test_plas_cvae_phase_trains_only_the_cvae():
    learner = _learner(_config("plas", lambda_g=1.0))
    batch = _batch(np.array([[0.3, 0.1], [-0.2, 0.1], [0.2, -0.3]]))
    state = learner.init(jr.key(0), _anchor())
    new, metrics = _chunk(learner, "update_vae", 2, _checks_plas)(state, batch, jr.key(1))
    # Every step: the CVAE trains; the latent policy (and its optimiser state) and the anchor
    # stay as they are.
    assert not np.any(np.asarray(metrics["cvae_same"]))
    assert np.all(np.asarray(metrics["latent_same"])) and np.all(np.asarray(metrics["anchor_same"]))
    assert tree_equal_bits(new.anchor, _anchor()) and int(new.step) == 2
    # The weighted ELBO sees the anchor only through a_base and the weights, both stopped.
    # (The ELBO itself is checked in test_kl_is_never_weighted.)
    grads = _loss_grad(learner, "update_vae", _ANCHOR)(state, batch, jr.key(0))
    assert _all_zero(grads)


# --- determinism -------------------------------------------------------------------------------


def test_training_is_deterministic_under_a_fixed_key():
    # The same chunks as the probes above: they are reused, not recompiled (and the chunks
    # assert that they trace only once).
    first = _proj_probe([0.6, 0.6], seed=5)
    assert tree_equal_bits(first, _proj_probe([0.6, 0.6], seed=5))
    other = _proj_probe([0.6, 0.6], seed=6)
    assert not tree_equal_bits(first[1].generator, other[1].generator)  # the key matters (latents)
    assert tree_equal_bits(_mlp_guide_run(seed=3)[3], _mlp_guide_run(seed=3)[3])


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(variant="diffusion"), "variant"),
        (dict(filtering="medium"), "filtering"),
        (dict(sensitivity="linear"), "sensitivity"),
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(max_weight=0.0), "max_weight"),
        (dict(latent_dim=0), "latent_dim"),
        (dict(num_candidates=0), "num_candidates"),
        (dict(lambda_g=-0.5), "lambda_g"),
        (dict(target_tau=1.5), "target_tau"),
        (dict(plas_vae_fraction=1.0), "plas_vae_fraction"),
    ],
)
def test_residual_config_validation(overrides, match):
    # A bad Literal is refused by the runtime type checker these tests run with before
    # `__post_init__` sees it ...
    literal = set(overrides) & {"variant", "filtering", "sensitivity"}
    errors = (ValueError, jaxtyping.TypeCheckError) if literal else ValueError
    with pytest.raises(errors, match=match):
        ResidualConfig(**overrides)
    # ... so run the validation itself too, as it runs without the checker: a clear ValueError.
    config = ResidualConfig()
    for name, value in overrides.items():
        object.__setattr__(config, name, value)  # bypass the frozen dataclass
    with pytest.raises(ValueError, match=match):
        config.__check_init__()


@pytest.mark.parametrize(
    "sizes, match",
    [
        ((10, 11, 4, 4), "data"),
        ((10, 4, 0, 4), "guide"),
        ((4, 4, 4, 5), "gate"),
        ((3, 4, 1, 1), "ensemble size"),
    ],
)
def test_critic_subsets_refuse_oversized_subsets(sizes, match):
    with pytest.raises(ValueError, match=match):
        critic_subsets(*sizes)


def test_critic_subsets_layout():
    data, guide, gate = critic_subsets(10, 4, 4, 4)
    assert data == (0, 1, 2, 3) and guide == (4, 5, 6, 7) and gate == (6, 7, 8, 9)
    assert critic_subsets(4, 4, 2, 1) == ((0, 1, 2, 3), (0, 1), (3,))  # guide wraps around


@pytest.mark.parametrize("variant", ["mlp", "proj", "plas"])
def test_the_share_of_capped_weights_is_reported(variant):
    # A cap just above 1 catches every positive-advantage sample whose exp(A~/T) exceeds it;
    # uniform weights are never "capped".
    offsets = np.array([[0.3, 0.1], [0.1, 0.3], [-0.2, 0.1], [0.2, -0.3]])
    batch = _batch(offsets)
    base = _base()
    for sensitivity, max_weight in (("exp", 1.05), ("exp", 100.0), ("uniform", 1.05)):
        config = _config(variant, temperature=0.5, max_weight=max_weight, sensitivity=sensitivity)
        q_data, _ = _q_rob(base + offsets, DATA, config.lambda_u)
        q_base, sigma = _q_rob(base[None], DATA, config.lambda_u)
        adv = (q_data - q_base) / max(sigma[0], 1e-6)
        w = np.where(adv > 0, np.minimum(np.exp(adv / 0.5), max_weight), 0.0)
        expected = np.mean(w >= max_weight) if sensitivity == "exp" else 0.0
        learner = _learner(config)
        state = learner.init(jr.key(0), _anchor())
        update = learner.update_vae if variant == "plas" else learner.update
        _, metrics = eqx.filter_jit(update)(state, batch, jr.key(1))
        np.testing.assert_allclose(metrics["capped_weights"], expected)
    assert 0 < np.mean(np.where(adv > 0, np.exp(adv / 0.5), 0) >= 1.05) < 1  # a real mix


@pytest.mark.parametrize("reading", ["literal", "convex"])
def test_proj_self_imitation_reading_at_the_first_projection(reading):
    """At step 0 the EMA target decoder equals the online one: the literal eq. 10 loss is
    exactly zero (no pull), the Prop. 3.3(i) reading pulls towards the weighted combination."""
    config = _config("proj", lambda_g=1.0, self_imitation=reading)
    learner = _learner(config)
    state = learner.init(jr.key(0), _anchor())
    batch = _batch(np.array([[0.3, 0.1], [0.1, 0.3], [-0.2, 0.1], [0.2, -0.3]]))
    _, metrics = eqx.filter_jit(learner.update)(state, batch, jr.key(1))
    assert float(metrics["projected"]) == 1.0
    if reading == "literal":
        assert float(metrics["self_imitation_loss"]) == 0.0
    else:
        assert float(metrics["self_imitation_loss"]) > 0.0
