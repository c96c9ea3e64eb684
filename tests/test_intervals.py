"""Bootstrap intervals (`spar_eqx._intervals`): coverage of a known mean, paired differences,
shrinking with seeds, and the interquartile mean with its stratified bootstrap."""

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import spar_eqx as se

_scores = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 8), st.integers(1, 6)),
    elements=st.floats(-100, 100, allow_nan=False, width=32),
)


def _coverage(draw, truth: float, repeats: int = 300, **kwargs) -> float:
    rng = np.random.default_rng(2026)
    hits = 0
    for i in range(repeats):
        interval = se.mean_interval(draw(rng), resamples=1000, seed=i, **kwargs)
        hits += interval.low <= truth <= interval.high
    return hits / repeats


@pytest.mark.parametrize(
    "name, draw, truth",
    [
        ("normal", lambda rng: rng.normal(3.0, 2.0, 30), 3.0),
        ("skewed", lambda rng: rng.exponential(5.0, 30), 5.0),
        # Seeds differ (sd 2) and so do episodes within a seed (sd 4).
        ("seeds and episodes",
         lambda rng: rng.normal(rng.normal(1.0, 2.0, (30, 1)), 4.0, (30, 5)), 1.0),
    ],
)  # fmt: skip
def test_a_known_mean_is_covered_at_about_the_nominal_rate(name, draw, truth):
    """95% intervals from 30 seeds cover the true mean about 95% of the time (a percentile
    bootstrap runs a little short at small samples: 0.88 is the floor, not 0.95)."""
    rate = _coverage(draw, truth)
    assert 0.88 <= rate <= 0.985, (name, rate)


def test_an_interval_of_the_wrong_width_does_not_cover_at_the_nominal_rate():
    """The coverage check can fail: a 50% interval covers about half the time."""
    rate = _coverage(lambda rng: rng.normal(0.0, 1.0, 30), 0.0, level=0.5)
    assert 0.4 <= rate <= 0.6


def test_hierarchical_resampling_measures_the_episodes_of_one_seed():
    episodes = np.random.default_rng(0).normal(0.0, 1.0, (1, 50))
    assert se.mean_interval(episodes).width > 0.2
    assert se.mean_interval(episodes, hierarchical=False).width == 0.0


@given(_scores)
def test_a_paired_difference_of_identical_runs_is_zero(scores):
    interval = se.paired_difference(scores, scores.copy())
    assert (interval.estimate, interval.low, interval.high) == (0.0, 0.0, 0.0)
    assert not interval.excludes_zero


@given(_scores, st.floats(-50, 50).filter(lambda c: abs(c) > 1e-3))
def test_a_constant_gain_is_resolved_exactly(scores, gain):
    """Pairing cancels whatever the two runs share: a constant difference has width 0."""
    interval = se.paired_difference(scores + gain, scores)
    np.testing.assert_allclose([interval.low, interval.estimate, interval.high], gain, atol=1e-9)
    assert interval.excludes_zero


@given(_scores, st.integers(0, 2**32 - 1), st.booleans())
def test_an_interval_lies_within_the_scores_and_around_the_mean(scores, seed, hierarchical):
    interval = se.mean_interval(scores, resamples=200, seed=seed, hierarchical=hierarchical)
    assert scores.min() - 1e-9 <= interval.low <= interval.estimate
    assert interval.estimate <= interval.high <= scores.max() + 1e-9
    np.testing.assert_allclose(interval.estimate, scores.mean(), rtol=1e-12, atol=1e-9)
    again = se.mean_interval(scores, resamples=200, seed=seed, hierarchical=hierarchical)
    assert again == interval  # deterministic


def test_intervals_shrink_as_seeds_grow():
    """The average width falls as 1/sqrt(seeds): 16 times the seeds, a quarter the width."""
    rng = np.random.default_rng(7)
    widths = {
        n: np.mean([se.mean_interval(rng.normal(0, 1, (n, 3)), resamples=500).width
                    for _ in range(30)])
        for n in (5, 20, 80)
    }  # fmt: skip
    assert widths[5] > widths[20] > widths[80]
    assert 0.15 <= widths[80] / widths[5] <= 0.35, widths


def test_a_paired_difference_is_sharper_than_the_difference_of_intervals():
    """Seeds that are hard for both policies cancel in the paired difference."""
    rng = np.random.default_rng(3)
    shared = rng.normal(0, 10, (6, 4))  # what a seed and an episode make easy or hard
    a, b = shared + 2 + rng.normal(0, 1, (6, 4)), shared + rng.normal(0, 1, (6, 4))
    paired = se.paired_difference(a, b)
    assert paired.excludes_zero and paired.low > 0
    assert paired.width < se.mean_interval(a).width / 3


def test_iqm_of_known_scores():
    assert se.iqm(np.arange(1.0, 9.0)) == 4.5  # the middle four of 1..8
    assert se.iqm(np.array([[0.0, 1.0], [2.0, 3.0], [1000.0, -1000.0]])) == 1.5  # outliers dropped
    assert se.iqm(np.array([7.0, 1.0, 4.0])) == 4.0  # three values: none dropped, the mean


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 10), st.integers(1, 5)),
                  elements=st.floats(-1e3, 1e3, allow_nan=False)))  # fmt: skip
def test_iqm_is_scipys_trimmed_mean(scores):
    stats = pytest.importorskip("scipy.stats")
    expected = stats.trim_mean(scores, 0.25, axis=None)
    np.testing.assert_allclose(se.iqm(scores), expected, rtol=1e-9, atol=1e-9)


def test_the_bootstrap_is_stratified_by_task():
    """Runs are resampled within each task: with each task's runs alike, every resample is
    the same table, so the interval has width 0 (drawing runs across tasks would not)."""
    scores = np.tile([0.0, 10.0, 50.0, 100.0], (5, 1))  # 5 runs x 4 tasks
    assert se.stratified_interval(scores).width == 0.0
    assert se.stratified_interval(scores, np.mean).width == 0.0
    mixed = se.mean_interval(scores.reshape(-1), resamples=1000)
    assert mixed.width > 10


def test_the_vectorised_iqm_bootstrap_is_the_statistic_resampled():
    scores = np.random.default_rng(1).normal(50, 20, (5, 3))
    fast = se.stratified_interval(scores, resamples=300, seed=4)
    slow = se.stratified_interval(scores, se.iqm, resamples=300, seed=4)
    np.testing.assert_allclose(fast, slow, rtol=1e-12)
    assert fast.low < se.iqm(scores) < fast.high


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: se.mean_interval(np.ones(3), level=95.0), "level"),
        (lambda: se.mean_interval(np.array([1.0, np.nan])), "finite"),
        (lambda: se.mean_interval(np.ones((0,))), "non-empty"),
        (lambda: se.mean_interval(np.ones(3), resamples=0), "resamples"),
    ],
)
def test_bad_input_is_refused(call, match):
    """(Unpaired shapes are refused too: by the jaxtyping check in tests, by a `ValueError`
    that says why otherwise; `test_unpaired_runs_are_refused`.)"""
    with pytest.raises(ValueError, match=match):
        call()


def test_unpaired_runs_are_refused():
    from spar_eqx import _intervals

    # The undecorated function: its own check, not the test-time jaxtyping one.
    unchecked = getattr(_intervals.paired_difference, "__wrapped__", None)
    with pytest.raises((ValueError, TypeError), match="same seeds|seeds"):
        se.paired_difference(np.ones((3, 2)), np.ones((3, 1)))
    if unchecked is not None:
        with pytest.raises(ValueError, match="same seeds"):
            unchecked(np.ones((3, 2)), np.ones((3, 1)))
