"""`spar-eqx train --config FILE`: a run's own `config.json` or a TOML file of the same
settings, with the options given on the command line overriding it (`RunConfig.from_file`)."""

import json

import pytest

from spar_eqx import IQLConfig, RunConfig, SPARConfig
from spar_eqx._cli import _algo_of, _build_parser, main
from spar_eqx._cli_train import config_from_args
from spar_eqx._errors import UserError


def _config(argv):
    return config_from_args(_build_parser(_algo_of(argv)).parse_args(argv))


@pytest.fixture
def stored(tmp_path):
    """A run's config.json, as `train` writes it (not the defaults anywhere)."""
    config = (
        RunConfig(algo="spar", steps=(300, 200), seeds=2, dataset="some/data", log_every=100)
        .with_budget("quick")
        .with_overrides({"residual.lambda_g": 0.25, "eval_every": 100, "steps": (300, 200)})
        .with_overrides({"sweep": (("lambda_g", (0.1, 0.2)),)})
    )
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True))
    return config, path


def test_a_runs_config_json_trains_the_same_run(stored):
    config, path = stored
    assert RunConfig.from_file(path) == config
    assert _config(["train", "--config", str(path), "--out", "x"]) == config


def test_options_given_override_the_file(stored):
    config, path = stored
    argv = ["train", "--config", str(path), "--out", "x"]
    seeds = _config([*argv, "--seeds", "5"])
    assert seeds.seeds == 5 and seeds.with_overrides({"seeds": config.seeds}) == config
    hyper = _config([*argv, "--lambda-g", "0.5", "--stage2-steps", "40"])
    assert hyper.hyperparameters.residual.lambda_g == 0.5 and hyper.steps == (300, 40)
    assert hyper.hyperparameters.anchor == config.hyperparameters.anchor
    assert _config([*argv, "--dataset", "other"]).dataset == "other"
    assert _config([*argv, "--sweep", "lambda_g=0.3"]).sweep == (("lambda_g", (0.3,)),)
    # A budget named on the command line replaces the file's steps and what it sets.
    assert _config([*argv, "--budget", "paper"]).steps == (1_000_000, 1_000_000)


def test_a_toml_file_holds_only_what_it_changes(tmp_path):
    path = tmp_path / "iql.toml"
    path.write_text(
        'algo = "iql"\nsteps = [3000]\nseeds = 2\n\n[hyperparameters]\nexpectile = 0.8\n'
    )
    config = _config(["train", "--config", str(path), "--out", "x"])  # no --algo: the file's
    assert config == RunConfig(
        algo="iql", steps=(3000,), seeds=2, hyperparameters=IQLConfig(expectile=0.8)
    )
    assert _config(["train", "--config", str(path), "--out", "x", "--temperature", "1.0"])
    short = tmp_path / "short.toml"
    short.write_text("seeds = 1\n")
    assert RunConfig.from_file(short) == RunConfig(seeds=1, hyperparameters=SPARConfig())


def test_a_bad_file_is_refused_with_one_line_and_no_folder(tmp_path, capsys):
    cases = {
        "missing.json": None,
        "broken.json": "{",
        "broken.toml": "algo = ",
        "list.json": "[1, 2]",
        "typo.toml": "seedz = 2\n",
        "badvalue.json": json.dumps({"algo": "iql", "hyperparameters": {"expectile": "high"}}),
        "unknown.toml": 'algo = "nope"\n',
    }
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        out = tmp_path / f"run-{name}"
        assert main(["train", "--config", str(path), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("spar-eqx train: error: --config") and err.count("\n") == 1, err
        assert str(path) in err and not out.exists()
    path = tmp_path / "iql.toml"
    path.write_text('algo = "iql"\n')
    with pytest.raises(UserError, match="trains --algo iql, not bc"):
        _config(["train", "--config", str(path), "--out", "x", "--algo", "bc"])
