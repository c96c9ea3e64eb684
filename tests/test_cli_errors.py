"""The real `spar-eqx` command, driven as a user would, through a table of mistakes.

Each must exit 2 with one message and no traceback, and change no file that existed before
(nor leave a run folder behind that would block the corrected command). The table grows
with every such bug found.
"""

import signal
import socket
import subprocess
import sys

import pytest

from .helpers import resign_header, without_compile_cache

CASES = [
    (["train", "--out", "{tmp}/run", "--lr", "inf"], "finite"),
    (["train", "--out", "{tmp}/run", "--eval-max-episode-steps", "0"], "eval_max_episode_steps"),
    (["train", "--out", "{tmp}/run", "--num-processes", "0"], "num-processes"),
    (["train", "--out", "{tmp}/run", "--process-id", "1"], "process-id"),
    (["train", "--out", "{tmp}/run", "--dataset", "{tmp}/missing.hdf5"], "missing.hdf5"),
    (["train", "--out", "{tmp}/run", "--algo", "bc", "--alpha", "1"], "belongs to fql, td3bc"),
    (["train", "--out", "{tmp}/run", "--algo", "td3bc", "--preset", "pen-cloned"],
     "td3bc publishes no settings for adroit tasks"),
    (["train", "--out", "{tmp}/run", "--preset", "pen-cloned"],
     "holds settings for adroit tasks, and the dataset"),
    (["train", "--out", "{tmp}/run", "--sweep", "hidden=64,128"], "cannot sweep 'hidden'"),
    (["train", "--out", "{tmp}/run", "--sweep", "lambda_g=small"], "must be a number"),
    (["train", "--out", "{tmp}/run", "--sweep", "temperature=1,-1"], "grid point"),
    (["train", "--out", "{tmp}/run", "--algo", "transformer"], "unknown --algo"),
    (["train", "--out", "{tmp}/run", "--budget", "huge"], "invalid choice: 'huge'"),
    (["train", "--out", "{tmp}/a_file"], "not a folder"),
    (["train", "--out", "{tmp}/a_file/run"], "a_file exists and is not a folder"),
    (["train", "--out", "{tmp}/dangling/run"], "dangling is a broken symbolic link"),
    (["train", "--out", "{tmp}", "--resume"], "is not a spar-eqx run (it holds a_file, dangling"),
    (["evaluate", "{tmp}/nothing-here"], "nothing-here: no such folder"),
    (["evaluate", "{tmp}"], "is not a run folder (it has no config.json)"),
    (["evaluate", "{tmp}/a_file"], "a_file is not a folder"),
    (["evaluate", "{tmp}/nothing-here", "--seed", "-1"], "--seed must lie in"),
    (["train", "--out", "{tmp}/run", "--num-processes", "2", "--process-id", "1",
      "--coordinator", "127.0.0.1:9", "--coordinator-timeout", "1"], "found no coordinator"),
    (["train", "--out", "{tmp}/run", "--num-processes", "2", "--process-id", "1",
      "--coordinator", "nowhere", "--coordinator-timeout", "1"], "HOST:PORT"),
    (["train", "--out", "{tmp}/run", "--num-processes", "2", "--process-id", "0",
      "--coordinator", "127.0.0.1:{port}", "--coordinator-timeout", "2"], "1 never joined"),
    (["train", "--out", "{tmp}/run", "--num-processes", "2", "--process-id", "0",
      "--coordinator", "127.0.0.1:{port}", "--coordinator-timeout", "0"], "at least 1 second"),
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _snapshot(root):
    return {p: (p.read_bytes() if p.is_file() else p.is_symlink()) for p in root.rglob("*")}


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(c[0][:4]) for c in CASES])
def test_a_mistake_exits_2_with_a_message_and_changes_nothing(tmp_path, argv, message):
    (tmp_path / "a_file").write_text("keep me")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")  # a broken symlink
    before = _snapshot(tmp_path)
    args = [a.format(tmp=tmp_path, port=_free_port()) for a in argv]
    done = subprocess.run(
        [sys.executable, "-m", "spar_eqx._cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert _snapshot(tmp_path) == before


def test_processes_that_disagree_on_the_run_are_refused_before_jax_starts(tmp_path):
    """Process 0 and a peer with another --num-processes: both exit 2 with the reason."""
    port = _free_port()
    common = ["train", "--out", str(tmp_path / "run"), "--coordinator", f"127.0.0.1:{port}",
              "--coordinator-timeout", "60"]  # fmt: skip
    argvs = [[*common, "--num-processes", "2", "--process-id", "0"],
             [*common, "--num-processes", "3", "--process-id", "1"]]  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "spar_eqx._cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, err
        assert "--num-processes 3, process 0 with 2" in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


# ---- A run's files are evidence (issue 24): runs trained in this process, the same tiny run.

SMALL = [
    "--stage1-steps", "20", "--stage2-steps", "20", "--seeds", "1", "--batch-size", "16",
    "--critics", "3", "--data-critics", "2", "--guide-critics", "2", "--gate-critics", "2",
    "--hidden", "16", "--residual-hidden", "16", "--cvae-layers", "1", "--latent-dim", "2",
    "--candidates", "4", "--gate-candidates", "3", "--eval-episodes", "1",
    "--eval-max-episode-steps", "10", "--log-every", "10", "--checkpoint-every", "10",
    "--quiet",
]  # fmt: skip


def _main(*argv) -> int:
    from spar_eqx._cli import main

    return main([str(a) for a in argv])


def _files(root) -> dict:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished tiny run and its own copy of the dataset (tests copy both before changing
    anything)."""
    from .helpers import write_hopper_hdf5

    root = tmp_path_factory.mktemp("small")
    data = write_hopper_hdf5(root / "hopper.hdf5", steps=200)
    assert _main("train", "--dataset", data, "--out", root / "run", *SMALL) == 0
    return root / "run", data


@pytest.fixture
def run_copy(small_run, tmp_path):
    """`(run, dataset)`: a copy of `small_run`'s folder, on the same dataset file."""
    import shutil

    run, data = small_run
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run", data


def _flip_header_byte(path, text: bytes, replacement: bytes) -> None:
    """Change `text` in a checkpoint's header line to `replacement` (not re-signed)."""
    first, payload = path.read_bytes().split(b"\n", 1)
    assert text in first, first[:300]
    path.write_bytes(first.replace(text, replacement, 1) + b"\n" + payload)


def _config_dataset(run):
    import json

    return json.loads((run / "config.json").read_text())["dataset"]


def test_a_flipped_step_in_a_header_falls_back_to_the_checkpoint_before(run_copy, capsys):
    """The payload's checksum alone let a header's step through: --resume went on from the
    wrong step. Now the header is covered, and --resume takes the checkpoint before it."""
    run, data = run_copy
    (run / "checkpoints" / "stage2.eqx").unlink()
    (run / "results.json").unlink()
    _flip_header_byte(run / "checkpoints" / "latest.eqx", b'"step": 10', b'"step": 11')
    assert _main("train", "--dataset", data, "--out", run, *SMALL, "--resume") == 0
    err = capsys.readouterr().err
    assert "latest.eqx is damaged" in err and "latest.eqx.previous" in err


def test_a_field_planted_in_a_final_checkpoint_is_refused_by_evaluate(run_copy, capsys):
    run, _ = run_copy
    path = run / "checkpoints" / "stage2.eqx"
    _flip_header_byte(path, b'"dataset_fingerprint"', b'"resolution": {"overrides": '
                      b'{"gate.eta_rel": 0.0}}, "dataset_fingerprint"')  # fmt: skip
    before = _files(run)
    assert _main("evaluate", run, "--episodes", "1") == 2
    err = capsys.readouterr().err
    assert "stage2.eqx is damaged" in err and "checksum" in err
    assert _files(run) == before


def test_a_signed_resolution_in_a_run_that_resolves_nothing_is_refused_by_evaluate(
    run_copy, capsys
):
    """Even signed again, a gate override planted as a resolution is not applied: this run's
    options leave nothing for Stage I to decide."""
    run, _ = run_copy
    resolution = {"overrides": {"gate.eta_rel": 0.0}}
    resign_header(run / "checkpoints" / "stage2.eqx", resolution=resolution)
    before = _files(run)
    assert _main("evaluate", run, "--episodes", "1") == 2
    err = capsys.readouterr().err
    assert "stage2.eqx is damaged" in err and "leave nothing to resolve" in err, err
    assert _files(run) == before


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"phase": "1"}, "'phase'"),
        ({"phase": 99}, "'phase'"),
        ({"step": -5}, "'step'"),
        ({"stage": 7}, "'stage'"),
        ({"log": "garbage"}, "'log'"),
        ({"log": {"losses": 3}}, "'log'"),
        ({"log": {"losses": [1, 2], "evals": []}}, "'log'"),
        ({"resolution": 5}, "'resolution'"),
        ({"resolution": {"overrides": {"no.such": 1}}}, "'resolution'"),
        ({"resolution": {"overrides": {"gate.eta_rel": 0.0}}}, "leave nothing to resolve"),
    ],
    ids=lambda x: str(x)[:30],
)
def test_a_signed_header_with_a_bad_field_is_refused_by_name(run_copy, capsys, changes, field):
    """Both checkpoints carry the same bad field, so there is nothing to fall back to: the
    command ends with a message naming the field, not a traceback, and changes nothing."""
    run, data = run_copy
    (run / "checkpoints" / "stage2.eqx").unlink()
    for name in ("latest.eqx", "latest.eqx.previous"):
        resign_header(run / "checkpoints" / name, **changes)
    before = _files(run)
    assert _main("train", "--dataset", data, "--out", run, *SMALL, "--resume") == 2
    err = capsys.readouterr().err
    assert "latest.eqx.previous is damaged" in err and field in err, err
    assert _files(run) == before


