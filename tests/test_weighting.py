"""The unified weighting (Section 3.2.2): normalised advantage, exp/uniform x hard/soft."""

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jaxtyping
import numpy as np
import pytest
from hypothesis import given

from spar_eqx import advantage_weights, candidate_weights, normalized_advantage

SENSITIVITIES = ["exp", "uniform"]
FILTERINGS = ["hard", "soft"]

# Advantages as A~ = Delta Q / sigma can be large (sigma is guarded at 1e-6), so go wide.
# Shapes are fixed (each new shape recompiles every op); the values carry the variety, with
# whole rows of non-positive advantages common enough to exercise hard filtering.
_adv = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-6, -1e-6]),
    st.floats(-1e6, 1e6, width=32, allow_subnormal=False),
)
vectors = hnp.arrays(np.float32, 8, elements=_adv)
matrices = hnp.arrays(np.float32, (4, 5), elements=_adv)
temperatures = st.sampled_from([0.05, 0.3, 1.0, 3.0, 10.0])
max_weights = st.sampled_from([1.0, 20.0, 100.0, 1e4])
modes = st.tuples(st.sampled_from(SENSITIVITIES), st.sampled_from(FILTERINGS))


@given(
    q=hnp.arrays(np.float32, 5, elements=st.floats(-100, 100, width=32, allow_subnormal=False)),
    q_base=hnp.arrays(
        np.float32, 5, elements=st.floats(-100, 100, width=32, allow_subnormal=False)
    ),
    sigma=hnp.arrays(np.float32, 5, elements=st.floats(0.0, 10.0, width=32, allow_subnormal=False)),
)
def test_normalized_advantage_formula_and_sigma_guard(q, q_base, sigma):
    adv = normalized_advantage(jnp.asarray(q), jnp.asarray(q_base), jnp.asarray(sigma))
    assert adv.shape == (5,) and adv.dtype == jnp.float32
    assert np.all(np.isfinite(adv))  # sigma = 0 is guarded by eps
    expected = (q.astype(np.float64) - q_base) / np.maximum(sigma.astype(np.float64), 1e-6)
    np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-5)
    assert np.all(np.sign(adv) == np.sign(q - q_base))


def test_normalized_advantage_with_collapsed_ensemble():
    adv = normalized_advantage(jnp.array([1.0, 0.0, -1.0]), jnp.zeros(3), jnp.zeros(3))
    np.testing.assert_array_equal(adv, np.array([1e6, 0.0, -1e6], np.float32))
    w = advantage_weights(adv, 1.0, "exp", "hard", 100.0)
    np.testing.assert_array_equal(w, [100.0, 0.0, 0.0])


@given(adv=vectors, temperature=temperatures, max_weight=max_weights, mode=modes)
def test_advantage_weights_properties(adv, temperature, max_weight, mode):
    sensitivity, filtering = mode
    w = advantage_weights(jnp.asarray(adv), temperature, sensitivity, filtering, max_weight)
    w = np.asarray(w)
    assert w.shape == adv.shape and w.dtype == np.float32
    assert np.all(np.isfinite(w)) and np.all(w >= 0)
    if sensitivity == "exp":
        assert np.all(w <= max_weight)
    if filtering == "hard":
        assert np.all(w[adv <= 0] == 0)
        assert np.all(w[adv > 0] >= 1.0)  # exp(A/T) >= 1 when A > 0
    if sensitivity == "uniform":
        np.testing.assert_array_equal(w[adv > 0], 1.0)
        if filtering == "soft":
            np.testing.assert_array_equal(w, 1.0)
    else:
        # min(exp(A / T), max_weight), computed in float64 without overflow.
        expected = np.exp(np.minimum(adv.astype(np.float64) / temperature, np.log(max_weight)))
        expected = np.minimum(expected, max_weight)
        if filtering == "hard":
            expected = np.where(adv > 0, expected, 0.0)
        np.testing.assert_allclose(w, expected, rtol=1e-5, atol=1e-30)


