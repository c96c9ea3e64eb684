"""What a run knows of its data: a content fingerprint of the transitions it trained on.

A run folder names its dataset by path or id, and a path can come to hold other data (a
file swapped, a collection redone). The fingerprint, a SHA-256 over every array of the
transitions as trained (their names, dtypes, shapes and bytes), is recorded in the run's
checkpoints and `results.json`; `--resume` and `spar-eqx evaluate` compare it with the data
they load, and refuse a mismatch with both fingerprints named.
"""

import hashlib
import os
from pathlib import Path

import numpy as np

from ..data import OfflineDataset, Transitions

_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")


def transitions_fingerprint(transitions: Transitions) -> str:
    """A short hex SHA-256 of `transitions`' arrays (names, dtypes, shapes and bytes): equal
    for the same data, whatever file or id it was loaded from."""
    digest = hashlib.sha256()
    for name in _FIELDS:
        array = np.ascontiguousarray(np.asarray(getattr(transitions, name)))
        digest.update(f"{name}:{array.dtype.str}{list(array.shape)}\n".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:24]


def dataset_fingerprint(dataset: OfflineDataset) -> str:
    """`transitions_fingerprint` of the dataset's transitions."""
    return transitions_fingerprint(dataset.transitions)


def dataset_problem(recorded: str | None, current: str, where: Path, dataset: str) -> str | None:
    """Why a run recorded at `where` with fingerprint `recorded` cannot go on with the data
    `dataset` now holds (fingerprint `current`); None when they agree, or `where` recorded
    none."""
    if recorded is None or recorded == current:
        return None
    return (
        f"{where} was trained on data with fingerprint {recorded}, but --dataset {dataset} now "
        f"holds data with fingerprint {current}: the dataset changed since the run was "
        "trained. Put back the data it was trained on, or train a new run on this data."
    )


def absolute_dataset(dataset: str) -> str:
    """`dataset` as an absolute path when it names an existing file or folder (relative to
    the working directory), so the run can be resumed or evaluated from anywhere; ids such
    as `"default"` or a Minari id are returned unchanged."""
    if dataset == "default" or not Path(dataset).expanduser().exists():
        return dataset
    return os.path.abspath(Path(dataset).expanduser())
