"""Reading a D4RL-format HDF5 file into `Transitions` with h5py (no d4rl, no mujoco-py).

Without a `next_observations` array, the next observation of row `i` is `observations[i + 1]`
inside an episode. Where that is unknown, the row is handled as follows:

- a row that ends in a timeout (or the file's last row, when it is not terminal) is dropped,
  since `observations[i + 1]` already belongs to the next episode; the row before it, when it
  is kept and belongs to the same episode, becomes the episode's last row and gets
  `timeouts = True`;
- a terminal row is kept (its reward matters) and its `next_observations` is a copy of its own
  observation, a placeholder that a TD target never reads because the terminal flag masks
  the bootstrap.
"""

import re
from pathlib import Path
from typing import Any

import numpy as np

from .._environment_names import (
    ANTMAZE_LEVELS,
    D4RL_ANTMAZE_OBS_DIM,
    d4rl_environment,
    environment,
)
from .._environments import ANTMAZE, Environment
from ._dataset import OfflineDataset
from ._errors import DatasetError
from ._transitions import Transitions, as_jax_array
from ._validate import (
    action_bounds_from,
    as_flags,
    as_float32,
    check_action_bounds,
    check_lengths,
    row_locator,
)

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
_ENV_ID_ATTRS = ("env_id", "env_name", "env")


def _python(value: Any) -> Any:
    """An HDF5 attribute or small dataset as a plain Python value."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [_python(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _file_metadata(file: Any) -> dict[str, Any]:
    """File attributes and the scalar entries of a `metadata` group (D4RL stores some there).

    `file` is an open `h5py.File` (h5py is imported where a file is read, not at `import
    spar_eqx`, where it would cost ~11 MB).
    """
    import h5py

    metadata = {str(key): _python(value) for key, value in file.attrs.items()}
    group = file.get("metadata")
    if isinstance(group, h5py.Group):

        def visit(name, item):
            if isinstance(item, h5py.Dataset) and item.size <= 1:
                metadata[f"metadata/{name}"] = _python(item[()])

        group.visititems(visit)
    return metadata


def reconstruct_next_observations(
    observations: np.ndarray, terminals: np.ndarray, timeouts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Next observations for a file without them (see the module docstring).

    **Returns:** `(next_observations, keep, timeouts)`: next observations for every row, the
    rows to keep, and the timeout flags after the dropping rule.
    """
    n = len(observations)
    next_observations = np.empty_like(observations)
    next_observations[:-1] = observations[1:]
    next_observations[terminals] = observations[terminals]
    unknown = timeouts.copy()
    if n:
        unknown[-1] = True
    keep = terminals | ~unknown
    timeouts = timeouts.copy()
    dropped = np.flatnonzero(~keep)
    before = dropped[dropped > 0] - 1
    same_episode = before[keep[before] & ~terminals[before] & ~timeouts[before]]
    timeouts[same_episode] = True
    return next_observations, keep, timeouts


def _file_environment(
    path: Path, source: str, env_id: str | None, metadata: dict[str, Any], obs_dim: int
) -> Environment:
    """The environment of a D4RL-format file: `env_id` when given, else the one an attribute
    names, else the one its file name is the D4RL dataset name of (`pen-cloned-v1.hdf5`).

    D4RL's own AntMaze files are refused: their 29-d observations are the ant's `qpos` and
    `qvel` in D4RL's maze, which gymnasium-robotics' maze mirrors (see the Domains docs).
    """
    if env_id is None:
        env_id = next(
            (metadata[key] for key in _ENV_ID_ATTRS if isinstance(metadata.get(key), str)), None
        )
    if env_id is None and d4rl_environment(path.stem) is not None:
        env_id = path.stem
    if env_id is None:
        raise DatasetError(
            f"{source}: the file records no environment (no attribute among "
            f"{list(_ENV_ID_ATTRS)}) and its name is not a D4RL dataset name; name the "
            "environment it was recorded in, a D4RL dataset name such as 'pen-cloned-v1' or a "
            "gymnasium id such as 'AdroitHandPen-v1' (the --env option, or env_id=)."
        )
    env = environment(env_id)
    if env.domain is ANTMAZE and obs_dim == D4RL_ANTMAZE_OBS_DIM:
        level = re.sub(r"^antmaze-|-v\d+$", "", path.stem.lower())
        level = level if level in ANTMAZE_LEVELS else "umaze-diverse"
        raise DatasetError(
            f"{source}: D4RL's own AntMaze data ({obs_dim}-d observations: the ant's qpos and "
            "qvel in D4RL's maze) cannot be evaluated in gymnasium-robotics' AntMaze, whose "
            "maze is the mirror image of D4RL's (D4RL puts maze row i at y = 4i, "
            "gymnasium-robotics at y = -4i) and whose observations are 31-d. Use Minari's "
            f"D4RL/antmaze/{level}-v1, recorded in gymnasium-robotics (`minari download "
            f"D4RL/antmaze/{level}-v1` on a machine with network, then copy it here)."
        )
    return env


