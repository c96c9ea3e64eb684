"""Stage III, the value gate (eq. 12): a_base bit for bit on refusal, the argmax on acceptance."""

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from spar_eqx import GateConfig, GateDecision, gate

K, ACT = 6, 3  # fixed shapes: hypothesis varies values (and NaNs), never shapes

# Q values on a dyadic grid (multiples of 2^-8 up to 2^10): differences and |q| + eps are
# exact or correctly rounded in float32 alike, and never subnormal.
_q = st.integers(-(2**18), 2**18).map(lambda i: float(np.float32(i) / np.float32(256)))
_eta_abs = st.sampled_from([0.0, 1e-4, 2**-8, 0.5, 3.0])
_eta_rel = st.sampled_from([0.0, 0.01, 0.1, 1.0, 10.0])
_eps = st.sampled_from([1e-6, 1e-3, 1.0])
_actions = hnp.arrays(
    np.float32, (K + 1, ACT), elements=st.floats(-1, 1, width=32, allow_subnormal=False)
)


def _call(base, candidates, q_base, q_candidates, eta_abs, eta_rel, eps) -> GateDecision:
    return gate(
        jnp.asarray(base, jnp.float32),
        jnp.asarray(candidates, jnp.float32),
        jnp.asarray(q_base, jnp.float32),
        jnp.asarray(q_candidates, jnp.float32),
        eta_abs,
        eta_rel,
        eps,
    )


def _passes(delta, q_base, eta_abs, eta_rel, eps) -> bool:
    """Eq. 12 in float32 numpy: Delta Q > eta_abs and Delta Q / (|Q_base| + eps) > eta_rel."""
    f = np.float32
    ratio = f(delta) / (np.abs(f(q_base)) + f(eps))
    return bool(f(delta) > f(eta_abs)) and bool(ratio > f(eta_rel))


@given(
    actions=_actions,
    q_base=_q,
    deltas=st.lists(_q, min_size=K, max_size=K),
    nans=st.one_of(st.just([False] * K), st.lists(st.booleans(), min_size=K, max_size=K)),
    eta_abs=_eta_abs,
    eta_rel=_eta_rel,
    eps=_eps,
    at_threshold=st.sampled_from([None, None, "abs", "rel"]),
)
def test_gate_returns_base_exactly_or_the_best_passing_candidate(
    actions, q_base, deltas, nans, eta_abs, eta_rel, eps, at_threshold
):
    q_candidates = np.float32(q_base) + np.array(deltas, np.float32)
    q_candidates[np.array(nans)] = np.nan
    base, candidates = actions[0], actions[1:]
    q_cand = q_candidates
    delta = q_cand - np.float32(q_base)
    finite = ~np.isnan(delta)
    if at_threshold is not None and finite.any():
        # Put a threshold exactly at the best Delta Q (or its ratio): strict ">" must refuse.
        best = np.max(delta[finite])
        ratio = best / (np.abs(np.float32(q_base)) + np.float32(eps))
        if at_threshold == "abs":
            eta_abs = float(best)
        else:
            eta_rel = float(ratio)
    decision = _call(base, candidates, q_base, q_cand, eta_abs, eta_rel, eps)
    assert isinstance(decision, GateDecision)
    assert decision.action.shape == (ACT,) and decision.action.dtype == jnp.float32
    assert decision.accepted.shape == () and decision.accepted.dtype == jnp.bool_
    assert decision.index.shape == () and decision.delta_q.shape == ()
    accepted = bool(decision.accepted)
    if accepted:
        k = int(decision.index)
        # Only a finite, best-scoring candidate that clears both thresholds gets through ...
        assert finite[k] and delta[k] == np.max(delta[finite])
        assert _passes(delta[k], q_base, eta_abs, eta_rel, eps)
        assert float(decision.delta_q) == float(delta[k])
        # ... and it is returned as is.
        assert np.array_equal(np.asarray(decision.action), candidates[k])
    else:
        # Refusal returns a_base itself, bit for bit.
        assert np.asarray(decision.action).tobytes() == base.tobytes()
    if finite.any():
        # NaN scores are skipped: the decision is exactly eq. 12 at the best finite candidate.
        masked = np.where(finite, delta, -np.inf)
        assert accepted == _passes(np.max(masked), q_base, eta_abs, eta_rel, eps)
        assert int(decision.index) == int(np.argmax(masked))
    if at_threshold is not None:
        assert not accepted
    if not finite.any():
        assert not accepted


