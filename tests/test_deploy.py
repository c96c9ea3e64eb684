"""`load_policy` and `export_policy` (`spar-eqx export`): one seed's policy out of its run, in a
file that acts bit for bit like the run's policy and is refused, with one line, when damaged
or foreign."""

import json
from pathlib import Path

import equinox as eqx
import jax.random as jr
import numpy as np
import pytest

import spar_eqx
from spar_eqx import (
    BasePolicy,
    DeployedPolicy,
    NoGatePolicy,
    PolicyFileError,
    SPARPolicy,
    export_policy,
    load_policy,
    policy_header,
)
from spar_eqx._cli import main

from .helpers import resign_header

COMMON = [
    "--seeds", "2", "--batch-size", "16", "--hidden", "16", "--eval-episodes", "1",
    "--eval-max-episode-steps", "5", "--log-every", "10", "--checkpoint-every", "10", "--quiet",
]  # fmt: skip
SPAR = [
    "--stage1-steps", "10", "--stage2-steps", "10", "--critics", "3", "--data-critics", "2",
    "--guide-critics", "2", "--gate-critics", "2", "--residual-hidden", "16", "--cvae-layers",
    "1", "--latent-dim", "2", "--candidates", "4", "--gate-candidates", "3",
]  # fmt: skip
RUNS = {
    "proj": ["--variant", "proj", *SPAR],
    "mlp": ["--variant", "mlp", *SPAR],
    "plas": ["--variant", "plas", *SPAR],
    "bc": ["--algo", "bc", "--steps", "10"],
    "iql": ["--algo", "iql", "--steps", "10"],
    "td3bc": ["--algo", "td3bc", "--steps", "10"],
    "rebrac": ["--algo", "rebrac", "--steps", "10"],
}
EXPECTED = {"proj": SPARPolicy, "mlp": SPARPolicy, "plas": SPARPolicy}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, hopper_file):
    """Finished tiny runs, trained on demand (one per name) and kept for the module."""
    root, done = tmp_path_factory.mktemp("runs"), {}

    def get(name: str) -> Path:
        if name not in done:
            out = root / name
            argv = ["train", "--dataset", str(hopper_file), "--out", str(out)]
            assert main([*argv, *COMMON, *RUNS[name]]) == 0
            done[name] = out
        return done[name]

    return get


def _observations(n: int = 6) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 11)).astype(np.float32)


def _same_actions(a, b, key) -> None:
    obs = _observations()
    for o in obs:
        np.testing.assert_array_equal(np.asarray(a.act(o, key)), np.asarray(b.act(o, key)))
    (xa, ka), (xb, kb) = a.act_batch(obs, key), b.act_batch(obs, key)
    np.testing.assert_array_equal(np.asarray(xa), np.asarray(xb))
    np.testing.assert_array_equal(np.asarray(ka), np.asarray(kb))


@pytest.mark.parametrize(
    "name", ["proj", *(pytest.param(n, marks=pytest.mark.slow) for n in RUNS if n != "proj")]
)
def test_exported_policy_acts_bit_for_bit_like_the_runs(runs, tmp_path, name):
    run = runs(name)
    from_run = load_policy(run, seed=1)
    assert isinstance(from_run, EXPECTED.get(name, BasePolicy))
    # One seed: no run axis left on any array.
    assert from_run.normalizer.mean.shape == (11,)
    file = tmp_path / "policy.eqx"
    header = export_policy(run, file, seed=1)
    assert header["seed"] == 1 and header["obs_dim"] == 11 and header["act_dim"] == 3
    assert header["spar_eqx"] == spar_eqx.__version__ and header["env_id"] == "Hopper-v5"
    from_file = load_policy(file)
    assert type(from_file) is type(from_run)
    assert bool(eqx.tree_equal(from_file, from_run))
    _same_actions(from_file, from_run, jr.key(3))
    # And it is the run's own policy: another seed acts otherwise.
    other = load_policy(run, seed=0)
    obs = _observations(1)[0]
    assert not np.array_equal(np.asarray(other.act(obs, jr.key(3))), from_run.act(obs, jr.key(3)))


def test_every_policy_of_a_spar_run_exports(runs, tmp_path):
    run = runs("proj")
    for name, kind in (("spar", SPARPolicy), ("spar_no_gate", NoGatePolicy), ("base", BasePolicy)):
        file = tmp_path / f"{name}.eqx"
        export_policy(run, file, seed=0, policy=name)
        loaded = load_policy(file)
        assert isinstance(loaded, kind) and policy_header(file)["policy"] == name
        _same_actions(loaded, load_policy(run, 0, name), jr.key(1))


def test_a_loaded_policy_compiles_for_a_control_loop(runs, tmp_path):
    file = tmp_path / "policy.eqx"
    export_policy(runs("proj"), file)
    policy = load_policy(file)
    obs, key = _observations(1)[0], jr.key(0)
    deployed = policy.compile(obs)
    assert isinstance(deployed, DeployedPolicy)
    np.testing.assert_array_equal(np.asarray(deployed.act(obs, key)), policy.act(obs, key))
    base = load_policy(runs("bc"))
    assert base.act_batch(_observations(), key)[1].tolist() == [False] * 6  # no residual


