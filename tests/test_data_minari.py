"""Loading Minari datasets (by id, by folder, the embedded default) made with the real
`minari.DataCollector` on Hopper-v5."""

import json
import re
import shutil

import gymnasium as gym
import h5py
import minari
import numpy as np
import pytest

import spar_eqx.data._load as load_module
from spar_eqx import reference_scores
from spar_eqx.data import (
    DatasetError,
    ObservationNormalizer,
    default_dataset_path,
    episode_returns,
    load_dataset,
)

from .helpers import save_minari

DATASET_ID = "spar-test/hopper-tiny-v0"
STEPS = 300


def _collect(dataset_id: str) -> None:
    """A few hundred Hopper-v5 steps, 50-step time limit, fixed seeds.

    Even episodes use tiny actions (the hopper stands until the time limit: truncations),
    odd ones large clipped actions (it falls: terminations; many actions exactly +-1).
    """
    collector = minari.DataCollector(gym.make("Hopper-v5", max_episode_steps=50))
    rng = np.random.default_rng(0)
    episode = 0
    collector.reset(seed=0)
    for _ in range(STEPS):
        scale = 0.05 if episode % 2 == 0 else 2.0
        action = np.clip(rng.normal(0.0, scale, 3), -1.0, 1.0).astype(np.float32)
        _, _, terminated, truncated, _ = collector.step(action)
        if terminated or truncated:
            episode += 1
            collector.reset(seed=episode)
    save_minari(
        collector, dataset_id, "Hopper-v5", "tiny test dataset", "tests/test_data_minari.py"
    )


@pytest.fixture(scope="session")
def minari_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari_datasets")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(root))
        _collect(DATASET_ID)
    return root