def test_a_swapped_dataset_is_refused_with_both_fingerprints(run_copy, capsys, tmp_path):
    from .helpers import write_hopper_hdf5

    run, data = run_copy
    saved = data.read_bytes()
    recorded = __import__("json").loads((run / "results.json").read_text())["dataset_fingerprint"]
    before = _files(run)
    try:
        write_hopper_hdf5(data, steps=150)  # another dataset under the same name
        assert _main("evaluate", run, "--episodes", "1") == 2
        err = capsys.readouterr().err
        assert recorded in err and "now holds data with fingerprint" in err, err
        assert _main("train", "--dataset", data, "--out", run, *SMALL, "--resume") == 2
        err = capsys.readouterr().err
        assert recorded in err and "dataset changed" in err, err
        assert _files(run) == before
    finally:
        data.write_bytes(saved)


def test_evaluate_works_from_another_working_directory(small_run, tmp_path, monkeypatch):
    """A run trained with a relative --dataset records its absolute path."""
    import shutil

    run, data = small_run
    shutil.copy(data, tmp_path / "data.hdf5")
    monkeypatch.chdir(tmp_path)
    assert _main("train", "--dataset", "data.hdf5", "--out", "rel", *SMALL) == 0
    assert _config_dataset(tmp_path / "rel") == str(tmp_path / "data.hdf5")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert _main("evaluate", tmp_path / "rel", "--episodes", "1") == 0