@given(adv=vectors, temperature=temperatures, max_weight=max_weights)
def test_exp_weights_are_monotone_in_the_advantage(adv, temperature, max_weight):
    order = np.argsort(adv, kind="stable")
    for filtering in FILTERINGS:
        w = np.asarray(
            advantage_weights(jnp.asarray(adv), temperature, "exp", filtering, max_weight)
        )
        assert np.all(np.diff(w[order]) >= 0)


@given(adv=matrices, temperature=temperatures, mode=modes)
def test_candidate_weights_rows_sum_to_one_or_are_all_zero(adv, temperature, mode):
    sensitivity, filtering = mode
    omega = np.asarray(candidate_weights(jnp.asarray(adv), temperature, sensitivity, filtering))
    assert omega.shape == adv.shape and omega.dtype == np.float32
    assert np.all(np.isfinite(omega)) and np.all(omega >= 0)
    sums = omega.sum(axis=-1)
    for row, total, a in zip(omega, sums, adv, strict=True):
        if filtering == "hard" and np.all(a <= 0):
            np.testing.assert_array_equal(row, 0.0)  # no target, no update
        else:
            assert total == pytest.approx(1.0, abs=1e-5)
        if filtering == "hard":
            np.testing.assert_array_equal(row[a <= 0], 0.0)
        if sensitivity == "uniform" and np.any(a > 0 if filtering == "hard" else True):
            kept = a > 0 if filtering == "hard" else np.ones_like(a, bool)
            np.testing.assert_allclose(row[kept], 1.0 / kept.sum(), rtol=1e-6)


@given(
    adv=hnp.arrays(
        np.float32, (4, 5), elements=st.floats(-50, 50, width=32, allow_subnormal=False)
    ),
    shift=st.floats(-1e3, 1e3),
    temperature=temperatures,
)
def test_exp_soft_candidate_weights_are_a_shift_invariant_softmax(adv, shift, temperature):
    omega = candidate_weights(jnp.asarray(adv), temperature, "exp", "soft")
    shifted = candidate_weights(jnp.asarray(adv + np.float32(shift)), temperature, "exp", "soft")
    np.testing.assert_allclose(omega, shifted, rtol=2e-3, atol=1e-5)
    logits = adv.astype(np.float64) / temperature
    softmax = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(omega, softmax / softmax.sum(-1, keepdims=True), atol=1e-5)


def test_candidate_weights_with_huge_advantages_do_not_overflow():
    adv = jnp.array([[1e30, 1e30, -1e30], [-1.0, -2.0, 0.0]])
    for sensitivity in SENSITIVITIES:
        omega = np.asarray(candidate_weights(adv, 1e-3, sensitivity, "hard"))
        np.testing.assert_allclose(omega, [[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])


def test_candidate_weights_vmap_and_jit_agree():
    adv = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3, 5)), jnp.float32)
    direct = candidate_weights(adv, 0.7, "exp", "hard")
    fn = jax.jit(jax.vmap(lambda a: candidate_weights(a, 0.7, "exp", "hard")))
    np.testing.assert_allclose(direct, fn(adv), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sensitivity="linear"), "sensitivity"),
        (dict(filtering="medium"), "filtering"),
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
    ],
)
def test_bad_modes_are_refused(kwargs, match):
    # A bad mode string is a ValueError from the function itself, or, under the runtime
    # type checking these tests run with, a TypeCheckError from its Literal annotation first.
    # A non-positive temperature passes the type check and must be refused by value.
    errors = ValueError if "temperature" in kwargs else (ValueError, jaxtyping.TypeCheckError)
    args = dict(temperature=1.0, sensitivity="exp", filtering="hard") | kwargs
    adv = jnp.zeros((2, 3))
    with pytest.raises(errors, match=match):
        advantage_weights(adv, args["temperature"], args["sensitivity"], args["filtering"])
    with pytest.raises(errors, match=match):
        candidate_weights(adv, args["temperature"], args["sensitivity"], args["filtering"])


@pytest.mark.parametrize("max_weight", [0.0, -5.0])
def test_non_positive_max_weight_is_refused(max_weight):
    with pytest.raises(ValueError, match="max_weight"):
        advantage_weights(jnp.ones(3), 1.0, "exp", "hard", max_weight)