@pytest.fixture
def minari_env(minari_root, monkeypatch):
    """MINARI_DATASETS_PATH points at the session's datasets."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_root))
    return minari_root


@pytest.fixture(scope="session")
def raw_episodes(minari_root):
    """The episodes as Minari itself returns them."""
    data = minari.MinariDataset(minari_root / DATASET_ID / "data")
    return list(data.iterate_episodes())


@pytest.fixture
def copied(minari_root, tmp_path):
    """A private copy of the dataset folder, to damage."""
    folder = tmp_path / "hopper-tiny-v0"
    shutil.copytree(minari_root / DATASET_ID, folder)
    return folder


def test_counts_flags_and_next_observations_match_the_raw_episodes(minari_env, raw_episodes):
    dataset = load_dataset(DATASET_ID)
    t = dataset.transitions
    assert t.num_transitions == STEPS == sum(len(e) for e in raw_episodes)
    assert (t.obs_dim, t.act_dim) == (11, 3)
    obs, next_obs = np.asarray(t.observations), np.asarray(t.next_observations)
    terminals, timeouts = np.asarray(t.terminals), np.asarray(t.timeouts)
    start = 0
    for episode in raw_episodes:
        stop = start + len(episode)
        raw_obs = episode.observations.astype(np.float32)
        np.testing.assert_array_equal(obs[start:stop], raw_obs[:-1])
        np.testing.assert_array_equal(next_obs[start:stop], raw_obs[1:])
        # The last step's next observation is the episode's final observation.
        np.testing.assert_array_equal(next_obs[stop - 1], raw_obs[-1])
        # Inside the episode, next_obs[i] == obs[i + 1].
        np.testing.assert_array_equal(next_obs[start : stop - 1], obs[start + 1 : stop])
        np.testing.assert_array_equal(terminals[start:stop], episode.terminations)
        np.testing.assert_array_equal(timeouts[start:stop], episode.truncations)
        np.testing.assert_array_equal(np.asarray(t.actions[start:stop]), episode.actions)
        np.testing.assert_allclose(np.asarray(t.rewards[start:stop]), episode.rewards, rtol=1e-6)
        start = stop
    # Both kinds of episode end occur, and a truncation is never a terminal.
    assert terminals.sum() >= 2 and timeouts.sum() >= 2
    assert not np.any(terminals & timeouts)
    # An episode cut by the time limit continues: its next observation is not a reset state.
    last_of_truncated = np.flatnonzero(timeouts)[0]
    assert not np.array_equal(next_obs[last_of_truncated], obs[last_of_truncated + 1])
    assert len(episode_returns(t)) == len(raw_episodes)


def test_metadata_env_and_reference(minari_env):
    dataset = load_dataset(DATASET_ID)
    assert dataset.env_id == "Hopper-v5"
    assert dataset.name == DATASET_ID
    assert dataset.reference == reference_scores("hopper")
    assert dataset.metadata["algorithm_name"] == "scripted"
    assert dataset.metadata["total_steps"] == STEPS
    np.testing.assert_array_equal(np.asarray(dataset.action_low), [-1.0, -1.0, -1.0])
    np.testing.assert_array_equal(np.asarray(dataset.action_high), [1.0, 1.0, 1.0])
    # Actions at exactly +-1 (clipped) are legal.
    assert np.sum(np.abs(np.asarray(dataset.transitions.actions)) == 1.0) > 10


def test_id_folder_and_data_folder_load_the_same(minari_env):
    by_id = load_dataset(DATASET_ID).transitions
    for path in (minari_env / DATASET_ID, minari_env / DATASET_ID / "data"):
        for name in ("observations", "actions", "rewards", "next_observations", "timeouts"):
            np.testing.assert_array_equal(
                getattr(load_dataset(path).transitions, name), getattr(by_id, name)
            )
    # A folder loads without MINARI_DATASETS_PATH pointing at it.
    assert load_dataset(str(minari_env / DATASET_ID)).num_transitions == STEPS


def test_env_id_override(minari_env):
    dataset = load_dataset(DATASET_ID, env_id="walker2d-medium-v2")
    assert dataset.env_id == "Walker2d-v5"
    assert dataset.reference == reference_scores("walker2d")
    # Without an override the dataset's own evaluation spec is used, step limit included.
    recorded = load_dataset(DATASET_ID).environment
    assert recorded.env_id == "Hopper-v5" and recorded.max_episode_steps == 1000
    assert recorded.source == "the dataset's eval_env_spec"


def test_normalisation_on_real_data(minari_env):
    t = load_dataset(DATASET_ID).transitions
    z = np.asarray(ObservationNormalizer.from_transitions(t)(t.observations))
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-3)


def test_gzip_compressed_hdf5_loads_identically(minari_env, copied):
    with h5py.File(copied / "data" / "main_data.hdf5", "a") as file:
        for group in file.values():
            for key in list(group.keys()):
                if isinstance(group[key], h5py.Dataset):
                    data = group[key][()]
                    del group[key]
                    group.create_dataset(key, data=data, compression="gzip")
    a = load_dataset(copied).transitions
    b = load_dataset(DATASET_ID).transitions
    for name in ("observations", "actions", "rewards", "next_observations", "terminals"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# --- the embedded default dataset ----------------------------------------------------------


def test_default_loads_the_single_folder_under_default(minari_env, monkeypatch, tmp_path):
    root = tmp_path / "default"
    monkeypatch.setattr(load_module, "_DEFAULT_DIR", root)
    with pytest.raises(DatasetError, match="embedded default dataset is not installed"):
        load_dataset("default")
    shutil.copytree(minari_env / DATASET_ID, root / "hopper-tiny-v0")
    assert default_dataset_path() == root / "hopper-tiny-v0"
    dataset = load_dataset("default")
    assert dataset.num_transitions == STEPS and dataset.env_id == "Hopper-v5"
    np.testing.assert_array_equal(
        dataset.transitions.observations, load_dataset(DATASET_ID).transitions.observations
    )
    shutil.copytree(minari_env / DATASET_ID, root / "another-v0")
    with pytest.raises(DatasetError, match="ambiguous: 2 Minari dataset folders"):
        load_dataset("default")


def _default_exists() -> bool:
    try:
        default_dataset_path()
    except DatasetError:
        return False
    return True


@pytest.mark.skipif(not _default_exists(), reason="the embedded default dataset is not there yet")
def test_the_real_default_dataset_loads():
    dataset = load_dataset("default")
    assert dataset.reference == reference_scores("hopper")
    assert (dataset.obs_dim, dataset.act_dim) == (11, 3)
    assert dataset.num_transitions > 1000
    t = dataset.transitions
    assert bool(t.terminals.any()) and bool(t.timeouts.any())


# --- bad input ------------------------------------------------------------------------------


def test_missing_id_says_where_minari_looks_and_how_to_work_offline(minari_env):
    with pytest.raises(DatasetError) as info:
        load_dataset("spar-test/absent-v0")
    message = str(info.value)
    assert "'spar-test/absent-v0': no file or folder at that path" in message
    assert "no local Minari dataset with that id" in message
    assert str(minari_env / "spar-test" / "absent-v0") in message
    assert f"MINARI_DATASETS_PATH={minari_env}" in message
    assert DATASET_ID in message  # the local datasets are listed
    assert "spar-eqx collect --env Hopper-v5 --level medium-replay --out DIR" in message
    assert 'the dataset shipped with spar_eqx, "default"' in message
    assert "load_dataset(" not in message  # the command line shows it too: no Python calls


def test_missing_id_without_minari_datasets_path(monkeypatch, tmp_path):
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DatasetError) as info:
        load_dataset("mujoco/hopper/medium-v0")
    message = str(info.value)
    assert str(tmp_path / ".minari" / "datasets") in message
    assert "MINARI_DATASETS_PATH is not set" in message
    # A path that is simply not there is named as such, with no download advice.
    for missing in ("not-a-path", "./runs/data/hopper", "runs/data/hopper/"):
        with pytest.raises(DatasetError) as info:
            load_dataset(missing)
        message = str(info.value)
        assert message.startswith(f"{missing}: no such file or folder"), message
        assert "download" not in message


def _edit(folder, path, index, value):
    with h5py.File(folder / "data" / "main_data.hdf5", "a") as file:
        dataset = file[path]
        data = dataset[()]
        data[index] = value
        dataset[...] = data


@pytest.mark.parametrize(
    "path, index, name, where",
    [
        ("episode_2/observations", (5, 3), "observations", "(episode 2, step 5), dimension 3"),
        ("episode_1/rewards", (4,), "rewards", "(episode 1, step 4)"),
    ],
)
def test_nan_names_array_and_first_index(minari_env, copied, path, index, name, where):
    _edit(copied, path, index, np.nan)
    with pytest.raises(DatasetError, match=re.escape(str(copied))) as info:
        load_dataset(copied)
    assert f"{name} has a non-finite value nan, at transition" in str(info.value)
    assert where in str(info.value)


def test_nan_in_a_final_observation_is_found_in_next_observations(minari_env, copied, raw_episodes):
    last = len(raw_episodes[0])  # the final observation of episode 0
    _edit(copied, "episode_0/observations", (last, 0), np.inf)
    with pytest.raises(DatasetError) as info:
        load_dataset(copied)
    assert f"next_observations has a non-finite value inf, at transition {last - 1}" in str(
        info.value
    )


def test_actions_outside_the_space(minari_env, copied):
    _edit(copied, "episode_1/actions", (3, 1), 1.5)
    with pytest.raises(DatasetError, match=re.escape(str(copied))) as info:
        load_dataset(copied)
    message = str(info.value)
    assert "the worst value, 1.5 at transition" in message
    assert "(episode 1, step 3), dimension 1" in message
    assert "upper bound high[1] = 1" in message


def test_mismatched_episode_lengths(minari_env, copied):
    with h5py.File(copied / "data" / "main_data.hdf5", "a") as file:
        rewards = file["episode_3/rewards"][()]
        del file["episode_3/rewards"]
        file["episode_3"].create_dataset("rewards", data=rewards[:-1])
    with pytest.raises(DatasetError, match=re.escape(str(copied))) as info:
        load_dataset(copied)
    assert "episode 3 has mismatched lengths" in str(info.value)
    assert f"rewards has {len(rewards) - 1}" in str(info.value)


def test_corrupt_files(minari_env, copied):
    main = copied / "data" / "main_data.hdf5"
    main.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(DatasetError, match=re.escape(str(copied)) + ".*unreadable or corrupt"):
        load_dataset(copied)
    (copied / "data" / "metadata.json").write_text("{not json")
    with pytest.raises(DatasetError, match="metadata.json \\(unreadable or corrupt\\)"):
        load_dataset(copied)


def test_metadata_without_env_needs_env_id(minari_env, copied):
    meta_path = copied / "data" / "metadata.json"
    metadata = json.loads(meta_path.read_text())
    del metadata["env_spec"], metadata["eval_env_spec"]
    meta_path.write_text(json.dumps(metadata))
    with pytest.raises(DatasetError, match="records no environment"):
        load_dataset(copied)
    assert load_dataset(copied, env_id="Hopper-v5").env_id == "Hopper-v5"


class _DictObservations(minari.StepDataCallback):
    """Stores Hopper's observation as a Dict of two parts, keys in reverse order."""

    def __call__(self, env, **kwargs):
        data = super().__call__(env, **kwargs)
        obs = data["observation"]
        data["observation"] = {"tail": obs[5:], "head": obs[:5]}
        return data


