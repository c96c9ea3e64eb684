"""The benchmark scripts stay runnable: every one imports against today's API and builds its
command line, and the statistics they report have the properties their docs claim.

The scripts themselves run for minutes to hours and live outside the timed tests; these checks
catch the cheap breakages (a renamed import, a broken parser, a ratio pooled wrongly) that
would otherwise surface only when someone re-runs a benchmark.
"""

import importlib
import importlib.util
import json
import sys
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if not p.stem.startswith("_"))


@pytest.fixture(scope="module", autouse=True)
def _benchmarks_importable():
    """The scripts import their helpers (`_record`, `_stats`, `peers`) as top-level modules,
    as they do when run from the repository root."""
    sys.path.insert(0, str(BENCHMARKS))
    yield
    sys.path.remove(str(BENCHMARKS))


def _script(name: str):
    return importlib.import_module(name)


def test_the_scripts_are_the_documented_ones():
    documented = {"flow_tables", "gate", "latency", "main_job", "make_default_dataset", "peers",
                  "peers_fql", "peers_scores",
                  "quality", "ratios", "regate", "throughput"}  # fmt: skip
    assert documented <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_imports_and_answers_help(name, capsys):
    module = _script(name)
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:")
    first_line = module.__doc__.splitlines()[0]
    assert "".join(first_line.split()) in "".join(out.split())  # argparse rewraps it


def test_every_throughput_row_builds_its_learners():
    """Each learner row of `throughput.py` names a registered algorithm, valid overrides and
    a stage it has (building learners allocates no network)."""
    from spar_eqx import ALGORITHMS
    from spar_eqx._hyper import replace

    throughput = _script("throughput")
    assert set(throughput.LEARNER_ROWS) <= set(throughput.NAMES)
    for name, (algorithm, overrides, stage) in throughput.LEARNER_ROWS.items():
        algo = ALGORITHMS[algorithm]
        learners = algo.build(replace(algo.config(), overrides), 3, 2)
        assert stage < len(learners), name


@pytest.mark.parametrize("variant", ["mlp_flow_anchor", "proj_flow", "fql"])
def test_latency_builds_the_flow_and_fql_policies(variant):
    """The new `latency.py` variants build their deployed policy as from a checkpoint (shapes
    only, then filled: nothing is compiled), a flow anchor's or generator's in place."""
    from spar_eqx._acting import ActingPolicy
    from spar_eqx._flow import FlowPolicy, ResidualFlow
    from spar_eqx._learners.fql import FQLPolicy

    policy = _script("latency").build_policy(variant, 3, 2)
    assert isinstance(policy, ActingPolicy)
    if variant == "fql":
        assert isinstance(policy, FQLPolicy)
    elif variant == "proj_flow":
        assert isinstance(policy.residual, ResidualFlow)
    else:
        assert isinstance(policy.base, FlowPolicy)


# ------------------------------------------------------------------ _stats.median_interval

ratios_lists = st.lists(
    st.floats(min_value=0.1, max_value=10.0, allow_nan=False), min_size=1, max_size=30
)


@given(ratios_lists)
def test_median_interval_brackets_the_median_and_repeats_itself(ratios):
    median_interval = _script("_stats").median_interval
    median, low, high = median_interval(ratios, resamples=500)
    assert median == pytest.approx(float(np.median(ratios)))
    assert min(ratios) <= low <= median <= high <= max(ratios)
    assert median_interval(ratios, resamples=500) == (median, low, high)


def test_median_interval_of_equal_rounds_is_a_point():
    assert _script("_stats").median_interval([1.25] * 7) == (1.25, 1.25, 1.25)


def test_median_interval_narrows_with_more_rounds():
    median_interval = _script("_stats").median_interval
    spread = np.random.default_rng(1).normal(1.0, 0.1, size=400).tolist()
    _, low_few, high_few = median_interval(spread[:10])
    _, low_many, high_many = median_interval(spread)
    assert high_many - low_many < high_few - low_few


def test_median_interval_refuses_no_rounds():
    with pytest.raises(ValueError, match="at least one ratio"):
        _script("_stats").median_interval([])