def _corrupt(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_damaged_and_foreign_files_are_refused_with_one_line(runs, tmp_path):
    file = tmp_path / "policy.eqx"
    export_policy(runs("proj"), file)
    size = file.stat().st_size
    cases = {}
    flipped = tmp_path / "flipped.eqx"
    flipped.write_bytes(file.read_bytes())
    _corrupt(flipped, size - 10)
    cases[flipped] = "damaged"
    truncated = tmp_path / "truncated.eqx"
    truncated.write_bytes(file.read_bytes()[: size - 100])
    cases[truncated] = "damaged"
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    cases[text] = "not a spar_eqx policy file"
    checkpoint = runs("proj") / "checkpoints" / "stage2.eqx"
    cases[checkpoint] = "a training checkpoint"
    cases[tmp_path / "missing.eqx"] = "no such file"
    # A header that describes another policy than the arrays behind it, signed again (as a
    # buggy writer would): edited without signing, the checksum refuses it as damaged.
    header = json.loads(file.read_bytes().split(b"\n", 1)[0])
    header["config"]["hyperparameters"]["anchor"]["width"] = 32
    foreign = tmp_path / "foreign.eqx"
    foreign.write_bytes(file.read_bytes())
    resign_header(foreign, config=header["config"])
    cases[foreign] = "holds a different policy"
    unsigned = tmp_path / "unsigned.eqx"
    first, payload = file.read_bytes().split(b"\n", 1)
    unsigned.write_bytes(json.dumps(header).encode() + b"\n" + payload)
    cases[unsigned] = "damaged"
    for path, expected in cases.items():
        with pytest.raises(PolicyFileError) as error:
            load_policy(path)
        message = str(error.value)
        assert expected in message and "\n" not in message, message
        assert str(path) in message


def test_export_refuses_before_writing(runs, tmp_path, capsys):
    run = runs("proj")
    keep = tmp_path / "data.txt"
    keep.write_text("not a policy")
    argv = ["export", str(run), "--out"]
    assert main([*argv, str(keep)]) == 2
    assert keep.read_text() == "not a policy"
    assert main([*argv, str(tmp_path / "p.eqx"), "--seed", "7"]) == 2
    assert main([*argv, str(tmp_path / "p.eqx"), "--policy", "nope"]) == 2
    assert main([*argv, str(tmp_path / "no" / "p.eqx")]) == 2
    assert not (tmp_path / "p.eqx").exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("spar-eqx export: error:") == 4
    assert "0 to 1" in err and "base, spar, spar_no_gate" in err
    assert main([*argv, str(tmp_path / "p.eqx"), "--seed", "1"]) == 0
    assert "spar_eqx.load_policy" in capsys.readouterr().out
    assert policy_header(tmp_path / "p.eqx")["seed"] == 1


def test_a_policy_file_takes_no_seed(runs, tmp_path):
    file = tmp_path / "policy.eqx"
    export_policy(runs("proj"), file)
    with pytest.raises(ValueError, match="holds one policy of one seed"):
        load_policy(file, seed=1)


def test_the_control_loop_of_the_docs_runs_as_written(runs, tmp_path, monkeypatch, capsys):
    page = (Path(__file__).resolve().parents[1] / "docs" / "deploy.md").read_text()
    loop = next(b for b in page.split("```python\n")[1:] if "policy.compile" in b)
    code = loop.split("```")[0]
    export_policy(runs("proj"), tmp_path / "policy.eqx")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/deploy.md", "exec"), {})
    assert capsys.readouterr().out.startswith("return ")


@pytest.mark.slow
def test_a_grid_points_policy_exports(tmp_path, hopper_file):
    out = tmp_path / "grid"
    argv = ["train", "--dataset", str(hopper_file), "--out", str(out), *COMMON, *RUNS["mlp"]]
    assert main([*argv, "--sweep", "lambda_g=0.1,0.7"]) == 0
    file = tmp_path / "point1.eqx"
    header = export_policy(out, file, seed=1, point=1)
    assert header["params"] == {"lambda_g": 0.7} and header["point"] == 1
    from_file = load_policy(file)
    _same_actions(from_file, load_policy(out, seed=1, point=1), jr.key(0))
    obs = _observations(1)[0]
    other = load_policy(out, seed=1, point=0).act(obs, jr.key(0))
    assert not np.array_equal(np.asarray(other), np.asarray(from_file.act(obs, jr.key(0))))
    with pytest.raises(ValueError, match="grid point 2 is not one of this run's 2"):
        load_policy(out, point=2)


def test_evaluate_takes_a_policy_file(runs, tmp_path, capsys):
    file = tmp_path / "policy.eqx"
    export_policy(runs("proj"), file, seed=1)
    target = tmp_path / "eval.json"
    argv = ["evaluate", str(file), "--episodes", "2", "--seed", "3", "--json", str(target)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "policy 'spar' (seed 1) on Hopper-v5, 2 episodes" in out and "mean score" in out
    record = json.loads(target.read_text())
    assert len(record["returns"]) == 2 and len(record["scores"]) == 2
    # The same episodes as spar_eqx.evaluate of the run's own policy.
    result = spar_eqx.evaluate(
        load_policy(runs("proj"), seed=1), "Hopper-v5", 2, 3, max_episode_steps=5
    )
    np.testing.assert_array_equal(record["returns"], result.returns)
    damaged = tmp_path / "damaged.eqx"
    damaged.write_bytes(file.read_bytes()[:-7])
    assert main(["evaluate", str(damaged)]) == 2
    assert main(["evaluate", str(file), "--gate", "eta_rel=0"]) == 2
    err = capsys.readouterr().err
    assert "damaged" in err and "--gate re-evaluates a run folder" in err
    assert "Traceback" not in err and err.count("\n") == 2
