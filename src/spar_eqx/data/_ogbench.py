"""Reading OGBench's dataset files for one single-task environment, through `ogbench`'s own
loader (never its downloader).

A source `ogbench:<name>` names a single-task dataset the way OGBench does:
`cube-single-play-singletask-task2-v0` is the `cube-single-play-v0` files (training and
`-val`) relabelled for task 2 of `cube-single-singletask-task2-v0`; without `-task<n>`
(`cube-single-play-singletask-v0`) it is OGBench's default task. OGBench's
`make_env_and_datasets` reads the files, makes the environment and relabels the data with
that task's rewards and masks: the reward is 0 where the task is solved and -1 elsewhere, the
mask is 0 where it is solved (no bootstrap past success), and `terminals` only marks where a
recorded trajectory ends. Here a solved row is a terminal, and a trajectory's end that is not
solved is a timeout.
"""

import importlib.metadata
import os
import re
from pathlib import Path

import numpy as np

from .._environments import OGBENCH, Environment
from ._dataset import OfflineDataset
from ._errors import DatasetError
from ._transitions import Transitions, as_jax_array
from ._validate import action_bounds_from, as_flags, as_float32, check_action_bounds, row_locator

PREFIX = "ogbench:"
# `<env>-<dataset type>-singletask[-task<n>]-v<k>`, as OGBench names single-task datasets.
_NAME = re.compile(
    r"^(?P<env>[a-z0-9-]+)-(?P<kind>[a-z0-9]+)-singletask(?P<task>-task\d+)?-v(?P<v>\d+)$"
)


def ogbench_data_dir() -> Path:
    """Where OGBench's files are looked for: `$OGBENCH_DATA_DIR`, else OGBench's own default
    (`~/.ogbench/data`)."""
    return Path(os.environ.get("OGBENCH_DATA_DIR", "~/.ogbench/data")).expanduser()


def ogbench_files(name: str) -> tuple[str, Path, Path]:
    """`(environment id, training file, validation file)` of OGBench single-task dataset
    `name`; a `DatasetError` when `name` is not one."""
    match = _NAME.match(name)
    if match is None:
        raise DatasetError(
            f"{PREFIX}{name}: not an OGBench single-task dataset name; expected "
            "<env>-<dataset>-singletask[-task<n>]-v<k>, such as "
            "'cube-single-play-singletask-task2-v0' or 'antmaze-large-navigate-singletask-v0'."
        )
    env, kind, task, version = match.group("env", "kind", "task", "v")
    env_id = f"{env}-singletask{task or ''}-v{version}"
    folder = ogbench_data_dir()
    train = folder / f"{env}-{kind}-v{version}.npz"
    return env_id, train, train.with_name(f"{env}-{kind}-v{version}-val.npz")


def load_ogbench(name: str) -> OfflineDataset:
    """Load OGBench single-task dataset `name` (without the `ogbench:` prefix).

    **Arguments:** `name`, e.g. `"cube-single-play-singletask-task2-v0"`.

    **Returns:** an `OfflineDataset` whose environment is OGBench's single-task environment
    (scored by success), with OGBench's version and the task in its metadata.

    **Raises:** `DatasetError` when `ogbench` is not installed, the files are missing (nothing
    is downloaded) or their contents fail a check.
    """
    source = f"{PREFIX}{name}"
    env_id, train, val = ogbench_files(name)
    try:
        OGBENCH.require()
    except ValueError as error:
        raise DatasetError(f"{source}: {error}") from None
    missing = [str(path) for path in (train, val) if not path.is_file()]
    if missing:
        raise DatasetError(
            f"{source}: no such file {' or '.join(missing)}. spar_eqx never downloads: fetch "
            f"them on a machine with network (`ogbench.download_datasets(['{train.stem}'])`) "
            "and copy them there, or set OGBENCH_DATA_DIR to the folder that holds them."
        )
    import ogbench

    try:
        env, data, _ = ogbench.make_env_and_datasets(
            name, dataset_path=str(train), compact_dataset=False
        )
    except Exception as error:  # numpy, zip and OGBench's own checks raise many types
        raise DatasetError(
            f"{source}: cannot read {train} with ogbench (unreadable, corrupt or not this "
            f"environment's data): {type(error).__name__}: {error}"
        ) from None
    try:
        action_space = env.action_space
    finally:
        env.close()

    observations = as_float32(source, "observations", data["observations"], row_locator)
    next_observations = as_float32(
        source, "next_observations", data["next_observations"], row_locator
    )
    actions = as_float32(source, "actions", data["actions"], row_locator)
    rewards = as_float32(source, "rewards", data["rewards"], row_locator)
    solved = as_flags(source, "1 - masks", 1.0 - np.asarray(data["masks"]), row_locator)
    ends = as_flags(source, "terminals", data["terminals"], row_locator)
    low, high = action_bounds_from(
        source, None, actions.shape[1], (action_space.low, action_space.high)
    )
    check_action_bounds(source, actions, low, high, row_locator)
    transitions = Transitions(
        observations=observations,
        actions=actions,
        rewards=rewards,
        next_observations=next_observations,
        terminals=solved,
        timeouts=ends & ~solved,
    )
    environment = Environment(env_id, source=f"the OGBench dataset {name!r}")
    metadata = {
        "ogbench_version": importlib.metadata.version("ogbench"),
        "ogbench_dataset": name,
        "files": [str(train), str(val)],
        "terminals": "rows where the task is solved (OGBench's mask 0)",
        "timeouts": "ends of recorded trajectories where it is not",
    }
    return OfflineDataset(
        transitions=transitions,
        env_id=env_id,
        name=source,
        reference=environment.reference,
        action_low=as_jax_array(low),
        action_high=as_jax_array(high),
        metadata=metadata,
        environment=environment,
    )