# ------------------------------------------------------------------ ratios.py pooling


def _throughput_file(path: Path, rows: list[dict]) -> str:
    path.write_text(json.dumps({"machine": {}, "versions": {}, "command": "", "results": rows}))
    return str(path)


def test_ratios_pool_rounds_across_files_per_name_and_seed_count(tmp_path):
    ratios = _script("ratios")
    a = _throughput_file(tmp_path / "a.json", [
        {"name": "stage1", "seeds": 1, "updates_per_s": 100.0},  # not a ratio row
        {"name": "stage1/reference", "seeds": 1, "ratio": 2.0, "round_ratios": [1.0, 2.0, 3.0]},
        {"name": "stage1/reference", "seeds": 4, "ratio": 0.9, "round_ratios": [0.9]},
    ])  # fmt: skip
    b = _throughput_file(tmp_path / "b.json", [
        {"name": "stage1/reference", "seeds": 1, "ratio": 4.5, "round_ratios": [4.0, 5.0]},
    ])  # fmt: skip
    rows = ratios.pooled([a, b])
    assert [(r["name"], r["seeds"], r["rounds"]) for r in rows] == [
        ("stage1/reference", 1, 5),
        ("stage1/reference", 4, 1),
    ]
    assert rows[0]["median"] == 3.0 and rows[0]["files"] == [2.0, 4.5]
    assert rows[1]["low"] == rows[1]["median"] == rows[1]["high"] == 0.9


