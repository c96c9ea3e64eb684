"""Flow matching (Appendix C.2.4): the Euler integrator on a field with a known flow, a flow
anchor that must learn a one-action behaviour policy, the residual flow as a generator for
SPAR-PROJ and SPAR-PLAS, and the Euler loop traced once whatever the step count."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from spar_eqx._components import ANCHOR_POLICIES, GENERATORS
from spar_eqx._config import (
    BASE_POLICIES,
    GENERATOR_KINDS,
    AnchorConfig,
    GateConfig,
    ResidualConfig,
    critic_subsets,
)
from spar_eqx._ensemble import CriticEnsemble
from spar_eqx._flow import FlowPolicy, ResidualFlow, VelocityField, euler
from spar_eqx._learner import hyperparameter_arrays
from spar_eqx._learners.anchor import Anchor
from spar_eqx._learners.rectify_common import FrozenAnchor
from spar_eqx._learners.rectify_plas import RectifyPLAS
from spar_eqx._learners.rectify_proj import RectifyPROJ
from spar_eqx._policy import SPARPolicy
from spar_eqx.data._normalize import ObservationNormalizer
from spar_eqx.data._transitions import Transitions

OBS, ACT, WIDTH, DEPTH = 3, 2, 32, 1  # one size for every network here: fewer shapes to compile
STATE = np.array([0.5, -0.3, 1.0], np.float32)
A_STAR = np.array([0.6, -0.4], np.float32)
IDENTITY = ObservationNormalizer(jnp.zeros(OBS, jnp.float32), jnp.ones(OBS, jnp.float32))


def _constant_field(cond_dim: int, velocity) -> VelocityField:
    """A velocity field that is `velocity` everywhere (last layer: zero weights, that bias)."""
    field = VelocityField(cond_dim, len(velocity), WIDTH, DEPTH, key=jr.key(0))
    last = field.mlp.layers[-1]
    field = eqx.tree_at(lambda f: f.mlp.layers[-1].weight, field, jnp.zeros_like(last.weight))
    return eqx.tree_at(lambda f: f.mlp.layers[-1].bias, field, jnp.asarray(velocity, jnp.float32))


def _one_action_batch(n: int = 64) -> Transitions:
    obs = np.tile(STATE, (n, 1))
    act = np.tile(A_STAR, (n, 1))
    zeros = np.zeros(n, np.float32)
    return Transitions(obs, act, zeros, obs, np.ones(n, bool), np.zeros(n, bool))


def test_the_flags_take_the_names_of_the_tables_of_parts():
    """`--base-policy` and `--generator` offer, and the configs accept, exactly the names of
    `ANCHOR_POLICIES` and `GENERATORS`: a new part needs no second list to be edited."""
    import argparse

    from spar_eqx._cli_train import add_train_arguments

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    choices = {a.option_strings[0]: a.choices for a in parser._actions if a.option_strings}
    assert tuple(choices["--base-policy"]) == tuple(ANCHOR_POLICIES) == BASE_POLICIES
    assert tuple(choices["--generator"]) == tuple(GENERATORS) == GENERATOR_KINDS
    with pytest.raises(ValueError, match="'cvae', 'flow'"):
        _residual_config(generator="diffusion")


@pytest.mark.parametrize("steps", [1, 4, 10])
def test_euler_on_a_constant_field_is_exact(steps):
    """`dx/dt = c` from `x_0` reaches `x_0 + c` at t = 1, whatever the number of steps."""
    velocity = np.array([0.25, -0.5], np.float32)
    field = _constant_field(OBS, velocity)
    x0 = jnp.array([0.1, 0.2])
    out = euler(field, jnp.asarray(STATE), x0, steps)
    np.testing.assert_allclose(np.asarray(out), np.asarray(x0) + velocity, rtol=1e-6, atol=1e-6)


def test_the_euler_loop_is_traced_once_whatever_the_step_count():
    """The integrator is a `fori_loop`: the traced program does not grow with `steps`."""

    def size(steps):
        policy = FlowPolicy(OBS, ACT, WIDTH, DEPTH, steps=steps, key=jr.key(0))
        jaxpr = jax.make_jaxpr(lambda o: policy(o))(jnp.asarray(STATE))
        return len(jaxpr.jaxpr.eqns)

    assert size(2) == size(50)


def test_flow_anchor_is_deterministic_bounded_and_learns_a_single_action():
    """Pure flow matching on one (s, a*) pair: `pi_base(s)` (the sample of z = 0) is one fixed
    action, and it is a*."""
    config = AnchorConfig(
        base_policy="flow", num_critics=2, width=WIDTH, depth=DEPTH, learning_rate=3e-3
    )
    anchor = Anchor(config, OBS, ACT)
    anchor = hyperparameter_arrays(anchor)
    state = anchor.init(jr.key(0))
    assert isinstance(state.policy, FlowPolicy)
    batch = _one_action_batch()

    params, static = eqx.partition(state, eqx.is_array)

    @jax.jit
    def train(params, key):
        def body(p, k):
            new, metrics = anchor.update(eqx.combine(p, static), batch, k)
            return eqx.filter(new, eqx.is_array), metrics

        return jax.lax.scan(body, params, jr.split(key, 200))

    params, metrics = train(params, jr.key(1))
    state = eqx.combine(params, static)
    assert metrics["bc_loss"][-20:].mean() < 0.5 * metrics["bc_loss"][:20].mean()

    @eqx.filter_jit
    def probe(policy, obs, keys):
        samples = jax.vmap(lambda k: policy.sample(obs, key=k))(keys)
        return policy(obs), policy(obs), samples

    first, again, samples = probe(state.policy, jnp.asarray(STATE), jr.split(jr.key(2), 8))
    assert np.array_equal(np.asarray(first), np.asarray(again))
    np.testing.assert_allclose(np.asarray(first), A_STAR, atol=0.1)
    assert np.all(np.abs(np.asarray(samples)) <= 1.0)


def test_flow_anchor_loss_uses_its_key_and_the_others_ignore_it():
    obs, act = jnp.tile(jnp.asarray(STATE), (4, 1)), jnp.tile(jnp.asarray(A_STAR), (4, 1))
    c = AnchorConfig(width=WIDTH, depth=DEPTH)
    for name, build in ANCHOR_POLICIES.items():
        policy = build(c, OBS, ACT, jr.key(0))
        one, two = policy.bc_loss(obs, act, jr.key(1)), policy.bc_loss(obs, act, jr.key(2))
        assert (name == "flow") == (float(one) != float(two)), name


def _frozen_anchor() -> FrozenAnchor:
    policy = FlowPolicy(OBS, ACT, WIDTH, DEPTH, steps=3, key=jr.key(0))
    return FrozenAnchor(policy, CriticEnsemble(OBS, ACT, 4, WIDTH, DEPTH, key=jr.key(1)))


def _residual_config(**overrides) -> ResidualConfig:
    base = dict(
        variant="proj", generator="flow", flow_steps=3, width=WIDTH, cvae_depth=DEPTH,
        latent_policy_depth=DEPTH, data_critics=2, guide_critics=2, num_candidates=4,
        projection_period=1, filtering="soft",
    )  # fmt: skip
    return ResidualConfig(**(base | overrides))


def test_residual_flow_generates_through_its_field():
    """A zero field generates the noise itself; the prior mean (`central`) is then 0."""
    flow = GENERATORS["flow"](_residual_config(), OBS, ACT, jr.key(0))
    assert isinstance(flow, ResidualFlow) and flow.noise_dim == ACT
    flow = eqx.tree_at(lambda f: f.field, flow, _constant_field(OBS + ACT, [0.0, 0.0]))
    z = jnp.array([0.3, -0.7])
    base = jnp.asarray(A_STAR)
    np.testing.assert_allclose(np.asarray(flow.generate(jnp.asarray(STATE), base, z)), z)
    assert np.all(np.asarray(flow.central(jnp.asarray(STATE), base)) == 0.0)
    assert flow.sample(jnp.asarray(STATE), base, 5, key=jr.key(1)).shape == (5, ACT)


def test_residual_flow_fit_is_weighted():
    """Zero weights give zero loss and zero gradient; the loss is linear in the weights."""
    flow = GENERATORS["flow"](_residual_config(), OBS, ACT, jr.key(0))
    c = _residual_config()
    obs = jr.normal(jr.key(1), (6, OBS))
    base, res = jr.normal(jr.key(2), (6, ACT)), jr.normal(jr.key(3), (6, ACT))
    w = jnp.linspace(0.0, 2.0, 6)
    value_and_grad = eqx.filter_jit(eqx.filter_value_and_grad(
        lambda m, w: m.fit_loss(obs, base, res, w, c, jr.key(4))[0]))  # fmt: skip
    zero, grads = value_and_grad(flow, 0.0 * w)
    assert float(zero) == 0.0
    assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree_util.tree_leaves(grads))
    three, one = value_and_grad(flow, 3.0 * w)[0], value_and_grad(flow, w)[0]
    np.testing.assert_allclose(float(three), 3.0 * float(one), rtol=1e-5)


@eqx.filter_jit
def _apply(update, state, batch, key):
    """`update(state, batch, key)`, compiled once per learner structure and update method: a
    bound method of a learner is a PyTree, so its float hyperparameters are traced leaves."""
    return update(state, batch, key)


def _learner(cls, **overrides):
    variant = {RectifyPROJ: "proj", RectifyPLAS: "plas"}[cls]
    config = _residual_config(variant=variant, **overrides)
    data, guide, gate = critic_subsets(4, 2, 2, 2)
    learner = hyperparameter_arrays(cls(config, data, guide, GateConfig(gate_critics=2), gate))
    return learner, learner.init(jr.key(0), _frozen_anchor())


@functools.cache
def _run(cls, steps: int = 3, **overrides):
    learner, state = _learner(cls, **overrides)
    batch = _one_action_batch(8)
    metrics = []
    for phase in learner.phases(2 * steps):
        for i in range(phase.steps):
            state, m = _apply(phase.update, state, batch, jr.key(i))
            metrics.append(m)
    return learner, state, metrics


@pytest.mark.parametrize("cls", [RectifyPROJ, RectifyPLAS])
def test_proj_and_plas_train_a_flow_generator_and_deploy_through_the_gate(cls):
    """Both variants train a flow generator end to end (SPAR-PROJ with the gradient-conflict
    metrics on), and the gated policy returns `pi_base(s)` bit for bit when it refuses."""
    learner, state, metrics = _run(cls, log_conflict=cls is RectifyPROJ)
    assert isinstance(state.generator, ResidualFlow)
    assert all(np.isfinite(float(v)) for m in metrics for v in m.values())
    if cls is RectifyPROJ:
        assert "flow_loss" in metrics[0] and float(metrics[0]["projected"]) == 1.0
        assert np.isfinite(float(metrics[0]["conflict_dd"]))
    policy = learner.policies(state, IDENTITY)["spar"]
    assert isinstance(policy, SPARPolicy)
    actions, accepted = policy.act_batch(jnp.tile(jnp.asarray(STATE), (5, 1)), jr.key(3))
    base = np.asarray(state.anchor.policy(jnp.asarray(STATE)))
    for action, took in zip(np.asarray(actions), np.asarray(accepted), strict=True):
        assert np.all(np.abs(action) <= 1.0)
        if not took:
            assert np.array_equal(action, base)


def test_mlp_variant_refuses_a_generator():
    with pytest.raises(ValueError, match="--generator"):
        ResidualConfig(variant="mlp", generator="flow")


def _latent_grad_norm(objective: str, lambda_g: float) -> float:
    """How far one phase-2 step moves the latent policy (flow generator, tiny sizes; the
    `literal` objective's step is the one `_run(RectifyPLAS)` compiled)."""
    learner, state = _learner(RectifyPLAS, plas_objective=objective, lambda_g=lambda_g)
    new, _ = _apply(learner.update_latent, state, _one_action_batch(8), jr.key(1))
    moved = jax.tree_util.tree_map(
        lambda a, b: jnp.max(jnp.abs(a - b)),
        eqx.filter(new.latent_policy, eqx.is_inexact_array),
        eqx.filter(state.latent_policy, eqx.is_inexact_array),
    )
    return float(max(jax.tree_util.tree_leaves(moved)))


def test_plas_literal_objective_ignores_lambda_g_and_the_fit_reading_does_not():
    """Algorithm 3 as written: `lambda_g = 0` leaves the latent policy where it is. The `fit`
    reading still trains it at `lambda_g = 0` (towards the weighted data residuals)."""
    assert _latent_grad_norm("literal", 0.0) == 0.0
    assert _latent_grad_norm("literal", 2.0) > 0.0
    assert _latent_grad_norm("fit", 0.0) > 0.0
