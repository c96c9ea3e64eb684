"""The training data's fingerprint: the same for the same data, wherever it was loaded from,
and different for any change to it; dataset paths stored absolute."""

import dataclasses
import os

import numpy as np

from spar_eqx._train._fingerprint import (
    absolute_dataset,
    dataset_problem,
    transitions_fingerprint,
)
from spar_eqx.data import Transitions


def _transitions(n: int = 5) -> Transitions:
    rng = np.random.default_rng(0)
    return Transitions(
        observations=rng.normal(size=(n, 3)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        next_observations=rng.normal(size=(n, 3)).astype(np.float32),
        terminals=np.zeros(n, bool),
        timeouts=np.zeros(n, bool),
    )


def test_the_same_data_has_the_same_fingerprint():
    assert transitions_fingerprint(_transitions()) == transitions_fingerprint(_transitions())


def test_any_change_to_the_data_changes_the_fingerprint():
    base = _transitions()
    reference = transitions_fingerprint(base)
    rewards = np.array(base.rewards)
    rewards[3] += 1e-3
    terminals = np.array(base.terminals)
    terminals[0] = True
    for changed in (
        dataclasses.replace(base, rewards=rewards),
        dataclasses.replace(base, terminals=terminals),
        _transitions(4),
        dataclasses.replace(base, observations=np.asarray(base.observations)[::-1]),
    ):
        assert transitions_fingerprint(changed) != reference


def test_a_mismatch_names_both_fingerprints(tmp_path):
    assert dataset_problem("abc", "abc", tmp_path, "d.hdf5") is None
    assert dataset_problem(None, "abc", tmp_path, "d.hdf5") is None
    message = dataset_problem("abc", "xyz", tmp_path / "run", "d.hdf5")
    assert "abc" in message and "xyz" in message and "d.hdf5" in message


def test_dataset_paths_become_absolute_and_ids_stay(tmp_path, monkeypatch):
    (tmp_path / "data.hdf5").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert absolute_dataset("data.hdf5") == os.path.join(tmp_path, "data.hdf5")
    assert absolute_dataset("default") == "default"
    assert absolute_dataset("mujoco/hopper/medium-v0") == "mujoco/hopper/medium-v0"
