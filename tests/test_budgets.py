"""Named budgets in the Python API (`RunConfig.with_budget`), what `train --help` says of
them, and the time estimate a long run on a CPU gives at its start."""

import argparse

import pytest

import spar_eqx
from spar_eqx import BUDGETS, RunConfig
from spar_eqx._cli import _build_parser, main
from spar_eqx._cli_train import config_from_args
from spar_eqx._registry import ALGORITHMS
from spar_eqx._train import _run
from spar_eqx._train._estimate import FirstChunkEstimate, duration, long_run_message


def _train_parser(algo: str) -> argparse.ArgumentParser:
    action = next(
        a for a in _build_parser(algo)._actions if isinstance(a, argparse._SubParsersAction)
    )
    return action.choices["train"]


@pytest.mark.parametrize("algo", list(ALGORITHMS))
@pytest.mark.parametrize("budget", list(BUDGETS))
def test_with_budget_is_the_command_lines_budget(algo, budget):
    args = _train_parser(algo).parse_args(["--algo", algo, "--out", "x", "--budget", budget])
    assert RunConfig(algo=algo).with_budget(budget) == config_from_args(args)


def test_quick_changes_what_it_says_and_explicit_settings_override_it():
    quick = RunConfig(algo="spar").with_budget("quick")
    assert quick.steps == (20_000, 20_000) and quick.seeds == 5 and quick.eval_every == 5_000
    assert quick.hyperparameters != RunConfig(algo="spar").hyperparameters
    assert quick.with_overrides({"seeds": 1}).seeds == 1
    assert RunConfig(algo="spar").with_budget("paper").steps == (1_000_000, 1_000_000)
    with pytest.raises(ValueError, match="choose one of: paper, quick"):
        RunConfig().with_budget("fast")


def test_train_help_says_what_each_budget_sets(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "paper: 1,000,000 updates per stage" in text
    assert "quick: 20,000 updates per stage, --seeds 5" in text and "--hidden 128" in text


def test_duration_and_message():
    assert duration(30.0) == "30 s" and duration(40 * 60.0) == "40 min"
    assert duration(3 * 3600.0) == "3.0 h" and duration(5 * 86400.0) == "5.0 days"
    # The paper's 2M updates at 20 updates/s on a CPU: 27.8 hours.
    message = long_run_message(2_000_000, 2_000_000, 20.0, "cpu")
    assert "2,000,000 updates take about 27.8 h" in message and "--budget quick" in message
    assert long_run_message(2_000_000, 2_000_000, 20.0, "gpu") is None
    assert long_run_message(20_000, 40_000, 200.0, "cpu") is None  # 100 s: short
    estimate = FirstChunkEstimate(1000, "cpu", threshold=0.0)
    assert estimate.tick(10, 990) is None  # the compiling chunk is not timed
    assert "1,000 updates take about" in estimate.tick(10, 980)
    assert estimate.tick(10, 970) is None  # said once


def test_a_long_run_on_a_cpu_says_how_long_at_its_start(tmp_path, hopper_file, monkeypatch, capsys):
    argv = ["train", "--algo", "bc", "--dataset", str(hopper_file), "--steps", "30",
            "--seeds", "1", "--hidden", "16", "--batch-size", "16", "--eval-episodes", "1",
            "--eval-max-episode-steps", "5", "--log-every", "10", "--checkpoint-every", "10",
            "--quiet"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "short")]) == 0
    assert "take about" not in capsys.readouterr().err  # 30 updates: nothing to say
    monkeypatch.setattr(_run, "LONG_RUN_SECONDS", 0.0)  # as if 30 updates took hours
    assert main([*argv, "--out", str(tmp_path / "long")]) == 0
    err = capsys.readouterr().err
    assert err.count("this run's 30 updates take about") == 1 and "--budget quick" in err
    assert spar_eqx.__version__


def test_a_preset_wins_over_the_budget_and_an_explicit_flag_over_both(monkeypatch):
    """`config_from_args`'s order: defaults, budget, preset, explicit flags. No preset sets a
    field a budget sets today, so the probe is a preset that does (the anchor's width, which
    `--budget quick` sets to 128 through `--hidden`)."""
    import spar_eqx._run_config as run_config

    real = run_config.preset_overrides

    def with_width(name, **kwargs):
        return {**real(name, **kwargs), "anchor.width": 64}

    monkeypatch.setattr(run_config, "preset_overrides", with_width)
    parser = _train_parser("spar")
    argv = ["--out", "x", "--budget", "quick", "--preset", "hopper-medium-replay"]
    assert config_from_args(parser.parse_args(argv)).hyperparameters.anchor.width == 64
    explicit = config_from_args(parser.parse_args([*argv, "--hidden", "32"]))
    assert explicit.hyperparameters.anchor.width == 32
    budget_only = config_from_args(parser.parse_args(["--out", "x", "--budget", "quick"]))
    assert budget_only.hyperparameters.anchor.width == 128
