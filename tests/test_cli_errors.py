"""The real `spar-eqx` command, driven as a user would, through a table of mistakes.

Each must exit 2 with one message and no traceback, and change no file that existed before
(nor leave a run folder behind that would block the corrected command). The table grows
with every such bug found.
"""

import socket
import subprocess
import sys

import pytest

CASES = [
    (["train", "--out", "{tmp}/run", "--lr", "inf"], "finite"),
    (["train", "--out", "{tmp}/run", "--eval-max-episode-steps", "0"], "eval_max_episode_steps"),
    (["train", "--out", "{tmp}/run", "--num-processes", "0"], "num-processes"),
    (["train", "--out", "{tmp}/run", "--process-id", "1"], "process-id"),
    (["train", "--out", "{tmp}/run", "--dataset", "{tmp}/missing.hdf5"], "missing.hdf5"),
    (["train", "--out", "{tmp}/run", "--algo", "bc", "--alpha", "1"], "belongs to td3bc"),
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
