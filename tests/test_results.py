"""What `results.json` and the printed summary say about scores: each policy's interval and
the paired differences (`spar_eqx._train._results`, `spar_eqx._cli_train.print_summary`)."""

import numpy as np

import spar_eqx as se
from spar_eqx._cli_train import print_summary
from spar_eqx._registry import ALGORITHMS
from spar_eqx._train._results import Evaluated, interval_record, point_record

SPAR = ALGORITHMS["spar"].pairs  # the paired differences a SPAR run reports

BASE = [[1.0, 3.0, 2.0], [4.0, 6.0, 5.0], [2.0, 2.0, 8.0]]  # 3 seeds x 3 episodes


def _evaluated(rows) -> Evaluated:
    rows = np.asarray(rows)
    return Evaluated(
        returns=10 * rows.mean(axis=1), scores=rows.mean(axis=1), reports={},
        env_steps=np.full(len(rows), 30), episode_returns=10 * rows, episode_scores=rows,
    )  # fmt: skip


def test_the_record_keeps_each_episode_and_the_intervals_over_them():
    spar = np.asarray(BASE) + [[9.0, 11.0, 10.0]]  # the anchor's episodes, about 10 better
    evaluated = {"base": _evaluated(BASE), "spar": _evaluated(spar), "spar_no_gate":
                 _evaluated(spar)}  # fmt: skip
    record = point_record(evaluated, {}, {}, pairs=SPAR)
    assert record["scores"]["base"] == [2.0, 5.0, 4.0]  # the existing keys, as they were
    assert record["episode_scores"]["spar"] == spar.tolist()
    expected = se.mean_interval(spar).record()
    assert record["score_intervals"]["spar"] == expected
    assert expected["low"] < expected["mean"] == spar.mean() < expected["high"]
    gain = record["paired_differences"]["spar - base"]
    assert gain["excludes_zero"] and 9.0 <= gain["low"] < gain["mean"] == 10.0 < gain["high"] <= 11
    same = record["paired_differences"]["spar - spar_no_gate"]
    assert same == {"mean": 0.0, "low": 0.0, "high": 0.0, "excludes_zero": False}
    assert record["interval_method"]["of"] == "scores"
    assert record["interval_method"]["level"] == 0.95


def test_without_reference_returns_the_intervals_are_of_returns():
    evaluated = {"policy": _evaluated(BASE)._replace(scores=None, episode_scores=None)}
    record = point_record(evaluated, {}, {})
    assert "episode_scores" not in record and record["interval_method"]["of"] == "returns"
    assert record["score_intervals"]["policy"]["mean"] == 10 * np.mean(BASE)
    assert record["paired_differences"] == {}  # a baseline: nothing to pair


def test_only_the_pairs_a_run_has_are_reported():
    record = interval_record({"base": BASE, "spar": BASE}, "scores", SPAR)
    assert list(record["paired_differences"]) == ["spar - base"]


def test_each_algorithm_names_its_own_pairs():
    """The trainer names no policy: the pairs are the registry's (FQL: its one-step policy
    against the flow it distils), and a run of an algorithm without pairs reports none."""
    fql = {"fql": (np.asarray(BASE) + 1).tolist(), "fql_flow": BASE}
    record = interval_record(fql, "scores", ALGORITHMS["fql"].pairs)
    assert record["paired_differences"]["fql - fql_flow"]["mean"] == 1.0
    assert interval_record(fql, "scores")["paired_differences"] == {}
    assert ALGORITHMS["bc"].pairs == ()


def test_one_seed_never_resolves_a_difference(capsys):
    # One seed of episodes that all favour SPAR: an interval over its episodes can clear 0,
    # but it says nothing of another seed, so no verdict is given.
    one = [[1.0, 2.0, 3.0]]
    record = interval_record({"base": one, "spar": (np.asarray(one) + 10).tolist()}, "scores", SPAR)
    gain = record["paired_differences"]["spar - base"]
    assert gain["low"] == gain["high"] == 10.0 and not gain["excludes_zero"]
    two = interval_record({"base": one * 2, "spar": (np.asarray(one * 2) + 10).tolist()}, "s", SPAR)
    assert two["paired_differences"]["spar - base"]["excludes_zero"]
    print_summary({"scores": {"base": [2.0], "spar": [12.0]}, **record})
    assert "one seed: not resolved" in capsys.readouterr().out


def test_the_summary_prints_intervals_and_says_what_a_difference_resolves(capsys):
    spar = np.asarray(BASE) + 10
    noisy = np.asarray(BASE) + [[-30.0, 40.0, 0.0], [25.0, -20.0, 5.0], [0.0, 10.0, -15.0]]
    evaluated = {"base": _evaluated(BASE), "spar": _evaluated(spar),
                 "spar_no_gate": _evaluated(noisy)}  # fmt: skip
    print_summary(point_record(evaluated, {}, {}, pairs=SPAR))
    out = capsys.readouterr().out
    base = se.mean_interval(np.asarray(BASE))
    assert f"[{base.low:.1f}, {base.high:.1f}]" in out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "95% interval" in lines["policy"] and "2.0 5.0 4.0" in lines["base"]
    assert "spar - base" in out and "excludes 0: spar scores higher" in out
    no_gate = [line for line in out.splitlines() if "spar - spar_no_gate" in line][0]
    assert "includes 0: not resolved" in no_gate


def test_a_record_without_intervals_still_prints_them(capsys):
    print_summary({"scores": {"base": [1.0, 2.0, 3.0]}, "returns": {"base": [1.0, 2.0, 3.0]}})
    out = capsys.readouterr().out
    interval = se.mean_interval(np.array([1.0, 2.0, 3.0]))
    assert f"{2.0:>9.1f}   [{interval.low:.1f}, {interval.high:.1f}]" in out
