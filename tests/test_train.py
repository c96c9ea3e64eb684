"""End-to-end tests of the trainer and the `spar-eqx` command on a tiny real Hopper dataset."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from spar_eqx import load_trained
from spar_eqx._cli import main

from .helpers import (
    killed_at_replace,
    resign_header,
    tree_equal_bits,
    without_compile_cache,
    write_hopper_hdf5,
)

TINY = [
    "--stage1-steps", "40", "--stage2-steps", "40", "--seeds", "2", "--batch-size", "16",
    "--critics", "3", "--data-critics", "2", "--guide-critics", "2", "--gate-critics", "2",
    "--hidden", "16", "--residual-hidden", "16", "--cvae-layers", "1", "--latent-dim", "2",
    "--candidates", "4", "--gate-candidates", "3", "--eval-episodes", "1",
    "--eval-max-episode-steps", "15", "--log-every", "10", "--checkpoint-every", "10", "--quiet",
]  # fmt: skip


def _train(out: Path, dataset: Path, *extra: str) -> int:
    return main(["train", "--dataset", str(dataset), "--out", str(out), *TINY, *extra])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, hopper_file):
    out = tmp_path_factory.mktemp("runs") / "proj"
    assert _train(out, hopper_file, "--variant", "proj") == 0
    return out


def test_train_writes_results_metrics_plot_and_checkpoints(finished_run):
    results = json.loads((finished_run / "results.json").read_text())
    assert results["env_id"] == "Hopper-v5" and results["variant"] == "proj"
    assert results["seeds"] == [0, 1]
    assert results["algo"] == "spar" and results["label"] == "SPAR-PROJ"
    assert results["steps"] == {"stage1": 40, "stage2": 40}
    for key in ("scores", "returns"):
        assert set(results[key]) == {"base", "spar", "spar_no_gate"}
        for values in results[key].values():
            assert len(values) == 2 and np.all(np.isfinite(values))
    acceptance = results["diagnostics"]["gate_acceptance"]
    assert len(acceptance) == 2 and all(0.0 <= a <= 1.0 for a in acceptance)
    # Where the gated policy itself went: only it reports, once per seed.
    assert set(results["episodes"]) == {"spar"}
    along = results["episodes"]["spar"]["gate_acceptance"]
    assert len(along) == 2 and all(0.0 <= a <= 1.0 for a in along)
    timing = results["evaluation"]
    assert timing["env_steps"] >= 3 * 2 and timing["env_steps_per_s"] > 0
    # Fig. 3's support-distance ratio of every evaluated policy, per seed.
    support = results["support_distance_ratio"]
    assert set(support) == {"base", "spar", "spar_no_gate"}
    assert all(len(v) == 2 and all(0.0 < x < np.inf for x in v) for v in support.values())
    assert results["config"]["hyperparameters"]["residual"]["num_candidates"] == 4
    assert results["wall_clock_seconds"] > 0
    header = (finished_run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"stage", "phase", "step", "seed", "bc_loss", "q_loss", "recon_loss", "score"} <= set(
        header
    )
    assert (finished_run / "learning_curve.png").stat().st_size > 1000
    for name in ("stage1.eqx", "stage2.eqx", "latest.eqx"):
        assert (finished_run / "checkpoints" / name).exists()


def test_results_carry_intervals_and_paired_differences(finished_run):
    """Each seed's episodes, each policy's interval over them, and SPAR's paired differences
    against its anchor and against itself without the gate; the existing keys unchanged."""
    results = json.loads((finished_run / "results.json").read_text())
    for name, rows in results["episode_scores"].items():
        assert len(rows) == 2 and all(len(row) == 1 for row in rows)  # 2 seeds x 1 episode
        np.testing.assert_allclose(np.mean(rows, axis=1), results["scores"][name], rtol=1e-12)
        interval = results["score_intervals"][name]
        np.testing.assert_allclose(interval["mean"], np.mean(results["scores"][name]))
        assert interval["low"] <= interval["mean"] <= interval["high"]
    differences = results["paired_differences"]
    assert set(differences) == {"spar - base", "spar - spar_no_gate"}
    for d in differences.values():
        assert d["low"] <= d["mean"] <= d["high"]
        assert d["excludes_zero"] == (d["low"] > 0 or d["high"] < 0)
    assert results["interval_method"]["of"] == "scores"


def test_scores_are_normalised_returns(finished_run):
    results = json.loads((finished_run / "results.json").read_text())
    low, high = -20.272305, 3234.3  # D4RL hopper
    for name in ("base", "spar", "spar_no_gate"):
        expected = 100 * (np.asarray(results["returns"][name]) - low) / (high - low)
        np.testing.assert_allclose(results["scores"][name], expected, rtol=1e-9)


def test_evaluate_command_reproduces_final_scores(finished_run, capsys):
    assert main(["evaluate", str(finished_run), "--episodes", "1"]) == 0
    again = json.loads((finished_run / "evaluation.json").read_text())
    results = json.loads((finished_run / "results.json").read_text())
    assert again["returns"] == results["returns"]  # same seed, same policy: same episodes
    assert "gate acceptance" in capsys.readouterr().out


def test_evaluate_regates_a_run_without_retraining(finished_run, tmp_path, capsys):
    before = (finished_run / "evaluation.json").read_bytes()
    results = json.loads((finished_run / "results.json").read_text())
    # Thresholds nothing passes: the gate always falls back, so SPAR plays the anchor's
    # actions bit for bit, and its episodes are the anchor's.
    strict = tmp_path / "strict.json"
    argv = ["evaluate", str(finished_run), "--episodes", "1", "--json", str(strict)]
    assert main([*argv, "--gate", "eta_abs=1e9"]) == 0
    record = json.loads(strict.read_text())
    assert record["gate_overrides"] == {"eta_abs": 1e9} and record["gate"]["eta_abs"] == 1e9
    assert record["episodes"]["spar"]["gate_acceptance"] == [0.0, 0.0]
    assert record["returns"]["spar"] == record["returns"]["base"]
    assert record["returns"]["base"] == results["returns"]["base"]  # the anchor is untouched
    assert "re-gated without retraining: eta_abs=1e+09" in capsys.readouterr().out
    # Thresholds everything passes, and more candidates: the residual is used at every step.
    loose = tmp_path / "loose.json"
    argv[-1] = str(loose)
    gates = ["--gate", "eta_abs=-1e9", "--gate", "eta-rel=-1e9", "--gate", "num_candidates=6"]
    assert main([*argv, *gates]) == 0
    record = json.loads(loose.read_text())
    assert record["episodes"]["spar"]["gate_acceptance"] == [1.0, 1.0]
    assert record["gate"]["num_candidates"] == 6
    # Neither wrote the run's own evaluation.json.
    assert (finished_run / "evaluation.json").read_bytes() == before


@pytest.mark.parametrize(
    "gate, message",
    [
        ("eta_rel", "expected NAME=VALUE"),
        ("gate_critics=2", "expected NAME=VALUE with NAME one of eta_abs"),
        ("eta_rel=high", "eta_rel must be a number"),
        ("num_candidates=2.5", "must be a whole number"),
        ("num_candidates=0", "num_candidates"),
        ("eps=0", "eps"),
    ],
)
def test_evaluate_refuses_a_bad_gate_setting(finished_run, tmp_path, capsys, gate, message):
    out = tmp_path / "never.json"
    argv = ["evaluate", str(finished_run), "--gate", gate, "--json", str(out)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("variant", ["mlp", "plas"])
def test_other_variants_run_end_to_end(tmp_path, hopper_file, variant):
    assert _train(tmp_path / variant, hopper_file, "--variant", variant) == 0
    results = json.loads((tmp_path / variant / "results.json").read_text())
    assert results["variant"] == variant
    assert np.all(np.isfinite(results["scores"]["spar"]))


def _signal_after_first_checkpoint(out: Path, dataset: Path, signum: int, *extra: str):
    """Start a SPAR-PROJ training process (with `extra` flags), send `signum` once its first
    checkpoint exists.

    **Returns:** `(returncode, stderr)` of the process.
    """
    cmd = [sys.executable, "-m", "spar_eqx._cli", "train", "--dataset", str(dataset),
           "--out", str(out), "--variant", "proj", *TINY, *extra]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=without_compile_cache()
    )
    latest = out / "checkpoints" / "latest.eqx"
    deadline = time.monotonic() + 240
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=240)
    return proc.returncode, err.decode()


def test_same_seed_same_results_and_resume_after_sigkill(tmp_path, hopper_file, finished_run):
    """Kill a run mid-way with SIGKILL, resume it, and get the uninterrupted run's bits."""
    out = tmp_path / "killed"
    code, err = _signal_after_first_checkpoint(out, hopper_file, signal.SIGKILL)
    assert code == -signal.SIGKILL, err
    latest = out / "checkpoints" / "latest.eqx"
    assert latest.exists() and not (out / "results.json").exists()

    assert _train(out, hopper_file, "--variant", "proj") == 2  # non-empty folder, no --resume
    assert _train(out, hopper_file, "--variant", "proj", "--resume") == 0
    resumed = (out / "checkpoints" / "stage2.eqx").read_bytes()
    reference = (finished_run / "checkpoints" / "stage2.eqx").read_bytes()
    assert resumed == reference
    a = json.loads((out / "results.json").read_text())
    b = json.loads((finished_run / "results.json").read_text())
    assert a["scores"] == b["scores"] and a["diagnostics"] == b["diagnostics"]