@pytest.mark.parametrize(
    "q_base, q_best, eta_abs, eta_rel, eps, accepted",
    [
        (1.0, 1.5, 1e-4, 0.01, 1e-6, True),  # clear improvement
        (0.0, 2**-8, 2**-8, 0.0, 1e-6, False),  # Delta Q exactly at eta_abs: strict, refused
        (0.0, 2**-7, 2**-8, 0.0, 1e-6, True),
        (0.0, 1e-3, 1e-4, 0.01, 1e-6, True),  # q_base = 0: ratio = 1e-3 / eps, passes
        (0.0, 1e-3, 1e-4, 2000.0, 1e-6, False),  # ... unless eta_rel is above 1e-3 / 1e-6
        (-100.0, -99.5, 1e-4, 0.01, 1e-6, False),  # negative q_base: |q_base| scales the ratio
        (-100.0, -98.0, 1e-4, 0.01, 1e-6, True),  # 2 / 100 = 0.02 > 0.01
        (100.0, 100.5, 1e-4, 0.01, 1e-6, False),  # 0.5 / 100 = 0.005 < 0.01
        (1.0, 1.0, 0.0, 0.0, 1e-6, False),  # no improvement at all
        (1.0, 0.5, 1e-4, 0.01, 1e-6, False),  # worse
    ],
)
def test_gate_edge_cases(q_base, q_best, eta_abs, eta_rel, eps, accepted):
    rng = np.random.default_rng(0)
    base = rng.uniform(-1, 1, ACT).astype(np.float32)
    candidates = rng.uniform(-1, 1, (K, ACT)).astype(np.float32)
    q_cand = np.full(K, q_base - 1.0, np.float32)
    q_cand[2] = q_best
    decision = _call(base, candidates, q_base, q_cand, eta_abs, eta_rel, eps)
    assert bool(decision.accepted) == accepted
    assert int(decision.index) == 2
    expected = candidates[2] if accepted else base
    assert np.asarray(decision.action).tobytes() == expected.tobytes()


def test_nan_scores_are_never_accepted():
    base = np.zeros(ACT, np.float32)
    candidates = np.ones((K, ACT), np.float32)
    nan = float("nan")
    decision = _call(base, candidates, 0.0, [nan] * K, 1e-4, 0.01, 1e-6)
    assert not bool(decision.accepted)
    assert np.asarray(decision.action).tobytes() == base.tobytes()
    # One NaN candidate does not block a finite one that passes both thresholds.
    decision = _call(base, candidates, 0.0, [nan, 5.0, 5.0, 5.0, 5.0, 5.0], 1e-4, 0.01, 1e-6)
    assert bool(decision.accepted) and int(decision.index) == 1
    # A NaN baseline score makes every Delta Q NaN: refused.
    decision = _call(base, candidates, nan, [5.0] * K, 1e-4, 0.01, 1e-6)
    assert not bool(decision.accepted)
    assert np.asarray(decision.action).tobytes() == base.tobytes()


def test_gate_under_jit_and_vmap():
    rng = np.random.default_rng(1)
    n = 16
    base = jnp.asarray(rng.uniform(-1, 1, (n, ACT)), jnp.float32)
    candidates = jnp.asarray(rng.uniform(-1, 1, (n, K, ACT)), jnp.float32)
    q_base = jnp.asarray(rng.normal(size=n), jnp.float32)
    q_cand = jnp.asarray(rng.normal(size=(n, K)), jnp.float32)
    batched = jax.jit(jax.vmap(lambda b, c, qb, qc: gate(b, c, qb, qc, 1e-4, 0.01, 1e-6)))
    out = batched(base, candidates, q_base, q_cand)
    assert out.action.shape == (n, ACT) and out.accepted.shape == (n,)
    assert 0 < int(np.sum(out.accepted)) < n  # both branches exercised
    for i in range(n):
        one = gate(base[i], candidates[i], q_base[i], q_cand[i], 1e-4, 0.01, 1e-6)
        assert bool(one.accepted) == bool(out.accepted[i])
        assert np.array_equal(np.asarray(one.action), np.asarray(out.action[i]))
    refused = ~np.asarray(out.accepted)
    np.testing.assert_array_equal(np.asarray(out.action)[refused], np.asarray(base)[refused])


def test_gate_config_defaults_match_the_paper():
    config = GateConfig()
    assert (config.eta_abs, config.eta_rel, config.num_candidates) == (1e-4, 0.01, 10)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(num_candidates=0), "num_candidates"),
        (dict(gate_critics=0), "gate_critics"),
        (dict(eps=0.0), "eps"),
        (dict(lambda_u=-1.0), "lambda_u"),
    ],
)
def test_gate_config_validation(overrides, match):
    with pytest.raises(ValueError, match=match):
        GateConfig(**overrides)
