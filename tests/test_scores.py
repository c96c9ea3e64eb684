import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from spar_eqx._scores import (
    _D4RL_REFERENCE,
    ReferenceScores,
    env_family,
    normalized_score,
    reference_scores,
)


@pytest.mark.parametrize(
    "env_id, family",
    [
        ("Hopper-v5", "hopper"),
        ("hopper-medium-replay-v2", "hopper"),
        ("mujoco/hopper/medium-v0", "hopper"),
        ("HalfCheetah-v5", "halfcheetah"),
        ("halfcheetah-expert-v2", "halfcheetah"),
        ("Walker2d-v5", "walker2d"),
        ("mujoco/walker2d/simple-v0", "walker2d"),
        ("Ant-v5", "ant"),
        ("ant-medium-v2", "ant"),
        ("antmaze-large-diverse-v2", "antmaze"),
        ("D4RL/antmaze/umaze-v1", "antmaze"),
        ("AntMaze_Large-v4", "antmaze"),
        ("D4RL/pen/cloned-v2", "pen"),
        ("pen-human-v1", "pen"),
        ("AdroitHandPen-v1", "pen"),
        ("D4RL/door/expert-v2", "door"),
        ("AdroitHandHammer-v1", "hammer"),
        ("relocate-cloned-v1", "relocate"),
        # Unknown families, including names that merely contain a family as a substring.
        ("InvertedPendulum-v5", None),
        ("mujoco/inverteddoublependulum/expert-v0", None),
        ("Pendulum-v1", None),
        ("Humanoid-v5", None),
        ("CartPole-v1", None),
        ("", None),
    ],
)
def test_env_family(env_id, family):
    assert env_family(env_id) == family
    if family is None:
        assert reference_scores(env_id) is None
    else:
        assert reference_scores(env_id) == _D4RL_REFERENCE[family]


def test_reference_constants():
    # D4RL's d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE.
    assert reference_scores("Hopper-v5") == ReferenceScores(-20.272305, 3234.3)
    assert reference_scores("halfcheetah-medium-v2") == ReferenceScores(-280.178953, 12135.0)
    assert reference_scores("walker2d-medium-v2") == ReferenceScores(1.629008, 4592.3)
    assert reference_scores("antmaze-umaze-v2") == ReferenceScores(0.0, 1.0)
    assert reference_scores("Ant-v5") == ReferenceScores(-325.6, 3879.7)


@pytest.mark.parametrize("family", sorted(_D4RL_REFERENCE))
def test_min_is_zero_max_is_hundred(family):
    reference = _D4RL_REFERENCE[family]
    scores = normalized_score([reference.min, reference.max], reference)
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, [0.0, 100.0], rtol=0, atol=1e-10)


def test_shape_preserved():
    reference = ReferenceScores(0.0, 2.0)
    returns = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(normalized_score(returns, reference), 50.0 * returns)


@pytest.mark.parametrize("reference", [ReferenceScores(1.0, 1.0), ReferenceScores(2.0, 1.0)])
def test_bad_reference(reference):
    with pytest.raises(ValueError, match="max > min"):
        normalized_score([0.0], reference)


_finite = st.floats(-1e6, 1e6, allow_nan=False)


@st.composite
def _references(draw):
    low = draw(_finite)
    return ReferenceScores(low, low + draw(st.floats(1e-3, 1e6)))


@given(_references(), _finite, _finite, st.floats(0.0, 1.0))
def test_affine(reference, x, y, t):
    mixed = normalized_score(t * x + (1 - t) * y, reference)
    expected = t * normalized_score(x, reference) + (1 - t) * normalized_score(y, reference)
    scale = 100.0 * (abs(x) + abs(y) + abs(reference.min)) / (reference.max - reference.min)
    np.testing.assert_allclose(mixed, expected, rtol=0, atol=1e-9 * (1 + scale))


@given(_references(), _finite, _finite)
def test_monotone(reference, x, y):
    low, high = sorted((x, y))
    assert normalized_score(low, reference) <= normalized_score(high, reference)
