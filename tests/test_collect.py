"""`spar-eqx collect`: every level end to end on Hopper-v5 with tiny settings, and its errors."""

import json
import os
import shlex
import signal

import minari
import numpy as np
import pytest

from spar_eqx import reference_scores
from spar_eqx._cli import _build_parser, main
from spar_eqx.data._collect import (
    LEVELS,
    CollectError,
    collect,
    dataset_id,
    default_target_return,
)
from spar_eqx.data._sac import SACConfig

from .helpers import killed_at_replace

# Identical to test_sac.TEST_CONFIG (equal configs share the compiled update chunk): SAC starts
# updating after 100 random steps and evaluates after every 100 steps.
TEST_CONFIG = SACConfig(
    width=32,
    learning_rate=1e-3,
    gamma=0.5,
    tau=0.05,
    batch_size=128,
    start_steps=100,
    chunk_size=100,
    buffer_size=1000,
    eval_interval=100,
    eval_episodes=2,
    init_alpha=1e-6,
)
ENV, STEPS, MAX_EPISODE_STEPS, REACHED = "Hopper-v5", 200, 30, -1e9
TARGETS = {"medium": REACHED, "medium-replay": REACHED, "expert": REACHED}
TARGETS["medium-expert"] = (REACHED, REACHED)


def _collect(level, root, **kwargs):
    options = dict(
        seed=0,
        steps=STEPS,
        target_return=TARGETS.get(level),
        max_train_steps=1000,
        max_episode_steps=MAX_EPISODE_STEPS,
        sac_config=TEST_CONFIG,
        progress=False,
    )
    return collect(ENV, level, root, **{**options, **kwargs})


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Every level, written once into one datasets root: {level: dataset folder}."""
    root = tmp_path_factory.mktemp("minari")
    before = os.environ.get("MINARI_DATASETS_PATH")
    folders = {level: _collect(level, root) for level in LEVELS}
    assert os.environ.get("MINARI_DATASETS_PATH") == before  # collect restores it
    return root, folders


def _metadata(folder):
    return json.loads((folder / "data" / "metadata.json").read_text())


def _episodes(folder):
    return list(minari.MinariDataset(folder / "data").iterate_episodes())


@pytest.mark.parametrize("level", LEVELS)
def test_levels_are_loadable_minari_datasets(datasets, level, monkeypatch):
    root, folders = datasets
    folder = folders[level]
    assert folder == root / "hopper" / f"{level}-v0"
    assert sorted(p.name for p in (folder / "data").iterdir()) == [
        "main_data.hdf5",
        "metadata.json",
    ]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    dataset = minari.load_dataset(dataset_id(ENV, level))
    meta, info = _metadata(folder), _metadata(folder)["spar_eqx"]
    expected_steps = {"medium-expert": 2 * STEPS, "medium-replay": info["parts"][0]["train_steps"]}
    assert dataset.total_steps == expected_steps.get(level, STEPS)
    assert dataset.total_episodes == sum(part["episodes"] for part in info["parts"])
    assert dataset.spec.env_spec.id == ENV
    assert dataset.spec.env_spec.max_episode_steps == MAX_EPISODE_STEPS
    ref = reference_scores(ENV)
    assert (meta["ref_min_score"], meta["ref_max_score"]) == (ref.min, ref.max)
    assert info["seed"] == 0 and info["level"] == level and info["env_id"] == ENV
    assert info["command"] in meta["description"]
    # The recorded command parses back to this run's arguments.
    args = _build_parser().parse_args(shlex.split(info["command"])[1:])
    assert (args.env, args.level, args.seed, str(args.out)) == (ENV, level, 0, str(root))
    assert args.max_episode_steps == MAX_EPISODE_STEPS
    if level != "random":
        assert info["sac_config"] == json.loads(json.dumps(TEST_CONFIG.__dict__))
    for episode in dataset.iterate_episodes():
        assert np.all(np.abs(episode.actions) <= 1.0)
        assert episode.observations.shape == (len(episode.actions) + 1, 11)


def test_truncations_are_not_terminations(datasets):
    _, folders = datasets
    time_limited = 0
    for folder in folders.values():
        for episode in _episodes(folder):
            terminated, truncated = episode.terminations, episode.truncations
            assert not terminated[:-1].any() and not truncated[:-1].any()
            assert terminated[-1] != truncated[-1]  # each episode ends exactly one way
            assert len(episode.actions) <= MAX_EPISODE_STEPS
            if len(episode.actions) == MAX_EPISODE_STEPS and not terminated[-1]:
                time_limited += 1
    assert time_limited > 0  # the 30-step limit was hit and recorded as a truncation


def test_medium_expert_is_medium_then_expert(datasets):
    _, folders = datasets
    medium, expert = _episodes(folders["medium"]), _episodes(folders["expert"])
    both = _episodes(folders["medium-expert"])
    assert len(both) == len(medium) + len(expert)
    for a, b in zip(both, medium + expert, strict=True):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.rewards, b.rewards)
    parts = _metadata(folders["medium-expert"])["spar_eqx"]["parts"]
    assert [p["level"] for p in parts] == ["medium", "expert"]
    assert [p["episodes"] for p in parts] == [len(medium), len(expert)]


def test_medium_replay_is_the_training_replay(datasets):
    _, folders = datasets
    info = _metadata(folders["medium-replay"])["spar_eqx"]
    (part,) = info["parts"]
    # The tiny target is reached at the first evaluation, after the random warm-up.
    assert part["train_steps"] == TEST_CONFIG.start_steps
    assert part["eval_return"] >= REACHED
    assert sum(len(e.actions) for e in _episodes(folders["medium-replay"])) == part["train_steps"]


def test_same_seed_same_data(datasets, tmp_path):
    _, folders = datasets
    again = _collect("random", tmp_path)
    for a, b in zip(_episodes(folders["random"]), _episodes(again), strict=True):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)


def test_default_targets_follow_d4rl():
    ref = reference_scores(ENV)
    assert default_target_return(ENV, "medium") == pytest.approx(ref.min + (ref.max - ref.min) / 3)
    assert default_target_return(ENV, "expert") == pytest.approx(
        ref.min + 0.9 * (ref.max - ref.min)
    )
    assert default_target_return("InvertedPendulum-v5", "medium") is None
    assert dataset_id("Hopper-v5", "medium-replay") == "hopper/medium-replay-v0"


def test_target_not_reached_is_a_clear_error(tmp_path):
    with pytest.raises(CollectError, match="did not reach the expert target return 1000000000.0"):
        _collect("expert", tmp_path, target_return=1e9, max_train_steps=1000)
    # Nothing half-written is left behind: no dataset, no Minari temporary folder.
    assert not (tmp_path / "hopper" / "expert-v0").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("tmp")]


def test_cli_writes_a_dataset(tmp_path, capsys):
    argv = ["collect", "--env", ENV, "--level", "random", "--out", str(tmp_path), "--quiet"]
    argv += ["--steps", "50", "--max-episode-steps", "10"]
    assert main(argv) == 0
    folder = tmp_path / "hopper" / "random-v0"
    assert capsys.readouterr().out.strip() == str(folder)
    assert minari.MinariDataset(folder / "data").total_steps == 50
    # A second run refuses the non-empty folder, unless --overwrite.
    assert main(argv) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env", "NoSuchEnv-v0", "--level", "medium"], "unknown or unavailable gymnasium"),
        (["--env", "InvertedPendulum-v5", "--level", "medium"], "pass --target-return"),
        (["--env", "CartPole-v1", "--level", "random"], "continuous control only"),
        (["--env", ENV, "--level", "medium-expert", "--target-return", "1"], "needs 2 target"),
        (["--env", ENV, "--level", "random", "--target-return", "1"], "takes no target"),
        (["--env", ENV, "--level", "random", "--steps", "0"], "--steps must be a positive"),
    ],
)
def test_cli_errors(tmp_path, capsys, argv, message):
    assert main(["collect", *argv, "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spar-eqx collect: error: ") and message in err
    assert not (tmp_path / "hopper").exists()


def test_cli_unknown_level(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["collect", "--env", ENV, "--level", "hard", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "invalid choice: 'hard'" in capsys.readouterr().err


def test_a_failed_overwrite_keeps_the_old_dataset(tmp_path, monkeypatch):
    from spar_eqx.data import _collect as module

    folder = _collect("random", tmp_path)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full while writing metadata")

    monkeypatch.setattr(module, "write_metadata", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        _collect("random", tmp_path, seed=1, overwrite=True)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".collect", "tmp"))]
    monkeypatch.undo()
    # A complete collection replaces it, and leaves nothing of the old one beside it.
    _collect("random", tmp_path, seed=1, overwrite=True)
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after != before and set(after) == set(before)
    beside = sorted(p.name for p in folder.parent.iterdir())
    assert beside == ["namespace_metadata.json", "random-v0"]


def test_a_collection_killed_during_the_swap_gives_the_old_dataset_back(tmp_path):
    """SIGKILL after the old dataset was moved aside and before the new one took its place:
    the next `collect` puts the old one back (then refuses to overwrite it without
    --overwrite), and cleans the staging folder; `--overwrite` then completes."""
    argv = ["collect", "--env", ENV, "--level", "random", "--out", str(tmp_path), "--quiet",
            "--steps", "30", "--max-episode-steps", "10"]  # fmt: skip
    assert main(argv) == 0
    folder = tmp_path / "hopper" / "random-v0"
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    done = killed_at_replace("random-v0", [*argv, "--overwrite", "--seed", "1"])
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert not folder.exists()  # the moment the kill caught: the old one is aside
    assert main(argv) == 2  # restored, so "already exists"
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in tmp_path.rglob(".*")]  # no staging folder, nothing aside
    assert main([*argv, "--overwrite", "--seed", "1"]) == 0
    assert minari.MinariDataset(folder / "data").total_steps == 30
