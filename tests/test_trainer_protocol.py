"""The trainer drives any `Learner` through the registry: a toy algorithm with a known answer,
sweeps in one compile, grid points equal to plain runs, and the generated command line."""

import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from jaxtyping import Array, Float, Int

import spar_eqx
from spar_eqx import Learner, Phase, RunConfig, SPARConfig, TrainingBatch
from spar_eqx._cli import main
from spar_eqx._hyper import Scalar, check_open_unit, hyper, hyperparameters
from spar_eqx._registry import ALGORITHMS, Algorithm
from spar_eqx._run_config import sweep_names
from spar_eqx._train import load_trained
from spar_eqx._train._log import RunLog

from .test_train import TINY

TRACES = {"count": 0}


class ToyConfig(eqx.Module):
    rate: Scalar = hyper(0.1, "--rate", "step size towards the batch's mean action")
    batch_size: int = hyper(32, "--batch-size", "transitions per update", static=True)

    def __check_init__(self):
        check_open_unit(rate=self.rate)


class ToyState(eqx.Module):
    mean: Float[Array, " act_dim"]
    step: Int[Array, ""]


class ToyPolicy(eqx.Module):
    mean: Float[Array, " act_dim"]

    def __call__(self, observations, key):
        return jnp.broadcast_to(
            jnp.clip(self.mean, -1, 1), (observations.shape[0], *self.mean.shape)
        )


class Toy(Learner):
    """`mean <- mean + rate * (batch mean action - mean)`: converges to the data's mean action."""

    config: ToyConfig
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)

    def init(self, key, previous=None):
        return ToyState(jnp.zeros(self.act_dim), jnp.zeros((), jnp.int32))

    def phases(self, steps):
        return (Phase("toy", self.update, steps),)

    def update(self, state: ToyState, batch: TrainingBatch, key):
        TRACES["count"] += 1  # runs once per trace, not per step
        target = jnp.mean(batch.actions, axis=0)
        mean = state.mean + self.config.rate * (target - state.mean)
        return ToyState(mean, state.step + 1), {"gap": jnp.mean(jnp.abs(target - mean))}

    def policies(self, state, normalizer):
        return {"toy": ToyPolicy(state.mean)}


@pytest.fixture
def toy(monkeypatch):
    entry = Algorithm(
        name="toy",
        summary="a test learner",
        config=ToyConfig,
        stages=("train",),
        build=lambda config, obs_dim, act_dim: (Toy(config, obs_dim, act_dim),),
        label=lambda config: "Toy",
    )
    monkeypatch.setitem(ALGORITHMS, "toy", entry)
    TRACES["count"] = 0
    return entry


def _toy_config(dataset, **fields):
    base = dict(
        algo="toy",
        dataset=str(dataset),
        steps=(60,),
        seeds=2,
        eval_episodes=1,
        eval_max_episode_steps=5,
        log_every=20,
        checkpoint_every=20,
    )
    return RunConfig(**(base | fields))


def test_a_new_learner_trains_through_the_registry_with_one_trace(toy, hopper_file, tmp_path):
    config = _toy_config(hopper_file, sweep=(("rate", (0.05, 0.2, 0.5)),))
    results = spar_eqx.train(config, tmp_path / "toy", progress=False)
    # Three grid points x two seeds, three chunks: one trace of the update for all of them.
    assert TRACES["count"] == 1
    assert [p["params"] for p in results["sweep"]] == [{"rate": r} for r in (0.05, 0.2, 0.5)]
    assert results["algo"] == "toy" and results["label"] == "Toy"
    trainer, states = load_trained(tmp_path / "toy")
    means = np.asarray(states.mean).reshape(3, 2, -1)
    data_mean = np.asarray(trainer.data.actions).mean(axis=0)
    # Known answer: after T steps from 0 the estimate is (1 - (1 - rate)^T) of the mean
    # action, up to minibatch noise, which a larger rate feels more.
    for point, rate in enumerate((0.05, 0.2, 0.5)):
        expected = (1 - (1 - rate) ** 60) * data_mean
        np.testing.assert_allclose(means[point], np.stack([expected] * 2), atol=0.1 + rate / 2)
    assert np.abs(means[0]).sum() < np.abs(means[2]).sum()  # a slow rate is still far from it


