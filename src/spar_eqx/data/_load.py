"""`load_dataset`: one entry point for Minari ids, Minari folders, D4RL HDF5 files, OGBench
datasets and "default"."""

import os
import warnings
from pathlib import Path

from jaxtyping import ArrayLike

from ._d4rl import load_d4rl_file
from ._dataset import OfflineDataset
from ._errors import DatasetError
from ._minari import find_minari_data_dir, load_minari_folder
from ._ogbench import PREFIX as OGBENCH_PREFIX, load_ogbench

# The embedded default dataset: one Minari dataset folder (`<id>/data/metadata.json`) below here.
_DEFAULT_DIR = Path(__file__).parent / "default"

_HDF5_SUFFIXES = (".hdf5", ".h5", ".he5")

_OFFLINE_HINT = (
    "To work offline, generate a local dataset with "
    "`spar-eqx collect --env Hopper-v5 --level medium-replay --out DIR` and pass the folder "
    "it prints (or set MINARI_DATASETS_PATH=DIR and pass the id hopper/medium-replay-v0), "
    'or use the dataset shipped with spar_eqx, "default".'
)


def default_dataset_path() -> Path:
    """The folder of the embedded default dataset (a Minari dataset folder).

    **Returns:** the `<id>` folder (holding `data/metadata.json`) under
    `spar_eqx/data/default/`.

    **Raises:** `DatasetError` when there is no such folder, or more than one.
    """
    root = _DEFAULT_DIR
    found = []
    if root.is_dir():
        found = sorted(
            {
                meta.parent.parent
                for meta in root.rglob("metadata.json")
                if meta.parent.name == "data"
                and not any(part.startswith(".") for part in meta.relative_to(root).parts)
            }
        )
    if not found:
        raise DatasetError(
            f"The embedded default dataset is not installed: no Minari dataset folder "
            f"(<id>/data/metadata.json) under {root}. Reinstall spar_eqx, or generate a "
            "dataset with `spar-eqx collect --env Hopper-v5 --level medium-replay --out DIR` "
            "and pass the folder it prints to load_dataset."
        )
    if len(found) > 1:
        listed = ", ".join(str(path) for path in found)
        raise DatasetError(
            f"The embedded default dataset is ambiguous: {len(found)} Minari dataset folders "
            f"under {root} ({listed}); there must be exactly one."
        )
    return found[0]


def _minari_root() -> Path:
    """Minari's local dataset root, resolved the way Minari resolves it."""
    from minari.storage.datasets_root_dir import get_dataset_path

    return Path(get_dataset_path())


def _local_minari_ids() -> list[str]:
    from minari import list_local_datasets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Minari warns about each misconfigured folder
        try:
            return sorted(list_local_datasets())
        except Exception:
            return []


def _missing_id_error(dataset_id: str, problem: str) -> DatasetError:
    root = _minari_root()
    env = os.environ.get("MINARI_DATASETS_PATH")
    env_text = (
        f"MINARI_DATASETS_PATH={env}" if env is not None else "MINARI_DATASETS_PATH is not set"
    )
    local = _local_minari_ids()
    local_text = f"local datasets there: {local[:20]}" if local else "no local datasets there"
    return DatasetError(
        f"{dataset_id!r}: no file or folder at that path, and {problem}. Minari looks in "
        f"{root / dataset_id} (its root is {root}; {env_text}; {local_text}). spar_eqx never "
        f"downloads: fetch the dataset on a machine with network (`minari download "
        f"{dataset_id}`) and copy it under the root. {_OFFLINE_HINT}"
    )


