"""Grid points share the stages their learners agree on: a sweep of a later stage trains the
earlier ones once per seed, and nothing but the work changes.

A two-stage toy algorithm (each stage moves a mean towards the batch's mean action at its own
rate) makes each stage's result visible; the reference for "nothing changes" is the same sweep
with sharing switched off, compared bit for bit.
"""

import csv

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import spar_eqx
from spar_eqx import Learner, Phase, TrainingBatch
from spar_eqx._hyper import Scalar, check_open_unit, hyper
from spar_eqx._registry import ALGORITHMS, Algorithm
from spar_eqx._train import _run, load_trained
from spar_eqx._train._checkpoint import load_checkpoint
from spar_eqx._train._sharing import StageRuns, parent_runs, stage_runs

from .test_trainer_protocol import ToyPolicy, ToyState, _toy_config


class TwoRateConfig(eqx.Module):
    rate: Scalar = hyper(0.1, "--rate", "stage one's step size")
    follow: Scalar = hyper(0.5, "--follow", "stage two's step size")
    batch_size: int = hyper(32, "--batch-size", "transitions per update", static=True)

    def __check_init__(self):
        check_open_unit(rate=self.rate, follow=self.follow)


class Towards(Learner):
    """`mean <- mean + rate * (batch mean action - mean)`; stage two starts at stage one's mean."""

    rate: Scalar
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)

    def init(self, key, previous=None):
        start = jnp.zeros(self.act_dim) if previous is None else previous.mean
        return ToyState(start, jnp.zeros((), jnp.int32))

    def phases(self, steps):
        return (Phase("move", self.update, steps),)

    def update(self, state: ToyState, batch: TrainingBatch, key):
        target = jnp.mean(batch.actions, axis=0)
        mean = state.mean + self.rate * (target - state.mean)
        return ToyState(mean, state.step + 1), {"gap": jnp.mean(jnp.abs(target - mean))}

    def policies(self, state, normalizer):
        return {"toy": ToyPolicy(state.mean)}


def _build(config, obs_dim, act_dim):
    return Towards(config.rate, obs_dim, act_dim), Towards(config.follow, obs_dim, act_dim)


@pytest.fixture
def two_rates(monkeypatch):
    entry = Algorithm(
        name="tworates",
        summary="a two-stage test learner",
        config=TwoRateConfig,
        stages=("first", "second"),
        build=_build,
        label=lambda config: "TwoRates",
    )
    monkeypatch.setitem(ALGORITHMS, "tworates", entry)
    return entry


def _config(dataset, **fields):
    return _toy_config(dataset, **({"algo": "tworates", "steps": (40, 20)} | fields))


def _unshared(per_point, stages):
    """Every grid point its own group at every stage: the trainer before sharing."""
    every = tuple(range(len(per_point)))
    return [StageRuns(every, every) for _ in per_point[0]]


def _metrics(out):
    with open(out / "metrics.csv") as f:
        return [row for row in csv.DictReader(f) if row["phase"] != "eval"]


def test_a_sweep_of_stage_two_trains_stage_one_once_per_seed(two_rates, hopper_file, tmp_path):
    swept = _config(hopper_file, sweep=(("follow", (0.2, 0.5, 0.9)),))
    results = spar_eqx.train(swept, tmp_path / "shared", progress=False)
    assert results["trained_runs"] == {"first": 2, "second": 6}
    trainer, final = load_trained(tmp_path / "shared")
    _, first = load_checkpoint(tmp_path / "shared" / "checkpoints" / "stage1.eqx",
                               trainer.skeleton(0))  # fmt: skip
    assert first.mean.shape[0] == 2  # one run per seed, not per grid point
    # Grid point 1 (follow 0.5, the default) is the plain run, bit for bit.
    plain = spar_eqx.train(_config(hopper_file), tmp_path / "plain", progress=False)
    assert plain["trained_runs"] == {"first": 2, "second": 2}
    _, plain_final = load_trained(tmp_path / "plain")
    assert np.asarray(final.mean[2:4]).tobytes() == np.asarray(plain_final.mean).tobytes()
    assert results["sweep"][1]["scores"] == plain["scores"]
    # metrics.csv still has every grid point's stage-one rows: the shared run's, repeated.
    rows = [r for r in _metrics(tmp_path / "shared") if r["stage"] == "first"]
    assert sorted({r["point"] for r in rows}) == ["0", "1", "2"]
    for step in {r["step"] for r in rows}:
        for seed in ("0", "1"):
            gaps = {r["gap"] for r in rows if r["step"] == step and r["seed"] == seed}
            assert len(gaps) == 1