def test_seeds_shard_over_two_host_devices(tmp_path, hopper_file):
    out = tmp_path / "sharded"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    cmd = [sys.executable, "-m", "spar_eqx._cli", "train", "--dataset", str(hopper_file),
           "--out", str(out), "--variant", "mlp", *TINY]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert len(results["devices"]) == 2
    assert results["seed_sharding"] == 2
    assert np.all(np.isfinite(results["scores"]["spar"]))


def test_bad_input_is_refused_with_a_message(tmp_path, hopper_file, capsys):
    assert _train(tmp_path / "a", hopper_file, "--env", "HalfCheetah-v5") == 2
    assert "HalfCheetah-v5" in capsys.readouterr().err
    assert _train(tmp_path / "b", tmp_path / "missing.hdf5") == 2
    assert "missing.hdf5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        _train(tmp_path / "c", hopper_file, "--preset", "no-such-task")
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        _train(tmp_path / "c", hopper_file, "--variant", "transformer")
    assert "invalid choice" in capsys.readouterr().err
    assert _train(tmp_path / "d", hopper_file, "--temperature", "-1") == 2
    assert "temperature" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert _train(tmp_path / "file", hopper_file) == 2
    assert "not a folder" in capsys.readouterr().err


def test_a_run_too_big_for_memory_is_refused_before_its_folder_exists(
    tmp_path, hopper_file, capsys, monkeypatch
):
    """Twice the training state plus the data is a floor of a run's peak memory; a run above
    what the devices have is refused with the sizes, not started to die out of memory."""
    import spar_eqx._train._run as run_module
    from spar_eqx._train._memory import tree_bytes

    seen = {}

    def tiny_machine(devices):
        seen["asked"] = True
        return 200_000  # bytes: less than this tiny run's two states and data

    monkeypatch.setattr(run_module, "available_bytes", tiny_machine)
    out = tmp_path / "big"
    assert _train(out, hopper_file, "--variant", "mlp") == 2
    err = capsys.readouterr().err
    assert seen and "--seeds 2 needs at least" in err and "0.0 GB available" in err
    assert "fewer seeds" in err and "Traceback" not in err
    assert not out.exists()
    # Enough memory: the same run starts (checked here on the estimate alone).
    monkeypatch.setattr(run_module, "available_bytes", lambda devices: 10**12)
    from spar_eqx._cli import _build_parser
    from spar_eqx._cli_train import config_from_args
    from spar_eqx._train._run import Trainer

    args = _build_parser().parse_args(
        ["train", "--dataset", str(hopper_file), "--out", str(out), *TINY, "--variant", "mlp"]
    )
    trainer = Trainer(config_from_args(args), out, progress=False)
    trainer.prepare_data()
    trainer.build()
    trainer.check_memory()
    states = trainer.init_stage(0)
    assert tree_bytes(states) == tree_bytes(trainer.skeleton(0)) > 0


