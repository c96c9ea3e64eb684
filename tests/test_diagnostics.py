"""Residual-topology diagnostics and `spar-eqx diagnose`, on data whose answer is known."""

import argparse
import dataclasses
import json
import math

import hypothesis
import hypothesis.strategies as st
import matplotlib.image
import numpy as np
import pytest
from jaxtyping import TypeCheckError

from spar_eqx import UserError
from spar_eqx.diagnostics import (
    TopologyReport,
    plot_residual_projection,
    plot_residual_sizes,
    random_pair_distances,
    recommend_variant,
    residual_topology,
    support_distance_ratio,
)

PNG = b"\x89PNG\r\n\x1a\n"
# Mismatched shapes meet the jaxtyping check first when the tests run with it on (pyproject).
SHAPE_ERRORS = (ValueError, TypeCheckError)


def _gaussian(n: int, d: int, seed: int = 0) -> np.ndarray:
    """One anisotropic Gaussian cluster around 0 (a compact, unimodal residual)."""
    return np.random.default_rng(seed).standard_normal((n, d)) * np.linspace(0.3, 0.1, d)


def _clusters(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """`k` narrow Gaussian clusters at random centres at least 1 apart (a multimodal residual)."""
    rng = np.random.default_rng(seed)
    while True:
        centres = rng.uniform(-1, 1, (k, d))
        gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(k) * 9
        if gaps.min() >= 1.0:
            break
    return centres[rng.integers(0, k, n)] + 0.03 * rng.standard_normal((n, d))


def _actions(residuals: np.ndarray, seed: int = 1) -> np.ndarray:
    """Dataset actions in [-1, 1] (only their diameter enters the report)."""
    return np.random.default_rng(seed).uniform(-1, 1, residuals.shape)


# ---- residual_topology: the recommendation on data with a known answer


@pytest.mark.parametrize("d", [2, 3, 6])
def test_one_gaussian_cluster_is_mlp(d):
    r = _gaussian(3000, d)
    report = residual_topology(r, _actions(r))
    assert report.recommendation == "mlp", report.reason
    assert report.num_clusters == 1 and report.mean_gap < 1 and report.tail_excess < 3
    assert "unimodal" in report.reason


@pytest.mark.parametrize("d, k", [(2, 2), (3, 3), (6, 5)])
def test_separated_narrow_clusters_are_proj(d, k):
    r = _clusters(3000, d, k)
    report = residual_topology(r, _actions(r))
    assert report.recommendation == "proj"
    assert report.num_clusters == k
    assert "HDBSCAN" in report.reason and f"{k} density clusters" in report.reason


def test_a_ring_is_proj_because_its_mean_is_off_support():
    angle = np.random.default_rng(0).uniform(0, 2 * np.pi, 3000)
    r = np.stack([np.cos(angle), np.sin(angle), np.zeros_like(angle)], axis=1)
    r += 0.02 * np.random.default_rng(1).standard_normal(r.shape)
    report = residual_topology(r, _actions(r))
    assert report.recommendation == "proj" and report.mean_gap > 5
    assert "mean residual lies outside" in report.reason


def test_heavy_but_unimodal_tails_stay_mlp():
    r = np.random.default_rng(0).standard_t(3, (3000, 6)) * 0.1
    report = residual_topology(r, np.clip(r, -1, 1))
    assert report.recommendation == "mlp", report.reason
    assert 1 < report.tail_excess < 3


def test_sparse_isolated_residuals_are_proj_because_of_the_tail():
    r = np.random.default_rng(0).standard_cauchy((3000, 4)) * 0.05
    report = residual_topology(r, np.clip(r, -1, 1))
    assert report.recommendation == "proj" and report.tail_excess > 3
    assert "tail is heavy" in report.reason


@hypothesis.settings(max_examples=6, deadline=None)
@hypothesis.given(
    scale=st.floats(1e-3, 1e3),
    case=st.sampled_from(["gaussian", "clusters"]),
    d=st.integers(2, 4),
)
def test_rescaling_the_residuals_changes_no_decision(scale, case, d):
    r = _gaussian(800, d) if case == "gaussian" else _clusters(800, d, 3)
    a = _actions(r)
    base, scaled = residual_topology(r, a), residual_topology(r * scale, a)
    assert scaled.recommendation == base.recommendation == ("mlp" if case == "gaussian" else "proj")
    for name in ("delta_rho", "radius_ratio", "residual_rms"):
        assert math.isclose(getattr(scaled, name), scale * getattr(base, name), rel_tol=1e-5)
    same = ("num_clusters", "min_cluster_size", "sample_size", "participation_ratio")
    for name in same + ("mean_gap", "nn_median", "nn_q99", "tail_excess", "top_eigenvalue_share"):
        assert math.isclose(getattr(scaled, name), getattr(base, name), rel_tol=1e-6), name


def test_the_same_seed_gives_the_same_report_and_others_the_same_answer():
    r = _clusters(6000, 3, 2, seed=3)  # more rows than max_points: the subsample matters
    a = _actions(r)
    first = residual_topology(r, a, seed=7)
    assert residual_topology(r, a, seed=7) == first
    assert first.sample_size == 4000
    for seed in (0, 1):
        assert residual_topology(r, a, seed=seed).recommendation == first.recommendation
    assert recommend_variant(r, a, seed=7) == first


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(
    n=st.integers(10, 200),
    rho=st.sampled_from([0.01, 0.05, 0.1, 0.25, 0.3, 0.5]),
    seed=st.integers(0, 2**16),
)
def test_delta_rho_is_the_hand_computed_quantile(n, rho, seed):
    r = np.random.default_rng(seed).standard_normal((n, 3))
    norms = np.sort(np.linalg.norm(r, axis=1))
    k = math.ceil(round(n * (1 - rho), 9))  # the smallest k with k / n >= 1 - rho
    report = residual_topology(r, _actions(r), rho=rho)
    assert math.isclose(report.delta_rho, norms[k - 1], rel_tol=1e-6)
    assert np.mean(norms <= report.delta_rho * (1 + 1e-6)) >= 1 - rho


def test_to_dict_is_json_ready_and_complete():
    r = _gaussian(500, 3)
    report = residual_topology(r, _actions(r))
    out = report.to_dict()
    assert list(out)[:2] == ["recommendation", "reason"]
    assert set(out) == {f.name for f in dataclasses.fields(TopologyReport)}
    assert all(type(v) in (str, int, float) for v in out.values())
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert report.summary().splitlines()[-1].startswith("recommendation: mlp — ")


def test_mismatched_shapes_are_refused():
    with pytest.raises(SHAPE_ERRORS):
        residual_topology(np.zeros((50, 3)), np.zeros((50, 2)))
    with pytest.raises(SHAPE_ERRORS):
        support_distance_ratio(np.ones((10, 3)), np.eye(10, 2))


@pytest.mark.parametrize(
    "residuals, actions, kwargs, message",
    [
        (np.full((50, 3), np.nan), np.zeros((50, 3)), {}, "finite"),
        (np.ones((5, 3)), np.ones((5, 3)), {}, "at least 10 rows"),
        (np.ones((50, 3)), np.arange(150.0).reshape(50, 3), {}, "distinct"),
        (_gaussian(50, 3), np.ones((50, 3)), {}, "single action"),
        (_gaussian(50, 3), np.eye(50, 3), {"rho": 1.5}, "rho"),
        (_gaussian(50, 3), np.eye(50, 3), {"min_cluster_share": 0.9}, "min_cluster_share"),
    ],
)
def test_bad_input_is_refused(residuals, actions, kwargs, message):
    with pytest.raises(ValueError, match=message):
        residual_topology(residuals, actions, **kwargs)


# ---- support_distance_ratio (Fig. 3)


def test_a_policy_copying_dataset_actions_stays_inside_the_support():
    rng = np.random.default_rng(0)
    data = rng.uniform(-1, 1, (20_000, 3))
    assert support_distance_ratio(data[:3000], data[:3000]) == 0.0  # the very same actions
    copied = data[rng.integers(0, len(data), 3000)]  # mostly outside the dataset subsample
    assert 0.5 <= support_distance_ratio(copied, data, max_points=5000) <= 1.1
    fresh = rng.uniform(-1, 1, (3000, 3))  # new draws from the data's distribution
    assert 0.8 <= support_distance_ratio(fresh, data[:3000]) <= 1.2


def test_a_large_offset_leaves_the_support():
    data = np.random.default_rng(0).uniform(-1, 1, (2000, 3))
    assert support_distance_ratio(data + np.array([3.0, 0, 0]), data) > 10


@hypothesis.settings(max_examples=20, deadline=None)
@hypothesis.given(d=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_the_ratio_grows_with_the_offset(d, seed):
    rng = np.random.default_rng(seed)
    data = rng.uniform(-1, 1, (400, d))
    direction = rng.standard_normal(d)
    direction /= np.linalg.norm(direction)
    ratios = [support_distance_ratio(data + o * direction, data) for o in (0, 0.5, 1, 2, 4, 8)]
    assert ratios[0] == 0 and np.all(np.diff(ratios) > 0), ratios
    scale = 2.5
    scaled = support_distance_ratio(scale * (data + direction), scale * data)
    assert math.isclose(scaled, ratios[2], rel_tol=1e-9)


def test_support_ratio_refuses_what_it_cannot_measure():
    data = np.zeros((100, 2))
    with pytest.raises(ValueError, match="boundary is 0"):
        support_distance_ratio(np.ones((10, 2)), data)
    with pytest.raises(ValueError, match="finite"):
        support_distance_ratio(np.full((10, 2), np.inf), np.eye(10, 2))


# ---- figures


def _assert_png(path):
    assert path.read_bytes()[:8] == PNG
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200


@pytest.mark.parametrize("d", [1, 3])
def test_figures_are_written_as_png(tmp_path, d):
    r = _clusters(600, d, 2) if d > 1 else np.random.default_rng(0).standard_normal((600, 1))
    a = _actions(r)
    sizes = plot_residual_sizes(
        np.linalg.norm(r, axis=1), random_pair_distances(a, num_pairs=2000), tmp_path / "s.png"
    )
    q = np.random.default_rng(0).standard_normal(600)
    projection = plot_residual_projection(r, q, tmp_path / "p.png", title="a test")
    for path in (sizes, projection):
        _assert_png(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "s.png"]  # no temp files
    with pytest.raises(SHAPE_ERRORS):
        plot_residual_projection(r, q[:10], tmp_path / "x.png")


def test_random_pair_distances_pair_distinct_rows():
    a = np.arange(20.0).reshape(10, 2)
    distances = random_pair_distances(a, num_pairs=5000, seed=3)
    assert distances.min() > 0 and np.array_equal(
        distances, random_pair_distances(a, num_pairs=5000, seed=3)
    )


# ---- the command


def _args(*argv: str) -> argparse.Namespace:
    from spar_eqx import _cli_diagnose

    parser = argparse.ArgumentParser(prog="spar-eqx diagnose")
    _cli_diagnose.add_arguments(parser)
    return parser.parse_args(list(argv))


def _diagnose(*argv: str) -> int:
    from spar_eqx import _cli_diagnose

    return _cli_diagnose.run(_args(*argv))


TINY = ["--steps", "50", "--hidden", "16", "--states", "400", "--quiet"]
KEYS = {"recommendation", "reason", "delta_rho", "action_diameter", "radius_ratio",
        "top_eigenvalue_share", "participation_ratio", "nn_median", "nn_q95", "nn_q99",
        "nn_tail_ratio", "num_clusters", "noise_fraction", "largest_cluster_share",
        "mean_gap", "dataset", "anchor", "figures"}  # fmt: skip


@pytest.fixture(scope="module")
def spar_run(tmp_path_factory):
    """A SPAR run folder holding a Stage I checkpoint, as `spar-eqx train` leaves it.

    Its states are Stage I's initial ones (training them is `spar-eqx train`'s business and
    its tests'); what is checked here is that diagnose reads them back exactly.
    """
    import os
    from pathlib import Path

    from spar_eqx import RunConfig
    from spar_eqx._cli_diagnose_anchor import first_run, stage1_states
    from spar_eqx._train import Trainer
    from spar_eqx._train._checkpoint import save_checkpoint

    run = tmp_path_factory.mktemp("runs") / "spar"
    config = RunConfig(algo="spar", steps=(50, 0), seeds=1, log_every=50, checkpoint_every=50)
    config = config.with_overrides({"anchor.width": 16})
    trainer = Trainer(config, Path(os.devnull), progress=False)
    trainer.obs_dim, trainer.act_dim = 11, 3  # the default Hopper dataset's
    trainer.build()
    states = stage1_states(trainer)
    save_checkpoint(run / "checkpoints" / "stage1.eqx", {"phase": 0}, states)
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    return run, first_run(states)


def test_diagnose_fits_an_anchor_and_writes_the_report_and_figures(tmp_path, capsys):
    out = tmp_path / "out" / "report.json"
    assert _diagnose("--dataset", "default", *TINY, "--json", str(out)) == 0
    report = json.loads(out.read_text())
    assert KEYS <= set(report) and report["recommendation"] in ("mlp", "proj")
    assert report["anchor"]["source"] == "fitted" and report["anchor"]["steps"] == 50
    assert report["dataset"] == "hopper/medium-replay-v0" and report["states"] == 400
    for name in ("residual_sizes.png", "residual_projection.png"):
        _assert_png(out.parent / name)
    printed = capsys.readouterr().out
    assert f"recommendation: {report['recommendation']} — {report['reason']}" in printed


def test_diagnose_reads_the_anchor_of_a_spar_run(tmp_path, spar_run):
    from spar_eqx._cli_diagnose_anchor import residuals_and_q
    from spar_eqx.data import ObservationNormalizer, load_dataset
    from spar_eqx.diagnostics._sample import subsample

    run, state = spar_run
    out = tmp_path / "report.json"
    figures = tmp_path / "figures"
    argv = ["--anchor", str(run), "--states", "400", "--json", str(out), "--figures", str(figures)]
    assert _diagnose(*argv) == 0
    report = json.loads(out.read_text())
    assert report["anchor"]["source"] == "run" and report["anchor"]["hidden"] == 16
    assert sorted(p.name for p in figures.iterdir()) == [
        "residual_projection.png",
        "residual_sizes.png",
    ]
    # The same numbers from the checkpoint's states directly: the anchor was read exactly.
    t = load_dataset("default").transitions
    normalizer = ObservationNormalizer.from_transitions(t)
    rows = subsample(t.num_transitions, 400, np.random.SeedSequence([0, 31]))  # as diagnose
    residuals, _ = residuals_and_q(state, normalizer, t.observations[rows], t.actions[rows])
    expected = residual_topology(residuals, np.asarray(t.actions[rows], np.float64))
    assert report["delta_rho"] == pytest.approx(expected.delta_rho, rel=1e-6)
    assert report["recommendation"] == expected.recommendation


def _refused(tmp_path, *argv: str, match: str) -> None:
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(UserError, match=match) as info:
        _diagnose(*argv, "--json", str(tmp_path / "report.json"))
    assert "\n" not in str(info.value)
    assert sorted(tmp_path.rglob("*")) == before  # nothing was written


def test_diagnose_refuses_bad_options_and_folders_and_writes_nothing(tmp_path, spar_run):
    run, _ = spar_run
    (tmp_path / "empty").mkdir()
    bc = tmp_path / "bc"
    bc.mkdir()
    from spar_eqx import RunConfig

    (bc / "config.json").write_text(json.dumps(RunConfig(algo="bc").to_dict()))
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text((run / "config.json").read_text())
    (tmp_path / "file").write_text("x")
    _refused(tmp_path, "--anchor", str(tmp_path / "missing"), match="no such folder")
    _refused(tmp_path, "--anchor", str(tmp_path / "empty"), match="not a run folder")
    _refused(tmp_path, "--anchor", str(bc), match="is a bc run")
    _refused(tmp_path, "--anchor", str(unfinished), match="no Stage I checkpoint")
    _refused(tmp_path, "--anchor", str(run), "--steps", "10", match="drop --steps or --anchor")
    _refused(tmp_path, "--steps", "0", match="--steps must be at least 1")
    _refused(tmp_path, "--states", "5", match="--states must be at least 100")
    _refused(tmp_path, "--figures", str(tmp_path / "file"), match="not a folder")
    with pytest.raises(UserError, match="is a folder"):
        _diagnose("--json", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="no such file"):
        _diagnose("--dataset", str(tmp_path / "missing.hdf5"), *TINY)