def test_evaluate_refuses_to_regate_a_run_without_a_gate(toy, hopper_file, tmp_path, capsys):
    spar_eqx.train(_toy_config(hopper_file, seeds=1), tmp_path / "toy", progress=False)
    assert main(["evaluate", str(tmp_path / "toy"), "--gate", "eta_rel=0"]) == 2
    assert "is a toy run, which has none" in capsys.readouterr().err
    assert not (tmp_path / "toy" / "evaluation.json").exists()


def test_grid_points_share_the_plain_run_keys(toy, hopper_file, tmp_path):
    plain = spar_eqx.train(_toy_config(hopper_file), tmp_path / "plain", progress=False)
    swept = _toy_config(hopper_file, sweep=(("rate", (0.3, 0.1)),))
    spar_eqx.train(swept, tmp_path / "swept", progress=False)
    _, plain_states = load_trained(tmp_path / "plain")
    _, swept_states = load_trained(tmp_path / "swept")
    # Grid point 1 (rate 0.1, the default) is the plain run: same batches, same updates.
    np.testing.assert_allclose(swept_states.mean[2:], plain_states.mean, rtol=1e-6)
    assert (
        plain["scores"]["toy"]
        == json.loads((tmp_path / "plain" / "results.json").read_text())["scores"]["toy"]
    )


def test_sweep_refusals_name_what_can_be_swept(hopper_file):
    with pytest.raises(ValueError, match="hidden"):
        RunConfig(algo="spar", sweep=(("hidden", (64.0, 128.0)),))
    with pytest.raises(ValueError, match="swept twice"):
        RunConfig(sweep=(("lambda_g", (0.1,)), ("lambda-g", (0.2,))))
    with pytest.raises(ValueError, match="grid point"):
        RunConfig(sweep=(("temperature", (1.0, -1.0)),))
    assert sweep_names("spar")["lambda_u"] == ("residual.lambda_u", "gate.lambda_u")


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_algorithm_float_is_a_leaf_and_every_field_has_a_flag(name):
    entry = ALGORITHMS[name]
    config = entry.config()
    learners = entry.build(config, 11, 3)
    assert len(learners) == len(entry.stages)
    assert all(isinstance(learner, Learner) for learner in learners)
    for h in hyperparameters(entry.config):
        assert h.flag is None or h.flag.startswith("--"), h
        if h.kind is float and not h.static:
            assert h.path in sweep_names(name)
    # Float hyperparameters are leaves of the learners (what a sweep stacks).
    leaves = jax.tree_util.tree_leaves(learners)
    assert leaves and all(isinstance(x, float | int) or eqx.is_array(x) for x in leaves)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_algorithm_field_names_its_paper_source(name):
    # The API reference's "Source" column reads `hyper(paper=...)`; nested configs included.
    fields = list(hyperparameters(ALGORITHMS[name].config))
    assert fields
    for h in fields:
        assert isinstance(h.paper, str) and h.paper.strip(), h.path
        if h.paper_value is not None:
            assert h.paper_value == h.default, h.path