def load_d4rl_file(
    path: Path,
    *,
    source: str,
    env_id: str | None = None,
    action_bounds=None,
) -> OfflineDataset:
    """Load and validate a D4RL-format HDF5 file; `source` names it in error messages."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            present = sorted(file.keys())
            missing = [
                key
                for key in REQUIRED_KEYS
                if key not in file or not isinstance(file[key], h5py.Dataset)
            ]
            if missing:
                raise DatasetError(
                    f"{source}: not a D4RL-format file: missing required key(s) {missing}; "
                    f"present: {present}. Required: {list(REQUIRED_KEYS)} "
                    "(plus optional 'next_observations')."
                )
            keys = list(REQUIRED_KEYS)
            if isinstance(file.get("next_observations"), h5py.Dataset):
                keys.append("next_observations")
            raw = {key: file[key][()] for key in keys}
            metadata = _file_metadata(file)
    except DatasetError:
        raise
    except Exception as error:  # h5py raises OSError, KeyError, RuntimeError on damaged files
        raise DatasetError(
            f"{source}: cannot read the HDF5 file (unreadable or corrupt): "
            f"{type(error).__name__}: {error}"
        ) from None

    for key, value in raw.items():
        vector = key in ("rewards", "terminals", "timeouts")
        if vector and value.ndim == 2 and value.shape[1] == 1:
            raw[key] = value = value[:, 0]
        expected_ndim = 1 if vector else 2
        if value.ndim != expected_ndim:
            shape = "(n,)" if vector else "(n, dim)"
            raise DatasetError(f"{source}: {key} must have shape {shape}, got shape {value.shape}.")
    check_lengths(source, {key: len(value) for key, value in raw.items()})
    if len(raw["observations"]) == 0:
        raise DatasetError(f"{source}: the file holds no transitions.")
    has_next = "next_observations" in raw
    if has_next and raw["next_observations"].shape != raw["observations"].shape:
        raise DatasetError(
            f"{source}: next_observations has shape {raw['next_observations'].shape}, "
            f"but observations has shape {raw['observations'].shape}."
        )

    observations = as_float32(source, "observations", raw["observations"], row_locator)
    actions = as_float32(source, "actions", raw["actions"], row_locator)
    rewards = as_float32(source, "rewards", raw["rewards"], row_locator)
    terminals = as_flags(source, "terminals", raw["terminals"], row_locator)
    timeouts = as_flags(source, "timeouts", raw["timeouts"], row_locator)

    default_bounds = (
        np.asarray(metadata.get("action_low", -1.0)),
        np.asarray(metadata.get("action_high", 1.0)),
    )
    low, high = action_bounds_from(source, action_bounds, actions.shape[1], default_bounds)
    check_action_bounds(source, actions, low, high, row_locator)

    if has_next:
        next_observations = as_float32(
            source, "next_observations", raw["next_observations"], row_locator
        )
        keep = np.ones(len(observations), dtype=bool)
        metadata["next_observations"] = "stored in the file"
    else:
        next_observations, keep, timeouts = reconstruct_next_observations(
            observations, terminals, timeouts
        )
        metadata["next_observations"] = (
            "reconstructed: observations[i + 1] inside episodes; terminal rows repeat their "
            "own observation; rows ending in a timeout or the end of the file were dropped"
        )
    metadata["dropped_transitions"] = int((~keep).sum())
    if not keep.any():
        raise DatasetError(
            f"{source}: no transition has a known next observation (the file has no "
            "next_observations and every row ends an episode by timeout)."
        )

    env = _file_environment(path, source, env_id, metadata, observations.shape[1])

    transitions = Transitions(
        observations=observations[keep],
        actions=actions[keep],
        rewards=rewards[keep],
        next_observations=next_observations[keep],
        terminals=terminals[keep],
        timeouts=timeouts[keep],
    )
    return OfflineDataset(
        transitions=transitions,
        env_id=env.env_id,
        name=str(path),
        reference=env.reference,
        environment=env,
        action_low=as_jax_array(low),
        action_high=as_jax_array(high),
        metadata=metadata,
    )