def test_ratios_json_records_the_command_it_was_given(tmp_path, capsys):
    ratios = _script("ratios")
    a = _throughput_file(tmp_path / "a.json", [
        {"name": "stage1/reference", "seeds": 8, "ratio": 1.1, "round_ratios": [1.0, 1.1, 1.2]},
    ])  # fmt: skip
    out = tmp_path / "pooled.json"
    assert ratios.main([a, "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert set(record) == {"machine", "versions", "command", "results"}
    assert record["command"] == f"python benchmarks/ratios.py {a} --json {out}"
    assert record["results"][0]["rounds"] == 3
    assert "stage1/reference" in capsys.readouterr().out


def test_ratios_says_so_when_no_file_holds_a_ratio(tmp_path, capsys):
    a = _throughput_file(tmp_path / "a.json", [{"name": "bc", "seeds": 1, "updates_per_s": 9.0}])
    assert _script("ratios").main([a]) == 1
    assert "no Stage I / reference ratios" in capsys.readouterr().err


# ------------------------------------------------------------------ peers without d3rlpy


@pytest.mark.skipif(
    importlib.util.find_spec("d3rlpy") is not None, reason="d3rlpy is installed here"
)
@pytest.mark.parametrize("name", ["peers", "peers_scores"])
def test_peer_scripts_without_d3rlpy_say_how_to_install_it(name, capsys, tmp_path):
    argv = ["--dataset", "unused"] if name == "peers_scores" else []
    out = tmp_path / "never.json"
    assert _script(name).main([*argv, "--json", str(out)]) == 2
    assert "pip install" in capsys.readouterr().err
    assert not out.exists()


# ------------------------------------------------------------------ quality.py tables

_BASE = [[1.0, 3.0], [4.0, 6.0], [2.0, 2.0]]  # 3 seeds x 2 episodes


def _finished(folder: Path, label: str, episodes: dict[str, list[list[float]]], old=False):
    """A run folder as `spar-eqx train` leaves it, without training anything."""
    folder.mkdir(parents=True)
    results = {"label": label, "scores": {k: np.mean(v, axis=1).tolist() for k, v in
                                          episodes.items()}}  # fmt: skip
    if not old:
        results["episode_scores"] = episodes
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "wall_minutes.txt").write_text("1.50\n")


def _spar(gain: float, no_gate: float) -> dict[str, list[list[float]]]:
    base = np.asarray(_BASE)
    return {"base": _BASE, "spar": (base + gain).tolist(), "spar_no_gate": (base + no_gate)
            .tolist()}  # fmt: skip


def test_quality_reports_intervals_and_paired_differences_against_spar(tmp_path, capsys):
    from spar_eqx import mean_interval, paired_difference

    _finished(tmp_path / "runs" / "bc", "BC", {"bc": _BASE})
    _finished(tmp_path / "runs" / "spar-mlp", "SPAR-MLP", _spar(10.0, 10.0))
    flow = (np.asarray(_BASE) + 1).tolist()
    _finished(tmp_path / "runs" / "fql", "FQL", {"fql": _BASE, "fql_flow": flow})
    out = tmp_path / "quality.json"
    argv = ["--dataset", "d", "--out", str(tmp_path / "runs"), "--seeds", "3",
            "--algos", "bc", "spar-mlp", "fql", "--json", str(out)]  # fmt: skip
    assert _script("quality").main(argv) == 0
    text = capsys.readouterr().out
    # A baseline with two policies gets a row for each, by name.
    assert "| FQL: fql | +10.0 [+10.0, +10.0] |" in text
    assert "| FQL: fql_flow | +9.0 [+9.0, +9.0] |" in text
    bc = mean_interval(np.asarray(_BASE))
    assert f"| BC | {bc.estimate:.1f} [{bc.low:.1f}, {bc.high:.1f}] | 2.0, 5.0, 2.0 |" in text
    assert "3 seeds x 2 episodes" in text
    assert "| BC | +10.0 [+10.0, +10.0] | yes: SPAR higher |" in text
    assert "| SPAR-MLP: spar_no_gate | +0.0 [+0.0, +0.0] | no: not resolved |" in text
    results = json.loads(out.read_text())["results"]
    spar = next(r for r in results if r["algo"] == "spar-mlp")
    gain = spar["paired_differences"]["SPAR-MLP: spar - BC"]
    assert gain == {"mean": 10.0, "low": 10.0, "high": 10.0, "excludes_zero": True}
    assert spar["intervals"]["SPAR-MLP: spar"] == mean_interval(np.asarray(_BASE) + 10).record()
    # peers_scores.py reads the same file as before
    assert _script("peers_scores").ours(str(out)) == {"bc": [2.0, 5.0, 2.0], "fql": [2.0, 5.0, 2.0]}
    noisy = paired_difference(np.asarray(_BASE) + [[5.0, -9.0], [0.0, 0.0], [1.0, 1.0]],
                              np.asarray(_BASE))  # fmt: skip
    assert not noisy.excludes_zero  # (what "no: not resolved" rows are made of)


def test_quality_reads_runs_from_before_episode_scores(tmp_path, capsys):
    from spar_eqx import mean_interval

    _finished(tmp_path / "bc", "BC", {"bc": _BASE}, old=True)
    argv = ["--dataset", "d", "--out", str(tmp_path), "--algos", "bc"]
    assert _script("quality").main(argv) == 0
    seeds = mean_interval(np.asarray([2.0, 5.0, 2.0]))
    assert f"| BC | {seeds.estimate:.1f} [{seeds.low:.1f}, {seeds.high:.1f}] |" in (
        capsys.readouterr().out
    )


def test_quality_aggregates_datasets_by_iqm_with_stratified_intervals(tmp_path, capsys):
    from spar_eqx import stratified_interval

    for dataset, shift in (("a/x", 0.0), ("b", 50.0)):
        folder = tmp_path / dataset.replace("/", "_")
        _finished(folder / "bc", "BC", {"bc": (np.asarray(_BASE) + shift).tolist()})
    argv = ["--dataset", "a/x", "b", "--out", str(tmp_path), "--algos", "bc"]
    assert _script("quality").main(argv) == 0
    text = capsys.readouterr().out
    assert "a/x:" in text and "b:" in text and "IQM over 2 datasets" in text
    scores = np.asarray([[2.0, 52.0], [5.0, 55.0], [2.0, 52.0]])
    iqm = stratified_interval(scores)
    assert f"| BC | {iqm.estimate:.1f} [{iqm.low:.1f}, {iqm.high:.1f}] |" in text


# ------------------------------------------------------------------ gate.py cells


def test_gate_reads_each_cells_paired_gate_minus_no_gate(tmp_path, capsys):
    from spar_eqx._registry import ALGORITHMS
    from spar_eqx._train._results import interval_record

    gate = _script("gate")
    episodes = _spar(10.0, 15.0)  # the gate costs exactly 5 on every episode
    for label, steps in (("embedded", 20), ("medium", 20)):
        folder = gate.run_dir(tmp_path, label, steps)
        folder.mkdir(parents=True)
        record = {"scores": {k: np.mean(v, axis=1).tolist() for k, v in episodes.items()},
                  "diagnostics": {"gate_acceptance": [0.5, 0.7, 0.9]},
                  **interval_record(episodes, "scores", ALGORITHMS["spar"].pairs)}  # fmt: skip
        (folder / "results.json").write_text(json.dumps(record))
    out = tmp_path / "gate.json"
    argv = ["--out", str(tmp_path), "--steps", "20", "--dataset", "embedded=default",
            "--dataset", "medium=some/where", "--table", "--json", str(out)]  # fmt: skip
    assert gate.main(argv) == 0
    text = capsys.readouterr().out
    assert text.count("| -5.0 [-5.0, -5.0] | 10.0 [10.0, 10.0] | 0.70 / - |") == 2
    rows = json.loads(out.read_text())["results"]
    assert [r["dataset"] for r in rows] == ["embedded", "medium"]
    assert rows[1]["gate_minus_no_gate"]["excludes_zero"] is True
    assert "--dataset some/where" in rows[1]["command"] and "--stage2-steps 20" in rows[1][
        "command"]  # fmt: skip
    with pytest.raises(SystemExit) as refused:
        gate.main(["--out", str(tmp_path), "--dataset", "nolabel", "--table"])
    assert refused.value.code == 2 and "LABEL=PATH" in capsys.readouterr().err


# ------------------------------------------------------------------ regate.py rows


def _regated(spar_episodes: list[list[float]]) -> dict:
    """What `Trainer.final_record` returns, as far as regate.py reads it."""
    return {
        "scores": {"spar": np.mean(spar_episodes, axis=1).tolist()},
        "episode_scores": {"spar": spar_episodes},
        "diagnostics": {"gate_acceptance": [0.5, 0.7]},
        "episodes": {"spar": {"gate_acceptance": [0.2, 0.4]}},
    }


def test_regate_pairs_each_setting_with_the_first():
    from spar_eqx import mean_interval

    regate = _script("regate")
    own = [[10.0, 12.0], [30.0, 28.0]]
    first = regate.setting_row("", {}, _regated(own), None)
    assert first["minus_first"] is None and first["setting"] == "the run's own"
    assert first["spar_interval"] == mean_interval(np.asarray(own)).record()
    better = regate.setting_row("eta_rel=0", {}, _regated((np.asarray(own) + 5).tolist()),
                                np.asarray(own))  # fmt: skip
    assert better["minus_first"] == {"mean": 5.0, "low": 5.0, "high": 5.0, "excludes_zero": True}
    line = regate.setting_line("eta_rel=0", better)
    assert "+5.0 [+5.0, +5.0] *" in line and "60%" in line and "30%" in line
    mixed = (np.asarray(own) + [[9.0, -9.0], [-9.0, 9.0]]).tolist()
    unresolved = regate.setting_row("x", {}, _regated(mixed), np.asarray(own))
    assert not unresolved["minus_first"]["excludes_zero"]
    assert "*" not in regate.setting_line("x", unresolved)


# ------------------------------------------------------------------ flow_tables.py cells


def test_flow_tables_pair_every_question_by_seed_and_episode(tmp_path, capsys):
    from spar_eqx._registry import ALGORITHMS
    from spar_eqx._train._results import interval_record

    flow_tables = _script("flow_tables")
    # Each run's base and spar policies score a known constant on every episode (2 seeds x 3),
    # so every paired difference is a point and its sign is known.
    constant = {"mlp": (5.0, 30.0), "proj": (5.0, 20.0), "det-proj-flow": (5.0, 12.0),
                "flow-proj": (8.0, 18.0), "flow-proj-flow": (8.0, 8.0),
                "flow-mlp": (8.0, 28.0)}  # fmt: skip
    for run, (base, spar) in constant.items():
        folder = tmp_path / run
        folder.mkdir()
        episodes = {"base": [[base] * 3] * 2, "spar": [[spar] * 3] * 2}
        pairs = ALGORITHMS["spar"].pairs
        record = {"scores": {k: np.mean(v, axis=1).tolist() for k, v in episodes.items()},
                  "episode_scores": episodes,
                  **interval_record(episodes, "scores", pairs)}  # fmt: skip
        (folder / "results.json").write_text(json.dumps(record))
        # The two flow-residual runs had a shorter Stage II than the others.
        steps = [20_000, 2_000] if run.endswith("-flow") else [20_000, 20_000]
        (folder / "config.json").write_text(json.dumps({"steps": steps}))
    out = tmp_path / "flow.json"
    argv = ["--out", str(tmp_path), "--table", "--json", str(out), "--", "--stage2-steps", "2000"]
    assert flow_tables.main(argv) == 0
    text = capsys.readouterr().out
    row = "| 12 | MLP base + flow (`det-proj-flow`: `spar`) | 20,000 + 2,000 | 12.0 [12.0, 12.0] |"
    assert row in text
    assert "| 12 | MLP base (`mlp`: `base`) | 20,000 | 5.0 [5.0, 5.0] |" in text
    # A base against another run's rectified policy: they share Stage I's budget.
    assert "| MLP base + flow - MLP base | +7.0 [+7.0, +7.0] | yes |" in text
    assert "| flow base + flow - flow base | +0.0 [+0.0, +0.0] | no: not resolved |" in text
    # Two rectified policies of different Stage II budgets: measured, never a finding.
    assert ("| MLP base + flow - SPAR-PROJ (CVAE) on the MLP base | -8.0 [-8.0, -8.0] | "
            "not comparable: 20,000 + 2,000 vs 20,000 + 20,000 updates |") in text  # fmt: skip
    record = json.loads(out.read_text())["results"]
    assert set(record["cells"]) == {cell for _, cell, _, _ in flow_tables.CELLS}
    differences = record["paired_differences"]
    assert differences["SPAR-PROJ on a flow base - flow base"]["mean"] == 10.0
    unequal = differences["MLP base + flow - SPAR-PROJ (CVAE) on the MLP base"]
    assert unequal["excludes_zero"] and not unequal["comparable"]
    assert differences["MLP base + flow - MLP base"]["comparable"]
    commands = {r["run"]: r["command"] for r in record["runs"]}
    assert "--generator flow" in commands["det-proj-flow"]
    # Each run is recorded with its own budget, not the one this invocation passed on.
    assert commands["det-proj-flow"].endswith("--stage2-steps 2000")
    assert "--stage2-steps" not in commands["mlp"]


def test_flow_tables_take_each_runs_first_stage_from_a_run_of_its_anchor(tmp_path):
    flow_tables = _script("flow_tables")
    assert flow_tables.ANCHOR["det-proj-flow"] == "deterministic"
    assert flow_tables.ANCHOR["flow-proj-flow"] == "flow"
    for run in ("proj", "flow-mlp", "flow-proj"):
        (tmp_path / run / "checkpoints").mkdir(parents=True)
        (tmp_path / run / "checkpoints" / "stage1.eqx").write_bytes(b"")
    assert flow_tables.first_stage_source("det-proj-flow", tmp_path) == tmp_path / "proj"
    assert flow_tables.first_stage_source("flow-proj", tmp_path) == tmp_path / "flow-proj"
    assert flow_tables.first_stage_source("flow-proj-flow", tmp_path) in {
        tmp_path / "flow-mlp", tmp_path / "flow-proj"}  # fmt: skip
    assert flow_tables.first_stage_source("mlp", tmp_path / "elsewhere") is None