def test_a_resume_with_other_options_is_checked_again_under_the_lock(
    small_run, tmp_path, monkeypatch, capsys
):
    """While a --resume with other options loads its data, a plain train runs to the end on
    the same folder. The --resume then holds the lock: it must see the finished run's
    configuration, refuse, and change none of its files (it rewrote config.json before)."""
    from spar_eqx._train._run import Trainer

    _, data = small_run
    out = tmp_path / "race"
    real = Trainer.prepare_data
    state = {"inner": None, "files": None}

    def prepare_data(self):
        if state["inner"] is None:  # the --resume's data load: the other run happens now
            state["inner"] = "running"
            state["inner"] = _main("train", "--dataset", data, "--out", out, *SMALL)
            state["files"] = _files(out)
        return real(self)

    monkeypatch.setattr(Trainer, "prepare_data", prepare_data)
    code = _main("train", "--dataset", data, "--out", out, *SMALL, "--seeds", "2", "--resume")
    assert state["inner"] == 0
    err = capsys.readouterr().err
    assert code == 2 and "different configuration" in err and "seeds" in err, err
    assert _files(out) == state["files"]


def test_a_plain_train_is_checked_again_under_the_lock(small_run, tmp_path, monkeypatch, capsys):
    """Two plain trains into one new folder: the one that gets the lock second is refused and
    neither changes nor deletes the other's files."""
    from spar_eqx._train._run import Trainer

    _, data = small_run
    out = tmp_path / "race"
    real = Trainer.prepare_data
    state = {"inner": None, "files": None}

    def prepare_data(self):
        if state["inner"] is None:
            state["inner"] = "running"
            state["inner"] = _main("train", "--dataset", data, "--out", out, *SMALL)
            state["files"] = _files(out)
        return real(self)

    monkeypatch.setattr(Trainer, "prepare_data", prepare_data)
    code = _main("train", "--dataset", data, "--out", out, *SMALL)
    err = capsys.readouterr().err
    assert code == 2 and "is not empty" in err, err
    assert _files(out) == state["files"]