def test_help_lists_each_algorithms_flags_and_refuses_foreign_ones(capsys, tmp_path):
    for name in ALGORITHMS:
        with pytest.raises(SystemExit) as info:
            main(["train", "--algo", name, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert f"hyperparameters of --algo {name}" in out and "--batch-size" in out
        for other in ALGORITHMS:
            assert other in out  # the epilog lists every algorithm
    with pytest.raises(SystemExit) as info:
        main(["train", "--algo", "bc", "--out", str(tmp_path / "x"), "--lambda-g", "1"])
    assert info.value.code == 2
    assert (
        "--lambda-g is not an option of --algo bc (it belongs to spar)" in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path / "x"), "--steps", "10"])
    assert "--steps is not an option of --algo spar" in capsys.readouterr().err
    assert main(["train", "--algo", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown --algo 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_spar_grid_of_one_point_is_bit_for_bit_the_plain_run(tmp_path, hopper_file):
    def run(out: Path, *extra: str):
        args = ["train", "--dataset", str(hopper_file), "--out", str(out), "--variant", "mlp"]
        assert main([*args, *TINY, *extra]) == 0
        return json.loads((out / "results.json").read_text())

    plain = run(tmp_path / "plain")
    one = run(tmp_path / "one", "--sweep", "lambda_g=0.5")
    (point,) = one["sweep"]
    assert point["params"] == {"lambda_g": 0.5}
    assert point["scores"] == plain["scores"] and point["diagnostics"] == plain["diagnostics"]
    a = (tmp_path / "plain" / "checkpoints" / "stage2.eqx").read_bytes()
    b = (tmp_path / "one" / "checkpoints" / "stage2.eqx").read_bytes()
    assert a == b
    # `evaluate` on a swept run reports every grid point.
    assert main(["evaluate", str(tmp_path / "one")]) == 0
    again = json.loads((tmp_path / "one" / "evaluation.json").read_text())
    assert again["sweep"][0]["scores"] == point["scores"]


def _config(argv):
    from spar_eqx._cli import _algo_of, _build_parser
    from spar_eqx._cli_train import config_from_args

    return config_from_args(_build_parser(_algo_of(argv)).parse_args(argv))


def test_a_budget_sets_defaults_that_explicit_flags_override():
    from spar_eqx._budgets import BUDGETS

    paper = _config(["train", "--out", "r"])
    assert paper == _config(["train", "--out", "r", "--budget", "paper"])
    assert paper.steps == (1_000_000, 1_000_000) and paper.hyperparameters == SPARConfig()
    quick = _config(["train", "--out", "r", "--budget", "quick"])
    q = BUDGETS["quick"]
    assert quick.steps == (q.steps, q.steps) and quick.seeds == q.run["seeds"]
    assert quick.eval_episodes == q.run["eval_episodes"]
    h = quick.hyperparameters
    assert (h.anchor.width, h.residual.width, h.anchor.num_critics) == (128, 128, 5)
    assert h.anchor.learning_rate == h.residual.learning_rate == 1e-3
    argv = ["train", "--out", "r", "--budget", "quick", "--critics", "7", "--seeds", "1",
            "--stage2-steps", "50", "--eval-episodes", "2", "--hidden", "64"]  # fmt: skip
    mine = _config(argv)
    assert mine.steps == (q.steps, 50) and mine.seeds == 1 and mine.eval_episodes == 2
    assert (mine.hyperparameters.anchor.num_critics, mine.hyperparameters.anchor.width) == (7, 64)
    # A baseline takes the budget's steps and shared sizes, never SPAR's own settings.
    iql = _config(["train", "--algo", "iql", "--out", "r", "--budget", "quick"])
    assert iql.steps == (q.steps,) and iql.hyperparameters.width == 128
    assert iql.hyperparameters.num_critics == 2 and iql.hyperparameters.learning_rate == 3e-4


@settings(max_examples=50, deadline=None)
@given(
    flags=hnp.arrays(np.bool_, st.tuples(st.integers(1, 6), st.integers(1, 3))),
    seed=st.integers(0, 2**16),
)
def test_the_log_averages_a_sparse_metric_over_its_flagged_steps(flags, seed):
    # An actor metric measured on the flagged steps only (0 on the others), beside a metric
    # measured on every step: the first is the mean of its measurements, the second of all.
    values = np.random.default_rng(seed).uniform(1, 2, flags.shape).astype(np.float32)
    metrics = {
        "actor_updated": flags.astype(np.float32),
        "actor_loss": np.where(flags, values, 0).astype(np.float32),
        "critic_loss": values,
    }
    log = RunLog()
    runs = [{"seed": s} for s in range(flags.shape[1])]
    log.add_losses("s", "p", 10, runs, metrics, {"actor_loss": "actor_updated"})
    for run, row in enumerate(log.losses):
        np.testing.assert_allclose(row["critic_loss"], values[:, run].mean(), rtol=1e-6)
        np.testing.assert_allclose(row["actor_updated"], flags[:, run].mean(), rtol=1e-6)
        if flags[:, run].any():
            expected = values[flags[:, run], run].mean()
            np.testing.assert_allclose(row["actor_loss"], expected, rtol=1e-6)
        else:  # no actor step in this chunk: no actor row, rather than a made-up 0
            assert "actor_loss" not in row


def _plotted_log(q_losses: list[float]) -> RunLog:
    log = RunLog()
    for step, q in zip((1000, 2000, 3000), q_losses, strict=True):
        log.add_losses("stage1", "anchor", step, [{"seed": 0}, {"seed": 1}],
                       {"q_loss": np.full((4, 2), q, np.float32)})  # fmt: skip
    for policy, scores in (("base", (2.0, 4.0)), ("spar", (30.0, 50.0))):
        for seed, score in enumerate(scores):
            log.add_eval("final", policy, 3000, {"seed": seed}, 10 * score, score)
    return log


def test_the_learning_curve_reads_without_the_run():
    """The scores come first, with the seeds' spread and the anchor's final level marked; a
    loss within two decades keeps a linear axis (a log one would label one tick or none)."""
    import matplotlib.pyplot as plt

    from spar_eqx._train._log import learning_curve_figure

    fig = learning_curve_figure(_plotted_log([1.8, 20.0, 83.0]), "SPAR-MLP on x (2 seeds)")
    try:
        scores, q_loss = fig.axes[:2]
        assert scores.get_title() == "D4RL-normalised score"
        assert "95% bootstrap interval" in scores.get_ylabel()
        levels = [ln for ln in scores.get_lines() if ln.get_linestyle() == "--"]
        assert len(levels) == 1 and levels[0].get_ydata()[0] == 3.0  # the anchor's mean
        legend = {t.get_text() for t in scores.get_legend().get_texts()}
        assert legend == {"base", "spar", "BC anchor (final)"}
        assert q_loss.get_title() == "q_loss" and q_loss.get_yscale() == "linear"
        assert fig.get_suptitle() == "SPAR-MLP on x (2 seeds)"
    finally:
        plt.close(fig)
    fig = learning_curve_figure(_plotted_log([0.01, 1.0, 15.0]))
    try:
        assert fig.axes[1].get_yscale() == "symlog"  # three decades
    finally:
        plt.close(fig)


def test_the_score_curve_has_its_interval_band():
    """Each policy's curve carries the 95% bootstrap interval over seeds of its mean at every
    evaluation, as a band (and error bars), read back from the figure's artists."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    from spar_eqx import mean_interval
    from spar_eqx._train._log import RunLog, learning_curve_figure

    log = RunLog()
    seeds = {1000: (5.0, 9.0, 20.0), 2000: (30.0, 35.0, 60.0), 3000: (40.0, 41.0, 42.0)}
    for step, scores in seeds.items():
        for seed, score in enumerate(scores):
            log.add_eval("stage2", "spar", step, {"seed": seed}, 10 * score, score)
    fig = learning_curve_figure(log)
    try:
        ax = fig.axes[0]
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == 1
        vertices = bands[0].get_paths()[0].vertices
        for step, scores in seeds.items():
            interval = mean_interval(np.asarray(scores))
            ys = vertices[np.isclose(vertices[:, 0], step), 1]
            np.testing.assert_allclose([ys.min(), ys.max()], [interval.low, interval.high])
            assert interval.low < np.mean(scores) < interval.high  # a band, not a line
        (bars,) = ax.containers  # the error bars: the curve of means, and their intervals
        means = [np.mean(s) for s in seeds.values()]
        np.testing.assert_allclose(bars.lines[0].get_ydata(), means)
        (segments,) = bars.lines[2]
        ends = np.array([sorted(seg[:, 1]) for seg in segments.get_segments()])
        expected = [mean_interval(np.asarray(s))[1:3] for s in seeds.values()]
        np.testing.assert_allclose(ends, expected)
    finally:
        plt.close(fig)