def load_dataset(
    source: str | os.PathLike,
    *,
    env_id: str | None = None,
    action_bounds: tuple[ArrayLike, ArrayLike] | None = None,
) -> OfflineDataset:
    """Load, validate and return one offline dataset.

    `source` is one of:

    - `"default"`: the dataset embedded in spar_eqx (see `default_dataset_path`);
    - a path to a Minari dataset folder: the `<id>` folder holding `data/`, or that `data/`
      folder itself (holding `metadata.json` and the episode data);
    - a path to a D4RL-format HDF5 file (keys `observations`, `actions`, `rewards`,
      `terminals`, `timeouts`, optional `next_observations`);
    - a local Minari dataset id, such as `"mujoco/hopper/medium-v0"`, looked up under
      `MINARI_DATASETS_PATH` or Minari's default folder. Nothing is downloaded;
    - `"ogbench:<single-task dataset>"`, such as `"ogbench:cube-single-play-singletask-task2-v0"`:
      OGBench's files for that environment and task, read by `ogbench` from
      `OGBENCH_DATA_DIR` (default `~/.ogbench/data`). Nothing is downloaded.

    Every array is checked (lengths, finite values, actions inside the action space to 1e-6)
    before anything is returned.

    **Arguments:**

    - `source`: as above.
    - `env_id`: the environment id; overrides the one recorded in the data, and is required
      for a D4RL file that records none (an `env_id`, `env_name` or `env` attribute).
    - `action_bounds`: `(low, high)` scalars or `(act_dim,)` arrays; overrides the bounds of
      the recorded action space (Minari) or the default `[-1, 1]` (D4RL files, where every
      D4RL task has actions in `[-1, 1]`).

    **Returns:** an `OfflineDataset`.

    **Raises:** `DatasetError` naming the source and the problem.
    """
    if isinstance(source, str) and source.startswith(OGBENCH_PREFIX):
        if env_id is not None or action_bounds is not None:
            raise DatasetError(
                f"{source}: an OGBench dataset names its environment and action space itself; "
                "give neither an environment nor action bounds with it."
            )
        return load_ogbench(source.removeprefix(OGBENCH_PREFIX))
    if isinstance(source, str) and source == "default":
        folder = default_dataset_path()
        return load_minari_folder(
            find_minari_data_dir(folder),
            source=f"default dataset ({folder})",
            env_id=env_id,
            action_bounds=action_bounds,
        )
    path = Path(source)
    if path.is_dir():
        data_dir = find_minari_data_dir(path)
        if data_dir is None:
            raise DatasetError(
                f"{path}: neither a Minari dataset folder nor an HDF5 file: the folder holds "
                f"no {Path('data', 'metadata.json')} and no metadata.json. Pass a Minari "
                "dataset folder (<id>/ with data/metadata.json), its data/ folder, or a "
                "D4RL-format .hdf5 file."
            )
        return load_minari_folder(
            data_dir, source=str(path), env_id=env_id, action_bounds=action_bounds
        )
    if path.is_file():
        import h5py  # here, not at module level: it costs ~11 MB at `import spar_eqx`

        if path.suffix.lower() in _HDF5_SUFFIXES or h5py.is_hdf5(path):
            return load_d4rl_file(
                path, source=str(path), env_id=env_id, action_bounds=action_bounds
            )
        raise DatasetError(
            f"{path}: neither a Minari dataset folder nor an HDF5 file. Pass a Minari "
            "dataset folder, a D4RL-format .hdf5 file or a local Minari dataset id."
        )
    if path.exists():
        raise DatasetError(f"{path}: neither a folder nor a regular file.")
    if not isinstance(source, str) or path.suffix.lower() in _HDF5_SUFFIXES:
        raise DatasetError(f"{path}: no such file or folder.")
    return _load_minari_id(source, env_id=env_id, action_bounds=action_bounds)


def _load_minari_id(dataset_id: str, *, env_id, action_bounds) -> OfflineDataset:
    from minari.dataset.minari_dataset import parse_dataset_id

    looks_like_path = dataset_id.startswith((".", "/", "~")) or dataset_id.endswith("/")
    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError):
        looks_like_path = True
    if looks_like_path:  # nothing to download: a path that is simply not there
        raise DatasetError(
            f"{dataset_id}: no such file or folder (nor a Minari dataset id, "
            "(namespace/)name-v<version>). Check the path; a dataset is a Minari dataset "
            "folder, a D4RL-format .hdf5 file, a Minari id, ogbench:<dataset> or 'default'."
        )
    folder = _minari_root() / dataset_id
    data_dir = find_minari_data_dir(folder)
    if data_dir is None:
        raise _missing_id_error(dataset_id, "no local Minari dataset with that id")
    return load_minari_folder(
        data_dir,
        source=f"Minari dataset {dataset_id!r} ({folder})",
        env_id=env_id,
        action_bounds=action_bounds,
    )