def test_sharing_changes_nothing_but_the_work(two_rates, hopper_file, tmp_path, monkeypatch):
    # A grid over both stages: stage one is trained for each of its two rates, not four times.
    grid = _config(hopper_file, sweep=(("rate", (0.1, 0.3)), ("follow", (0.2, 0.6))))
    shared = spar_eqx.train(grid, tmp_path / "shared", progress=False)
    assert shared["trained_runs"] == {"first": 4, "second": 8}
    monkeypatch.setattr(_run, "stage_runs", _unshared)
    alone = spar_eqx.train(grid, tmp_path / "alone", progress=False)
    assert alone["trained_runs"] == {"first": 8, "second": 8}
    _, a = load_trained(tmp_path / "shared")
    _, b = load_trained(tmp_path / "alone")
    assert np.asarray(a.mean).tobytes() == np.asarray(b.mean).tobytes()
    assert [p["scores"] for p in shared["sweep"]] == [p["scores"] for p in alone["sweep"]]
    assert _metrics(tmp_path / "shared") == _metrics(tmp_path / "alone")


def test_a_shared_stage_resumes_exactly(two_rates, hopper_file, tmp_path, monkeypatch):
    swept = _config(hopper_file, sweep=(("follow", (0.2, 0.9)),))
    spar_eqx.train(swept, tmp_path / "whole", progress=False)

    stops = iter([True])  # stop (with a checkpoint) after the first chunk of stage one

    class StopOnce:
        def __init__(self, *args):  # stop_at_chunk_boundary(last_checkpoint)
            pass

        def __enter__(self):
            return lambda: next(stops, False)

        def __exit__(self, *exc):
            return False

    with monkeypatch.context() as patch:
        patch.setattr(_run, "stop_at_chunk_boundary", StopOnce)
        with pytest.raises(KeyboardInterrupt):
            spar_eqx.train(swept, tmp_path / "cut", progress=False)
    spar_eqx.train(swept, tmp_path / "cut", progress=False, resume=True)
    _, whole = load_trained(tmp_path / "whole")
    _, cut = load_trained(tmp_path / "cut")
    assert np.asarray(whole.mean).tobytes() == np.asarray(cut.mean).tobytes()


class Rates(eqx.Module):
    rate: float


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.1, 0.2]), st.sampled_from([0.1, 0.2]), st.sampled_from([0.1, 0.2])
        ),  # fmt: skip
        min_size=1,
        max_size=6,
    ),
    st.integers(1, 3),
)
def test_groups_hold_exactly_the_points_that_agree_so_far(grid, seeds):
    per_point = [tuple(Rates(r) for r in point) for point in grid]
    layouts = stage_runs(per_point, stages=3)
    assert len(layouts) == 3
    for stage, layout in enumerate(layouts):
        for p, q in [(p, q) for p in range(len(grid)) for q in range(len(grid))]:
            same = layout.group_of[p] == layout.group_of[q]
            agree = grid[p][: stage + 1] == grid[q][: stage + 1]
            # The last stage is never shared; earlier ones exactly where the points agree.
            assert same == (p == q if stage == 2 else agree)
        assert [layout.group_of[p] for p in layout.points] == list(range(len(layout.points)))
        # Every grid point's run of this stage carries its own seed.
        assert np.array_equal(layout.expand(seeds) % seeds, np.arange(len(grid) * seeds) % seeds)
        if stage:
            parents = parent_runs(layouts[stage - 1], layout, seeds)
            expected = layouts[stage - 1].expand(seeds)[
                np.repeat(np.asarray(layout.points), seeds) * seeds + np.tile(np.arange(seeds),
                                                                              len(layout.points))
            ]  # fmt: skip
            assert np.array_equal(parents, expected)


def test_a_stage_that_waits_for_the_first_shares_it_all_the_same():
    # Before `--variant auto` resolves, only stage one is built; it is still not the last.
    per_point = [(Rates(0.1),), (Rates(0.1),)]
    (layout,) = stage_runs(per_point, stages=2)
    assert layout == StageRuns((0,), (0, 0))