def _write_like(source, path, rows=None, actions=None):
    """A copy of the D4RL file `source` with its first `rows` transitions, or `actions`."""
    import h5py

    with h5py.File(source) as f, h5py.File(path, "w") as g:
        for name in f:
            values = f[name][:rows] if rows else f[name][:]
            g[name] = actions(values) if name == "actions" and actions else values
        g.attrs["env_id"] = f.attrs["env_id"]
    return path


@pytest.mark.parametrize("kind", ["one-transition", "actions-at-bounds"])
def test_a_final_measurement_that_cannot_be_made_is_not_available(
    small_run, tmp_path, capsys, kind
):
    """Both ran to the end, then died in the support-distance ratio (with advice to lower a
    `quantile` the CLI has no flag for) and left a folder `evaluate` crashed on. Now the run
    says so before the first update, finishes, and records the ratio as not available."""
    import json

    import numpy as np

    _, data = small_run
    if kind == "one-transition":
        dataset = _write_like(data, tmp_path / "one.hdf5", rows=1)
        reason = "1 transition"
    else:
        at_bounds = lambda a: np.where(a > 0, 1.0, -1.0).astype(a.dtype)  # noqa: E731
        dataset = _write_like(data, tmp_path / "bounds.hdf5", actions=at_bounds)
        reason = "repeat another exactly"
    out = tmp_path / "run"
    assert _main("train", "--dataset", dataset, "--out", out, *SMALL) == 0
    err = capsys.readouterr().err
    assert "support distance ratio will not be available" in err and reason in err, err
    results = json.loads((out / "results.json").read_text())
    assert set(results["support_distance_ratio"].values()) == {None}
    assert all(reason in why for why in results["not_available"].values())
    assert results["scores"]["spar"] is not None
    assert _main("evaluate", out, "--episodes", "1") == 0
    assert "not available" in capsys.readouterr().out


def test_resume_on_an_empty_folder_says_it_starts_afresh(small_run, tmp_path, capsys):
    _, data = small_run
    out = tmp_path / "empty"
    out.mkdir()
    assert _main("train", "--dataset", data, "--out", out, *SMALL, "--resume") == 0
    assert "holds no run yet; starting a new one" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["start-up", "after config.json"])
@pytest.mark.parametrize("signum", [2, 15], ids=["SIGINT", "SIGTERM"])
def test_a_start_stopped_before_its_first_checkpoint_leaves_nothing(
    small_run, tmp_path, monkeypatch, capsys, where, signum
):
    """Stopped while loading the data, or after config.json was written but before the first
    checkpoint: no traceback, no claim of a kept checkpoint, exit 128 + signal, and nothing
    left that blocks the corrected command (a config.json alone made the folder 'not
    empty')."""
    import os

    from spar_eqx._train._run import Trainer

    _, data = small_run
    out = tmp_path / "run"
    name = "prepare_data" if where == "start-up" else "run"
    real = getattr(Trainer, name)

    def stopped(self, *args, **kwargs):
        os.kill(os.getpid(), signum)  # SIGINT raises KeyboardInterrupt, SIGTERM Interrupted
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, name, stopped)
    # Python's own Ctrl-C handler, as in a terminal: a runner started in the background (`&`)
    # inherits SIGINT ignored, and then no KeyboardInterrupt would be raised at all.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = _main("train", "--dataset", data, "--out", out, *SMALL)
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err
    assert code == 128 + signum, err
    assert "before its first checkpoint" in err and "kept" not in err, err
    assert not out.exists()
    monkeypatch.undo()
    assert _main("train", "--dataset", data, "--out", out, *SMALL) == 0


def test_sigterm_stops_at_a_chunk_boundary_with_a_checkpoint_and_exit_143(small_run, tmp_path):
    """As Ctrl-C: the chunk finishes, a checkpoint is saved, and the exit code is 143; SIGTERM
    killed the process where it stood before."""
    import signal
    import time

    _, data = small_run
    out = tmp_path / "run"
    argv = ["train", "--dataset", str(data), "--out", str(out), *SMALL, "--stage1-steps", "4000"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "spar_eqx._cli", *argv],
        stderr=subprocess.PIPE,
        text=True,
        env=without_compile_cache(),
    )
    latest = out / "checkpoints" / "latest.eqx"
    deadline = time.monotonic() + 240
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "last checkpoint is kept" in err, err
    assert "Traceback" not in err
    assert latest.exists() and not (out / "results.json").exists()