def test_tree_bytes_counts_arrays_and_their_shapes_alike():
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from spar_eqx._train._memory import available_bytes, tree_bytes

    tree = {"w": jnp.zeros((3, 4)), "n": jnp.zeros(5, jnp.int8), "k": jax.random.key(0), "s": 1.5}
    assert tree_bytes(tree) == 3 * 4 * 4 + 5 + 8
    assert tree_bytes(eqx.filter_eval_shape(lambda: tree)) == tree_bytes(tree)
    assert available_bytes(jax.local_devices()) > 0  # this CPU's available memory


def test_nan_loss_stops_with_stage_and_step(tmp_path, capsys):
    data = write_hopper_hdf5(tmp_path / "huge.hdf5", steps=200, reward_scale=1e37)
    out = tmp_path / "nan"
    code = main(
        ["train", "--dataset", str(data), "--out", str(out), "--reward-transform", "none", *TINY]
    )
    err = capsys.readouterr().err
    assert code == 3, err
    assert "stage1" in err and "step" in err
    assert not (out / "results.json").exists()


def test_two_processes_split_seeds_and_process_zero_gathers(tmp_path, hopper_file, finished_run):
    """`jax.distributed` on loopback: each process trains one seed; process 0 writes all."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "multi"
    base = [sys.executable, "-m", "spar_eqx._cli", "train", "--dataset", str(hopper_file),
            "--out", str(out), "--variant", "proj", *TINY, "--num-processes", "2",
            "--coordinator", f"127.0.0.1:{port}"]  # fmt: skip
    procs = [
        subprocess.Popen(
            [*base, "--process-id", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for i in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["processes"] == 2 and results["seeds"] == [0, 1]
    for name in ("base", "spar", "spar_no_gate"):
        assert len(results["scores"][name]) == 2
        # Each process's episodes gathered too, one row per seed, in seed order.
        rows = results["episode_scores"][name]
        np.testing.assert_allclose(np.mean(rows, axis=1), results["scores"][name], rtol=1e-12)
    assert set(results["paired_differences"]) == {"spar - base", "spar - spar_no_gate"}
    for i in range(2):
        assert (out / f"process-{i}" / "checkpoints" / "stage2.eqx").exists()
    # Keys derive from the global seed id, so a seed's run does not depend on the split.
    single = json.loads((finished_run / "results.json").read_text())
    np.testing.assert_allclose(results["returns"]["base"], single["returns"]["base"], rtol=1e-4)
    # `evaluate` stitches the processes' checkpoints back together.
    assert main(["evaluate", str(out), "--episodes", "1"]) == 0
    again = json.loads((out / "evaluation.json").read_text())
    np.testing.assert_allclose(again["returns"]["base"], results["returns"]["base"], rtol=1e-6)


def test_a_refused_resume_leaves_the_run_untouched(tmp_path, finished_run, capsys):
    """`--resume` with other options is refused before any file of the run changes."""
    other = write_hopper_hdf5(tmp_path / "other.hdf5", steps=300)
    before = {p: p.read_bytes() for p in finished_run.rglob("*") if p.is_file()}
    code = _train(finished_run, other, "--variant", "proj", "--resume")
    err = capsys.readouterr().err
    assert code == 2 and "different configuration" in err and "dataset" in err
    after = {p: p.read_bytes() for p in finished_run.rglob("*") if p.is_file()}
    assert after == before


def test_evaluate_prints_its_results_when_it_cannot_save_them(
    tmp_path, finished_run, capsys, monkeypatch
):
    import errno
    import shutil

    from spar_eqx._train import _checkpoint

    run = tmp_path / "unsaveable"
    shutil.copytree(finished_run, run)
    (run / "evaluation.json").unlink(missing_ok=True)
    # A target that cannot be a file is refused before anything is evaluated.
    (run / "evaluation.json").mkdir()
    assert main(["evaluate", str(run), "--episodes", "1"]) == 2
    captured = capsys.readouterr()
    assert "is a folder" in captured.err and captured.out == ""
    (run / "evaluation.json").rmdir()

    # The disk fills up during the write: the results are printed, not lost.
    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(_checkpoint, "atomic_write", full)
    assert main(["evaluate", str(run), "--episodes", "1"]) == 2
    captured = capsys.readouterr()
    assert "spar_no_gate" in captured.out  # the results were not lost
    assert "could not write" in captured.err and "printed above" in captured.err
    assert not (run / "evaluation.json").exists()


def test_a_killed_saves_temporary_file_is_cleaned_on_resume(tmp_path, hopper_file):
    out = tmp_path / "leftover"
    assert _train(out, hopper_file, "--variant", "mlp") == 0
    stray = out / "checkpoints" / ".latest.eqx.abc123"
    stray.write_bytes(b"half a checkpoint")
    assert _train(out, hopper_file, "--variant", "mlp", "--resume") == 0
    assert not stray.exists()


def test_a_dataset_on_another_action_scale_is_refused(tmp_path, capsys):
    path = write_hopper_hdf5(tmp_path / "wide.hdf5", steps=100)
    with h5py.File(path, "a") as f:
        actions = f["actions"][:] * 2.0
        del f["actions"]
        f["actions"] = actions
        f.attrs["action_low"], f.attrs["action_high"] = -2.0, 2.0
    assert _train(tmp_path / "run", path) == 2
    err = capsys.readouterr().err
    assert "[-2." in err and "Hopper-v5" in err and "--rescale-actions" in err
    assert not (tmp_path / "run").exists()
    # Asked for, the bounds are mapped onto Hopper's [-1, 1], said, and recorded.
    assert _train(tmp_path / "run", path, "--variant", "mlp", "--rescale-actions") == 0
    assert "mapped from [[-2.0, -2.0, -2.0]" in capsys.readouterr().err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["actions_rescaled_from"] == [[-2.0] * 3, [2.0] * 3]
    trainer, _ = load_trained(tmp_path / "run")
    with h5py.File(path) as f:
        np.testing.assert_allclose(trainer.data.actions, f["actions"][:] / 2.0, atol=1e-6)


def test_env_reaches_the_loader_of_a_file_that_names_none(tmp_path, capsys):
    path = write_hopper_hdf5(tmp_path / "anonymous.hdf5", steps=200)
    with h5py.File(path, "a") as f:
        del f.attrs["env_id"]
    assert _train(tmp_path / "refused", path) == 2
    assert "env_id" in capsys.readouterr().err
    assert _train(tmp_path / "run", path, "--env", "Hopper-v5", "--variant", "mlp") == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["env_id"] == "Hopper-v5"
    low, high = -20.272305, 3234.3  # normalised with Hopper's D4RL reference returns
    expected = 100 * (np.asarray(results["returns"]["spar"]) - low) / (high - low)
    np.testing.assert_allclose(results["scores"]["spar"], expected, rtol=1e-9)


def test_a_second_process_on_a_run_in_use_is_refused(tmp_path, finished_run, capsys):
    import fcntl
    import shutil

    run = tmp_path / "busy"
    shutil.copytree(finished_run, run)
    holder = open(run / ".spar-eqx.lock", "a+")  # another process holding the run
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
        hopper = json.loads((run / "config.json").read_text())["dataset"]
        code = _train(run, Path(hopper), "--variant", "proj", "--resume")
        assert code == 2 and "in use by another spar-eqx process" in capsys.readouterr().err
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    finally:
        holder.close()  # released: the folder can be resumed again


def test_ctrl_c_stops_at_a_chunk_boundary_with_exit_130_and_resumes_exactly(
    tmp_path, hopper_file, finished_run
):
    """SIGINT: the chunk finishes, a checkpoint is saved, the exit code is 130 (not a crash),
    and `--resume` ends with the uninterrupted run's bits."""
    out = tmp_path / "interrupted"
    code, err = _signal_after_first_checkpoint(out, hopper_file, signal.SIGINT)
    if code == 0:
        pytest.skip("the run finished before the interrupt arrived")
    latest = out / "checkpoints" / "latest.eqx"
    assert code == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert latest.exists() and not (out / "results.json").exists()
    assert _train(out, hopper_file, "--variant", "proj", "--resume") == 0
    resumed = (out / "checkpoints" / "stage2.eqx").read_bytes()
    assert resumed == (finished_run / "checkpoints" / "stage2.eqx").read_bytes()