def test_dict_observations_are_flattened_in_space_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    box = gym.spaces.Box(-np.inf, np.inf, (5,), np.float64)
    space = gym.spaces.Dict(
        {"head": box, "tail": gym.spaces.Box(-np.inf, np.inf, (6,), np.float64)}
    )
    collector = minari.DataCollector(
        gym.make("Hopper-v5", max_episode_steps=20),
        step_data_callback=_DictObservations,
        observation_space=space,
    )
    collector.reset(seed=0)
    for _ in range(30):
        _, _, terminated, truncated, _ = collector.step(np.zeros(3, np.float32))
        if terminated or truncated:
            collector.reset(seed=1)
    save_minari(
        collector, "spar-test/dict-v0", "Hopper-v5", "dict observations",
        "tests/test_data_minari.py",
    )  # fmt: skip

    t = load_dataset("spar-test/dict-v0").transitions
    raw = next(iter(minari.load_dataset("spar-test/dict-v0").iterate_episodes()))
    assert t.obs_dim == 11 and t.num_transitions == 30
    expected = np.concatenate([raw.observations["head"], raw.observations["tail"]], axis=1)
    np.testing.assert_array_equal(t.observations[:20], expected[:-1].astype(np.float32))
    np.testing.assert_array_equal(t.next_observations[19], expected[-1].astype(np.float32))
