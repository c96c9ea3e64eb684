"""Reading a Minari dataset folder into `Transitions`, without network access."""

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from minari.dataset.episode_data import EpisodeData
from minari.dataset.minari_dataset import MinariDataset

from .._environment_names import environment, recorded_environment
from .._scores import ReferenceScores
from ._dataset import OfflineDataset
from ._errors import DatasetError
from ._transitions import Transitions, as_jax_array
from ._validate import action_bounds_from, as_flags, as_float32, check_action_bounds

METADATA_FILE = "metadata.json"


def find_minari_data_dir(path: Path) -> Path | None:
    """The Minari `data` folder at `path`: `path` itself, or `path / "data"`; None if neither."""
    if (path / METADATA_FILE).is_file():
        return path
    if (path / "data" / METADATA_FILE).is_file():
        return path / "data"
    return None


def _flatten_observations(source: str, space: gym.Space, value: Any, episode: int) -> np.ndarray:
    """Observations of one episode as `(steps, obs_dim)`: a Box as is, a Dict concatenated."""
    if isinstance(space, gym.spaces.Box):
        array = np.asarray(value)
        return array.reshape(len(array), -1)
    if isinstance(space, gym.spaces.Dict):
        parts = [
            _flatten_observations(source, sub, value[key], episode)
            for key, sub in space.spaces.items()
        ]
        lengths = {len(p) for p in parts}
        if len(lengths) != 1:
            raise DatasetError(
                f"{source}: episode {episode} has observation parts of different lengths "
                f"{sorted(lengths)} in its Dict observation space."
            )
        return np.concatenate(parts, axis=1)
    raise DatasetError(
        f"{source}: unsupported observation space {space}; spar_eqx reads Box observations "
        "and Dict spaces of Boxes (concatenated in the space's key order)."
    )


def _episode_arrays(
    source: str, episodes: list[EpisodeData], obs_space: gym.Space
) -> dict[str, list[np.ndarray]]:
    columns: dict[str, list[np.ndarray]] = {
        key: []
        for key in (
            "observations",
            "next_observations",
            "actions",
            "rewards",
            "terminals",
            "timeouts",
            "episode",
            "step",
        )
    }
    for episode in episodes:
        episode_id = int(episode.id)
        obs = _flatten_observations(source, obs_space, episode.observations, episode_id)
        actions = np.asarray(episode.actions)
        actions = actions.reshape(len(actions), -1)
        steps = len(episode.rewards)
        lengths = {
            "observations": len(obs),
            "actions": len(actions),
            "rewards": len(episode.rewards),
            "terminations": len(episode.terminations),
            "truncations": len(episode.truncations),
        }
        expected = {name: steps for name in lengths} | {"observations": steps + 1}
        if lengths != expected:
            listed = ", ".join(f"{name} has {length}" for name, length in lengths.items())
            raise DatasetError(
                f"{source}: episode {episode_id} has mismatched lengths: {listed} rows "
                f"(expected {steps} steps and {steps + 1} observations)."
            )
        columns["observations"].append(obs[:-1])
        columns["next_observations"].append(obs[1:])
        columns["actions"].append(actions)
        columns["rewards"].append(np.asarray(episode.rewards).reshape(-1))
        columns["terminals"].append(np.asarray(episode.terminations).reshape(-1))
        columns["timeouts"].append(np.asarray(episode.truncations).reshape(-1))
        columns["episode"].append(np.full(steps, episode_id, dtype=np.int64))
        columns["step"].append(np.arange(steps, dtype=np.int64))
    return columns


def load_minari_folder(
    data_dir: Path,
    *,
    source: str,
    env_id: str | None = None,
    action_bounds=None,
) -> OfflineDataset:
    """Load and validate the Minari dataset whose `data` folder is `data_dir`.

    `source` names the dataset in error messages.
    """
    try:
        with open(data_dir / METADATA_FILE) as file:
            metadata = json.load(file)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(
            f"{source}: cannot read {data_dir / METADATA_FILE} (unreadable or corrupt): {error}"
        ) from None
    if not isinstance(metadata, dict):
        raise DatasetError(f"{source}: {data_dir / METADATA_FILE} does not hold a JSON object.")

    try:
        dataset = MinariDataset(data_dir)
        obs_space = dataset.observation_space
        action_space = dataset.action_space
        episodes = list(dataset.iterate_episodes())
    except Exception as error:  # h5py, json and Minari raise many types on a damaged folder
        raise DatasetError(
            f"{source}: cannot read the Minari dataset in {data_dir} (unreadable or corrupt): "
            f"{type(error).__name__}: {error}"
        ) from None
    columns = _episode_arrays(source, episodes, obs_space)

    if not isinstance(action_space, gym.spaces.Box):
        raise DatasetError(
            f"{source}: unsupported action space {action_space}; spar_eqx needs a continuous "
            "Box action space."
        )

    if columns["rewards"]:
        raw = {key: np.concatenate(parts) for key, parts in columns.items()}
    else:
        raise DatasetError(f"{source}: the dataset in {data_dir} holds no transitions.")
    episode_of, step_of = raw.pop("episode"), raw.pop("step")

    def locate(row: int) -> str:
        return f"transition {row} (episode {episode_of[row]}, step {step_of[row]})"

    observations = as_float32(source, "observations", raw["observations"], locate)
    next_observations = as_float32(source, "next_observations", raw["next_observations"], locate)
    actions = as_float32(source, "actions", raw["actions"], locate)
    rewards = as_float32(source, "rewards", raw["rewards"], locate)
    terminals = as_flags(source, "terminations", raw["terminals"], locate)
    timeouts = as_flags(source, "truncations", raw["timeouts"], locate)

    low, high = action_bounds_from(
        source,
        action_bounds,
        actions.shape[1],
        (action_space.low.reshape(-1), action_space.high.reshape(-1)),
    )
    check_action_bounds(source, actions, low, high, locate)

    env = environment(env_id) if env_id is not None else recorded_environment(metadata)
    if env is None:
        raise DatasetError(
            f"{source}: the metadata records no environment (no env_spec or eval_env_spec "
            "with an id); name the environment the data was recorded in, a gymnasium id such "
            "as 'Hopper-v5' or a D4RL dataset name such as 'hopper-medium-v2' (the --env "
            "option, or env_id=)."
        )
    env_id = env.env_id
    reference = env.reference
    if reference is None and {"ref_min_score", "ref_max_score"} <= metadata.keys():
        reference = ReferenceScores(
            float(metadata["ref_min_score"]), float(metadata["ref_max_score"])
        )

    transitions = Transitions(
        observations=observations,
        actions=actions,
        rewards=rewards,
        next_observations=next_observations,
        terminals=terminals,
        timeouts=timeouts,
    )
    return OfflineDataset(
        transitions=transitions,
        env_id=env_id,
        name=str(metadata.get("dataset_id", data_dir)),
        reference=reference,
        action_low=as_jax_array(low),
        action_high=as_jax_array(high),
        metadata=metadata,
        environment=env,
    )
