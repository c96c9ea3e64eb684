"""SPARPolicy: base + residual + gate as one jitted act, for the three variants.

Residuals and critics are set by hand so the right answer is known: the critic is exactly
`Q(s, a) = a_0 + a_1 + d_i` (every member, so the gate's Q_rob is linear), the MLP residual a
constant vector, and the CVAE decoder the identity on its latent.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from spar_eqx import (
    BasePolicy,
    CriticEnsemble,
    DeployedPolicy,
    DeterministicPolicy,
    GateConfig,
    LatentPolicy,
    NoGatePolicy,
    PLASResidual,
    ReportingPolicy,
    ResidualCVAE,
    ResidualMLP,
    SPARPolicy,
)
from spar_eqx.data import ObservationNormalizer

from .helpers import tree_equal_bits

# Sizes shared with the other test files (random init compiles once per parameter shape).
OBS, ACT, WIDTH, DEPTH, M, LATENT, N = 3, 2, 16, 1, 4, 2, 5
MEAN = np.array([1.0, -2.0, 0.5], np.float32)
STD = np.array([2.0, 0.5, 1.0], np.float32)


def _set(module, where, values):
    return eqx.tree_at(where, module, tuple(jnp.asarray(v, jnp.float32) for v in values))


@functools.cache
def _critic() -> CriticEnsemble:
    """Every member `Q_i(s, a) = a_0 + a_1 + d_i`: Q_rob rises towards the corner (1, 1)."""
    ens = CriticEnsemble(OBS, ACT, num_members=M, width=WIDTH, depth=DEPTH, key=jr.key(5))
    first, last = ens.members.mlp.layers
    w1, b1 = np.zeros(first.weight.shape), np.zeros(first.bias.shape)
    for j in range(ACT):
        w1[:, j, OBS + j], b1[:, j] = 1.0, 10.0
    w2 = np.zeros(last.weight.shape)
    w2[:, 0, :ACT] = 1.0
    b2 = (np.array([0.0, 0.1, 0.2, 0.3]) - 10.0 * ACT)[:, None]
    layers = lambda e: e.members.mlp.layers
    return _set(
        ens,
        lambda e: (layers(e)[0].weight, layers(e)[0].bias, layers(e)[1].weight, layers(e)[1].bias),
        (w1, b1, w2, b2),
    )


@functools.cache
def _base() -> DeterministicPolicy:
    return DeterministicPolicy(OBS, ACT, WIDTH, DEPTH, max_action=1.0, key=jr.key(11))


def _normalizer() -> ObservationNormalizer:
    return ObservationNormalizer(mean=jnp.asarray(MEAN), std=jnp.asarray(STD))


def _constant_mlp(residual) -> ResidualMLP:
    """A ResidualMLP that outputs `residual` everywhere."""
    mlp = ResidualMLP(OBS, ACT, WIDTH, DEPTH, key=jr.key(3))
    last = mlp.mlp.layers[-1]
    where = lambda m: (m.mlp.layers[-1].weight, m.mlp.layers[-1].bias)
    return _set(mlp, where, (np.zeros(last.weight.shape), residual))


@functools.cache
def _identity_cvae() -> ResidualCVAE:
    """A ResidualCVAE whose decoder returns its latent: `decode(s, a_base, z) = z`."""
    cvae = ResidualCVAE(OBS, ACT, LATENT, WIDTH, DEPTH, key=jr.key(4))
    first, last = cvae.decoder.layers
    w1, b1 = np.zeros(first.weight.shape), np.zeros(first.bias.shape)
    for j in range(LATENT):
        w1[j, OBS + ACT + j], b1[j] = 1.0, 10.0
    w2 = np.zeros(last.weight.shape)
    w2[np.arange(ACT), np.arange(ACT)] = 1.0
    layers = lambda c: c.decoder.layers
    return _set(
        cvae,
        lambda c: (layers(c)[0].weight, layers(c)[0].bias, layers(c)[1].weight, layers(c)[1].bias),
        (w1, b1, w2, np.full(ACT, -10.0)),
    )


def _constant_latent_policy(z) -> LatentPolicy:
    policy = LatentPolicy(OBS, ACT, LATENT, WIDTH, DEPTH, max_latent=2.0, key=jr.key(6))
    last = policy.mlp.layers[-1]
    where = lambda p: (p.mlp.layers[-1].weight, p.mlp.layers[-1].bias)
    return _set(policy, where, (np.zeros(last.weight.shape), np.arctanh(np.asarray(z) / 2.0)))


def _policy(residual, **gate) -> SPARPolicy:
    config = GateConfig(num_candidates=8, **gate)
    return SPARPolicy(_normalizer(), _base(), residual, _critic(), config)


def _observations(seed=0) -> jax.Array:
    rng = np.random.default_rng(seed)
    return jnp.asarray(MEAN + STD * rng.normal(size=(N, OBS)), jnp.float32)


def _base_actions(obs) -> np.ndarray:
    return np.asarray(jax.vmap(lambda o: _base()((o - MEAN) / STD))(obs))


def _q_rob(actions) -> np.ndarray:
    q = np.sum(np.asarray(actions, np.float64), -1, keepdims=True) + [0.0, 0.1, 0.2, 0.3]
    return q.mean(-1) - 0.5 * q.std(-1)


_RESIDUALS = {
    "mlp": lambda: _constant_mlp([0.3, 0.2]),
    "proj": _identity_cvae,
    "plas": lambda: PLASResidual(_constant_latent_policy([0.3, 0.2]), _identity_cvae()),
}


@pytest.mark.parametrize("variant", ["mlp", "proj", "plas"])
def test_batched_act_shapes_and_acceptance(variant):
    policy = _policy(_RESIDUALS[variant]())
    assert policy.variant == variant
    obs = _observations()
    actions, accepted = policy.act_batch(obs, jr.key(0))
    assert actions.shape == (N, ACT) and actions.dtype == jnp.float32
    assert accepted.shape == (N,) and accepted.dtype == jnp.bool_
    assert np.all(np.abs(actions) <= 1.0)
    assert tree_equal_bits(policy(obs, jr.key(0)), actions)  # the BatchPolicy call
    base = _base_actions(obs)
    if variant in ("mlp", "plas"):
        # One deterministic candidate, a_base + (0.3, 0.2) clipped: better under the critic
        # wherever the clip leaves some improvement, so the gate accepts it.
        candidate = np.clip(base + [0.3, 0.2], -1.0, 1.0)
        gain = _q_rob(candidate) - _q_rob(base)
        expect = (gain > 1e-4) & (gain / (np.abs(_q_rob(base)) + 1e-6) > 0.01)
        assert expect.any()
        np.testing.assert_array_equal(np.asarray(accepted), expect)
        np.testing.assert_allclose(
            np.asarray(actions), np.where(expect[:, None], candidate, base), atol=1e-6
        )
    else:
        # Candidates are clip(a_base + z_k) for the prior latents z_k that each state's key
        # draws (the decoder is the identity): the gate keeps the best one if it improves.
        keys = jr.split(jr.key(0), N)
        z = np.asarray(jax.vmap(lambda k: jr.normal(k, (8, LATENT)))(keys))
        candidates = np.clip(base[:, None, :] + z, -1.0, 1.0)
        scores = _q_rob(candidates)
        best = candidates[np.arange(N), np.argmax(scores, axis=-1)]
        gain = scores.max(-1) - _q_rob(base)
        expect = (gain > 1e-4) & (gain / (np.abs(_q_rob(base)) + 1e-6) > 0.01)
        assert expect.any()
        np.testing.assert_array_equal(np.asarray(accepted), expect)
        np.testing.assert_allclose(
            np.asarray(actions), np.where(expect[:, None], best, base), atol=1e-5
        )


def test_refusal_returns_the_base_action_exactly():
    # The residual points away from what the critic prefers: every state falls back to a_base.
    policy = _policy(_constant_mlp([-0.3, -0.2]))
    obs = _observations()
    actions, accepted = policy.act_batch(obs, jr.key(0))
    assert not np.any(accepted)
    base = policy.base_only()
    assert isinstance(base, BasePolicy)
    # Bit for bit the base action, as computed under jit (XLA may round an eager, unfused
    # evaluation of the same network differently in the last bit).
    base = eqx.filter_jit(base)
    assert np.asarray(actions).tobytes() == np.asarray(base(obs, jr.key(0))).tobytes()
    np.testing.assert_allclose(actions, _base_actions(obs), atol=1e-6)
    # The same for thresholds that nothing can pass.
    strict = _policy(_constant_mlp([0.3, 0.2]), eta_abs=100.0)
    actions, accepted = strict.act_batch(obs, jr.key(0))
    assert not np.any(accepted)
    assert np.asarray(actions).tobytes() == np.asarray(base(obs, jr.key(0))).tobytes()


def test_without_gate_always_applies_the_residual():
    obs = _observations()
    base = _base_actions(obs)
    for residual in ([-0.3, -0.2], [0.3, 0.2]):
        ungated = _policy(_constant_mlp(residual)).without_gate()
        assert isinstance(ungated, NoGatePolicy)
        expected = np.clip(base + residual, -1.0, 1.0)
        np.testing.assert_allclose(ungated(obs, jr.key(0)), expected, atol=1e-6)
    # SPAR-PROJ without the gate decodes the prior mean z = 0: here the zero residual.
    ungated = _policy(_identity_cvae()).without_gate()
    np.testing.assert_allclose(ungated(obs, jr.key(0)), base, atol=1e-6)


def test_single_act_matches_the_batch_and_normalises():
    policy = _policy(_constant_mlp([0.3, 0.2]))
    obs = _observations(1)
    batch, _ = policy.act_batch(obs, jr.key(0))
    one = policy.act(obs[0], jr.key(0))
    assert one.shape == (ACT,) and one.dtype == jnp.float32
    np.testing.assert_allclose(one, batch[0], atol=1e-6)
    # The policy owns its normaliser: raw observations in, the same as normalised ones fed
    # to an identity-normalised copy.
    identity = eqx.tree_at(lambda p: p.normalizer, policy, ObservationNormalizer.identity(OBS))
    normalised, _ = identity.act_batch((obs - MEAN[None]) / STD[None], jr.key(0))
    np.testing.assert_allclose(normalised, batch, atol=1e-5)


def test_proj_is_deterministic_under_a_key_and_uses_it():
    policy = _policy(_identity_cvae())
    obs = _observations(2)
    first = policy.act_batch(obs, jr.key(7))
    assert tree_equal_bits(first, policy.act_batch(obs, jr.key(7)))
    others = [policy.act_batch(obs, jr.key(k))[0] for k in (8, 9)]
    assert any(not np.array_equal(first[0], other) for other in others)


def test_mismatched_action_spaces_are_refused():
    # Abstract parameters suffice for the constructor's check (and compile nothing).
    wrong = eqx.filter_eval_shape(ResidualMLP, OBS + 1, ACT + 1, WIDTH, DEPTH, key=jr.key(0))
    with pytest.raises(ValueError, match="action"):
        SPARPolicy(_normalizer(), _base(), wrong, _critic(), GateConfig())


@pytest.mark.parametrize("residual", [[0.3, 0.2], [-0.3, -0.2]])
def test_the_report_is_the_gate_decision_behind_the_same_actions(residual):
    """`act_and_report` (what `evaluate` averages along episodes) gives `__call__`'s actions
    and, per row, 1.0 exactly where the gate accepted (here: all rows, then none)."""
    policy = _policy(_constant_mlp(residual))
    assert isinstance(policy, ReportingPolicy)
    obs = _observations()
    actions, report = eqx.filter_jit(policy.act_and_report)(obs, jr.key(0))
    _, accepted = policy.act_batch(obs, jr.key(0))
    np.testing.assert_array_equal(report["gate_acceptance"], np.asarray(accepted, np.float32))
    assert np.all(accepted) if residual[0] > 0 else not np.any(accepted)
    np.testing.assert_array_equal(actions, eqx.filter_jit(policy)(obs, jr.key(0)))


@pytest.mark.parametrize("use_gate", [True, False])
@pytest.mark.parametrize("variant", ["mlp", "proj", "plas"])
def test_the_compiled_act_is_act_bit_for_bit(variant, use_gate):
    """`SPARPolicy.compile` (the control-loop path) gives `act`'s actions exactly, for every
    variant, with and without the gate, for typed and legacy keys and NumPy observations."""
    policy = _policy(_RESIDUALS[variant]())
    obs = _observations(3)
    deployed = policy.compile(obs[0], use_gate=use_gate)
    assert isinstance(deployed, DeployedPolicy)
    assert deployed.policy is policy and deployed.use_gate is use_gate
    for i, key in enumerate(jr.split(jr.key(1), N)):
        expected = np.asarray(policy.act(obs[i], key, use_gate))
        assert np.asarray(deployed.act(obs[i], key)).tobytes() == expected.tobytes()
    # What an environment hands over: a float64 NumPy array, cast like `act` casts it.
    raw = np.asarray(obs[1], np.float64)
    expected = np.asarray(policy.act(raw, jr.key(2), use_gate))
    assert np.asarray(deployed.act(raw, jr.key(2))).tobytes() == expected.tobytes()
    legacy = policy.compile(obs[0], jr.PRNGKey(0), use_gate)
    expected = np.asarray(policy.act(obs[2], jr.PRNGKey(4), use_gate))
    assert np.asarray(legacy.act(obs[2], jr.PRNGKey(4))).tobytes() == expected.tobytes()


def test_the_compiled_act_never_traces_or_compiles_again():
    policy = _policy(_identity_cvae())
    obs = _observations(4)
    deployed = policy.compile(obs[0])
    rows, keys = list(obs), list(jr.split(jr.key(5), N))  # eager slicing compiles: do it here
    events = []
    listener = lambda event, duration, **kwargs: events.append(event)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        jax.block_until_ready([deployed.act(o, k) for o, k in zip(rows, keys, strict=True)])
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert not [e for e in events if "trace" in e or "compile" in e], events
    # Another shape, or another key type, is refused rather than compiled anew.
    with pytest.raises(TypeError):
        deployed.act(obs[:2], jr.key(0))
    with pytest.raises(TypeError):
        deployed.act(obs[0], jr.PRNGKey(0))