def _flip_a_bit(path: Path, offset_from_end: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tmp_path, finished_run, capsys):
    import shutil

    run = tmp_path / "damaged"
    shutil.copytree(finished_run, run)
    reference = (run / "checkpoints" / "stage2.eqx").read_bytes()
    (run / "checkpoints" / "stage2.eqx").unlink()
    _flip_a_bit(run / "checkpoints" / "latest.eqx")
    hopper = Path(json.loads((run / "config.json").read_text())["dataset"])
    assert _train(run, hopper, "--variant", "proj", "--resume") == 0
    err = capsys.readouterr().err
    assert "latest.eqx is damaged" in err and "latest.eqx.previous" in err
    # The checkpoint before it, plus the same keys, gives the same final bits.
    assert (run / "checkpoints" / "stage2.eqx").read_bytes() == reference


@pytest.mark.parametrize("damage", ["truncate", "headerless", "bitflip"])
def test_damaged_checkpoints_are_named_not_loaded(tmp_path, finished_run, capsys, damage):
    import shutil

    run = tmp_path / damage
    shutil.copytree(finished_run, run)
    final = run / "checkpoints" / "stage2.eqx"
    if damage == "truncate":
        final.write_bytes(final.read_bytes()[:-1000])
    elif damage == "headerless":
        final.write_bytes(final.read_bytes().split(b"\n", 1)[1])
    else:
        _flip_a_bit(final)
    assert main(["evaluate", str(run), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "stage2.eqx" in err and "damaged" in err and "Traceback" not in err
    for name in ("latest.eqx", "latest.eqx.previous"):
        (run / "checkpoints" / name).write_bytes(b"not a checkpoint")
    hopper = Path(json.loads((run / "config.json").read_text())["dataset"])
    assert _train(run, hopper, "--variant", "proj", "--resume") == 2
    assert "latest.eqx" in capsys.readouterr().err


def test_a_checkpoint_of_another_versions_state_is_refused_and_nothing_changes(
    tmp_path, finished_run, capsys
):
    """An intact checkpoint whose recorded layout is not this run's (as after an upgrade that
    changed a learner's state): resuming refuses it by name, does not fall back to the
    equally foreign checkpoint before it, and leaves every file as it was."""
    import shutil

    run = tmp_path / "upgraded"
    shutil.copytree(finished_run, run)
    (run / "checkpoints" / "stage2.eqx").unlink()
    for name in ("latest.eqx", "latest.eqx.previous"):
        resign_header(run / "checkpoints" / name, layout="0123456789abcdef", spar_eqx="0.0.1")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    hopper = Path(json.loads((run / "config.json").read_text())["dataset"])
    assert _train(run, hopper, "--variant", "proj", "--resume") == 2
    err = capsys.readouterr().err
    assert "latest.eqx" in err and "different training state" in err and "0.0.1" in err
    assert "checkpoint before it" not in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["hyperparameters"]["residual"].update(lambda_g="big"), "lambda_g"),
        (lambda c: c["hyperparameters"]["anchor"].update(width=-3), "width"),
        (lambda c: c.update(seeds="two"), "seeds"),
        (lambda c: c["hyperparameters"].update(unknown=1), "unknown"),
        (lambda c: c.pop("steps"), "steps"),
    ],
)
def test_a_hand_edited_config_is_refused_with_its_field(tmp_path, finished_run, capsys, edit,
                                                        message):  # fmt: skip
    import shutil

    run = tmp_path / "edited"
    shutil.copytree(finished_run, run)
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))
    assert main(["evaluate", str(run), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_full_disk_is_a_message_and_the_last_checkpoint_survives(
    tmp_path, hopper_file, monkeypatch, capsys
):
    import errno

    from spar_eqx._train import _checkpoint

    real = _checkpoint.os.fsync
    calls = {"n": 0}

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] == 3:  # the third checkpoint write finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(_checkpoint.os, "fsync", fsync)
    out = tmp_path / "full"
    assert _train(out, hopper_file, "--variant", "mlp") == 2
    err = capsys.readouterr().err
    assert "disk is full" in err and "--resume" in err and "Traceback" not in err
    assert not list((out / "checkpoints").glob(".*"))  # no half-written temporary file
    monkeypatch.undo()
    assert _train(out, hopper_file, "--variant", "mlp", "--resume") == 0


def test_results_files_are_replaced_whole(tmp_path, monkeypatch):
    """A kill or an error while writing leaves the old file, never a torn one."""
    from spar_eqx._train import _checkpoint

    target = tmp_path / "results.json"
    target.write_text('{"old": true}')

    def broken(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_checkpoint.os, "fsync", broken)
    with pytest.raises(OSError):
        _checkpoint.atomic_write(target, '{"new": true}' * 1000)
    assert target.read_text() == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    monkeypatch.undo()
    _checkpoint.atomic_write(target, '{"new": true}')
    assert json.loads(target.read_text()) == {"new": True}


@pytest.mark.parametrize("target", ["metrics.csv", "learning_curve.png", "results.json"])
def test_a_kill_while_writing_the_results_resumes_to_the_same_bytes(
    tmp_path, hopper_file, finished_run, target
):
    """SIGKILL as each results file is being put in place: `--resume` writes them all again,
    with the uninterrupted run's scores and metrics, and no temporary file is left."""
    out = tmp_path / "killed"
    argv = ["train", "--dataset", str(hopper_file), "--out", str(out), "--variant", "proj", *TINY]
    done = killed_at_replace(target, argv)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert not (out / "results.json").exists()
    assert [p.name for p in out.glob(f".{target}.*")], "the kill left the temporary file"
    assert _train(out, hopper_file, "--variant", "proj", "--resume") == 0
    assert not [p for p in out.rglob(".*") if p.name != ".spar-eqx.lock"]
    assert (out / "metrics.csv").read_bytes() == (finished_run / "metrics.csv").read_bytes()
    a = json.loads((out / "results.json").read_text())
    b = json.loads((finished_run / "results.json").read_text())
    assert a["scores"] == b["scores"] and a["diagnostics"] == b["diagnostics"]


def test_variant_auto_diagnoses_the_anchors_then_trains_the_variant_they_call_for(
    tmp_path, hopper_file
):
    """`--variant auto` = Stage I, the diagnosis, then exactly the plain run of the chosen
    variant; recorded in results.json, reloaded by evaluate, and resumed after a kill that
    falls between the diagnosis and Stage II's first checkpoint."""
    auto = tmp_path / "auto"
    assert _train(auto, hopper_file, "--variant", "auto") == 0
    results = json.loads((auto / "results.json").read_text())
    chosen = results["variant"]
    assert chosen in ("mlp", "proj") and results["label"] == f"SPAR-{chosen.upper()}"
    recommendation = results["recommendation"]
    assert recommendation["variant"] == chosen and recommendation["reason"]
    assert sum(recommendation["votes"].values()) == 2 and len(recommendation["runs"]) == 2
    assert {"recommendation", "delta_rho", "num_clusters"} <= set(recommendation["runs"][0])

    plain = tmp_path / "plain"
    assert _train(plain, hopper_file, "--variant", chosen) == 0
    (_, a), (_, b) = load_trained(auto), load_trained(plain)
    assert tree_equal_bits(a, b)
    assert json.loads((plain / "results.json").read_text())["scores"] == results["scores"]

    killed = tmp_path / "killed"
    argv = ["train", "--dataset", str(hopper_file), "--out", str(killed), "--variant", "auto",
            *TINY]  # fmt: skip
    done = killed_at_replace("stage1.eqx", argv)  # written once Stage II has been chosen
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert _train(killed, hopper_file, "--variant", "auto", "--resume") == 0
    assert tree_equal_bits(load_trained(killed)[1], a)
    assert json.loads((killed / "results.json").read_text())["recommendation"] == recommendation


# ------------------------------------------------------------------ --stage1-from


def test_stage1_from_continues_a_finished_first_stage_to_the_same_bits(
    tmp_path, hopper_file, finished_run
):
    """A run that takes `finished_run`'s first stage and trains the same second stage ends
    with the bits, scores and log of the run that trained both."""
    out = tmp_path / "reused"
    assert _train(out, hopper_file, "--variant", "proj", "--stage1-from", str(finished_run)) == 0
    trainer, states = load_trained(out)
    _, reference = load_trained(finished_run)
    assert tree_equal_bits(states, reference)
    a = json.loads((out / "results.json").read_text())
    b = json.loads((finished_run / "results.json").read_text())
    assert a["scores"] == b["scores"] and a["diagnostics"] == b["diagnostics"]
    assert a["first_stage_from"] == str(finished_run.resolve())
    assert a["trained_runs"] == {"stage1": 0, "stage2": 2} and "first_stage_from" not in b
    assert (out / "metrics.csv").read_text() == (finished_run / "metrics.csv").read_text()


def test_stage1_from_trains_a_sweep_of_other_second_stages_on_the_same_anchor(
    tmp_path, hopper_file, finished_run
):
    """Stage II settings and a sweep of them may differ: every grid point starts from the
    source's anchor (its base policy scores what the source's did) and gets its Stage I rows."""
    out = tmp_path / "mlp-sweep"
    flags = ["--variant", "mlp", "--sweep", "lambda_g=0.5,2", "--stage1-from", str(finished_run)]
    assert _train(out, hopper_file, *flags) == 0
    results = json.loads((out / "results.json").read_text())
    source = json.loads((finished_run / "results.json").read_text())
    assert [point["scores"]["base"] for point in results["sweep"]] == [source["scores"]["base"]] * 2
    assert results["trained_runs"]["stage1"] == 0

    def stage1_rows(folder, point=None):
        with (folder / "metrics.csv").open() as f:
            rows = [r for r in csv.DictReader(f) if r["stage"] == "stage1" and r["phase"] != "eval"]
        if point is not None:
            rows = [r for r in rows if r.pop("point") == str(point)]
        return [{k: v for k, v in r.items() if v != ""} for r in rows]

    assert stage1_rows(finished_run)
    for point in (0, 1):
        assert stage1_rows(out, point) == stage1_rows(finished_run)


def test_a_killed_stage1_from_run_resumes_without_its_source(tmp_path, hopper_file, finished_run):
    """The taken first stage is the run's first checkpoint: killed at once, the run resumes
    from it (the source may be gone) to the bits of an uninterrupted run."""
    out = tmp_path / "killed"
    code, err = _signal_after_first_checkpoint(
        out, hopper_file, signal.SIGKILL, "--stage1-from", str(finished_run)
    )
    assert code == -signal.SIGKILL, err
    assert not (out / "checkpoints" / "stage2.eqx").exists()
    # The same command with --resume continues the run's own checkpoint: the source is not read.
    gone = str(tmp_path / "gone")
    assert _train(out, hopper_file, "--variant", "proj", "--resume", "--stage1-from", gone) == 0
    _, states = load_trained(out)
    assert tree_equal_bits(states, load_trained(finished_run)[1])
    results = json.loads((out / "results.json").read_text())
    assert results["first_stage_from"] == str(finished_run.resolve())


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--hidden", "32"], "anchor.width=16"),
        (["--stage1-steps", "30"], "--stage1-steps 40"),
        (["--seeds", "3"], "--seeds 2"),
        (["--batch-size", "8"], "--batch-size 16"),
    ],
)
def test_stage1_from_refuses_a_first_stage_trained_otherwise(
    tmp_path, hopper_file, finished_run, capsys, flags, message
):
    out = tmp_path / "refused"
    code = _train(out, hopper_file, "--variant", "proj", *flags, "--stage1-from", str(finished_run))
    err = capsys.readouterr().err
    assert code == 2 and message in err and "--stage1-from" in err, err
    assert not out.exists()


def test_stage1_from_refuses_what_is_not_a_finished_first_stage(tmp_path, hopper_file, capsys):
    from spar_eqx import RunConfig, train

    out = tmp_path / "refused"
    assert _train(out, hopper_file, "--stage1-from", str(tmp_path / "nowhere")) == 2
    assert "no such folder" in capsys.readouterr().err and not out.exists()
    started = tmp_path / "started"
    started.mkdir()
    (started / "config.json").write_text(json.dumps(RunConfig(seeds=2).to_dict()))
    assert _train(out, hopper_file, "--stage1-from", str(started)) == 2
    assert "has not finished its first stage" in capsys.readouterr().err and not out.exists()
    bc = RunConfig(algo="bc", dataset=str(hopper_file), steps=(10,), seeds=1, log_every=10,
                   checkpoint_every=10)  # fmt: skip
    with pytest.raises(ValueError, match="one stage only"):
        train(bc, out, progress=False, stage1_from=started)
    assert not out.exists()
