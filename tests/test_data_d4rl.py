"""Loading D4RL-format HDF5 files: counts, next observations, dropping rule, and bad input."""

import re
import tempfile
from pathlib import Path

import h5py
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from spar_eqx import reference_scores
from spar_eqx.data import DatasetError, episode_returns, load_dataset

OBS_DIM, ACT_DIM = 3, 2


def make_arrays(layout, seed=0):
    """Arrays for episodes `[(length, end), ...]`, end in terminal/timeout/none.

    `observations[i, 0] == i` so every row can be traced back.
    """
    rng = np.random.default_rng(seed)
    n = sum(length for length, _ in layout)
    observations = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
    observations[:, 0] = np.arange(n)
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    row = 0
    for length, end in layout:
        row += length
        terminals[row - 1] = end == "terminal"
        timeouts[row - 1] = end == "timeout"
    return {
        "observations": observations,
        "actions": rng.uniform(-1, 1, size=(n, ACT_DIM)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
    }


def write_h5(path, arrays, attrs=None):
    with h5py.File(path, "w") as file:
        for key, value in arrays.items():
            file.create_dataset(key, data=value)
        file.attrs.update({"env_id": "hopper-medium-v2"} if attrs is None else attrs)
    return path


LAYOUT = [(4, "terminal"), (5, "timeout"), (3, "terminal"), (4, "timeout"), (3, "none")]


def test_file_with_next_observations_keeps_every_row(tmp_path):
    arrays = make_arrays(LAYOUT)
    arrays["next_observations"] = arrays["observations"] + 0.5
    dataset = load_dataset(write_h5(tmp_path / "d.hdf5", arrays))
    t = dataset.transitions
    assert t.num_transitions == 19 and (t.obs_dim, t.act_dim) == (OBS_DIM, ACT_DIM)
    assert t.observations.dtype == np.float32 and t.terminals.dtype == np.bool_
    for name in ("observations", "actions", "rewards", "next_observations"):
        np.testing.assert_array_equal(np.asarray(getattr(t, name)), arrays[name])
    np.testing.assert_array_equal(np.asarray(t.terminals), arrays["terminals"])
    np.testing.assert_array_equal(np.asarray(t.timeouts), arrays["timeouts"])
    assert dataset.metadata["dropped_transitions"] == 0
    # The recorded D4RL name stands for gymnasium's Hopper (D4RL's mujoco-py Hopper-v3).
    assert dataset.env_id == "Hopper-v5"
    assert "hopper-medium-v2" in dataset.environment.source
    assert dataset.reference == reference_scores("hopper")
    np.testing.assert_array_equal(np.asarray(dataset.action_low), -np.ones(ACT_DIM))
    np.testing.assert_array_equal(np.asarray(dataset.action_high), np.ones(ACT_DIM))


def test_file_without_next_observations_drops_timeout_ends(tmp_path):
    arrays = make_arrays(LAYOUT)
    dataset = load_dataset(write_h5(tmp_path / "d.h5", arrays))
    t = dataset.transitions
    # Dropped: the timeout rows 8 and 15, and the last row 18 (end of file, not terminal).
    kept = np.setdiff1d(np.arange(19), [8, 15, 18])
    np.testing.assert_array_equal(np.asarray(t.observations)[:, 0], kept)
    assert dataset.metadata["dropped_transitions"] == 3
    next0 = np.asarray(t.next_observations)[:, 0]
    # Inside episodes: the next row's observation; the rows before a dropped timeout now end
    # their episode by timeout, with the dropped row's observation as next observation.
    np.testing.assert_array_equal(next0[4:7], [5, 6, 7])
    np.testing.assert_array_equal(np.asarray(t.timeouts), np.isin(kept, [7, 14, 17]))
    np.testing.assert_array_equal(next0[kept == 7], [8])
    # Terminal rows keep their own observation as a placeholder next observation.
    np.testing.assert_array_equal(np.asarray(t.terminals), np.isin(kept, [3, 11]))
    np.testing.assert_array_equal(next0[kept == 3], [3])
    assert len(episode_returns(t)) == 5


def test_env_id_explicit_overrides_file_and_is_required_without_one(tmp_path):
    arrays = make_arrays(LAYOUT)
    path = write_h5(tmp_path / "d.hdf5", arrays, attrs={"env_name": "walker2d-medium-v2"})
    assert load_dataset(path).env_id == "Walker2d-v5"
    assert load_dataset(path, env_id="Hopper-v5").reference == reference_scores("Hopper-v5")
    bare = write_h5(tmp_path / "bare.hdf5", arrays, attrs={})
    with pytest.raises(DatasetError, match=re.escape(str(bare)) + ".*records no environment"):
        load_dataset(bare)
    assert load_dataset(bare, env_id="pen-human-v1").reference == reference_scores("pen")
    # A file named after its D4RL dataset needs no attribute and no env_id.
    named = write_h5(tmp_path / "walker2d-medium-replay-v2.hdf5", arrays, attrs={})
    assert load_dataset(named).env_id == "Walker2d-v5"


def test_flag_and_reward_layout_variants(tmp_path):
    arrays = make_arrays(LAYOUT)
    arrays["rewards"] = arrays["rewards"][:, None]
    arrays["terminals"] = arrays["terminals"].astype(np.float32)
    arrays["observations"] = arrays["observations"].astype(np.float64)
    t = load_dataset(write_h5(tmp_path / "d.hdf5", arrays)).transitions
    assert t.rewards.shape == (16,) and t.terminals.dtype == np.bool_
    assert t.observations.dtype == np.float32


def test_actions_on_the_bound_and_within_tolerance_are_legal(tmp_path):
    arrays = make_arrays(LAYOUT)
    arrays["actions"][0] = [1.0, -1.0]
    arrays["actions"][1] = [1.0 + 5e-7, -1.0 - 5e-7]
    t = load_dataset(write_h5(tmp_path / "d.hdf5", arrays)).transitions
    assert float(t.actions[0, 0]) == 1.0 and float(t.actions[0, 1]) == -1.0


def test_action_bounds_argument(tmp_path):
    arrays = make_arrays(LAYOUT)
    arrays["actions"] *= 2.0
    path = write_h5(tmp_path / "d.hdf5", arrays)
    with pytest.raises(DatasetError, match="leave the action space"):
        load_dataset(path)
    dataset = load_dataset(path, action_bounds=(-2.0, np.full(ACT_DIM, 2.0)))
    np.testing.assert_array_equal(np.asarray(dataset.action_high), [2.0, 2.0])


# --- bad input --------------------------------------------------------------------------


def test_missing_keys_lists_missing_and_present(tmp_path):
    arrays = make_arrays(LAYOUT)
    del arrays["timeouts"], arrays["rewards"]
    path = write_h5(tmp_path / "d.hdf5", arrays)
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    message = str(info.value)
    assert str(path) in message
    assert "missing required key(s) ['rewards', 'timeouts']" in message
    assert "present: ['actions', 'observations', 'terminals']" in message


def test_mismatched_lengths_name_arrays_and_lengths(tmp_path):
    arrays = make_arrays(LAYOUT)
    arrays["actions"] = arrays["actions"][:-2]
    path = write_h5(tmp_path / "d.hdf5", arrays)
    with pytest.raises(DatasetError, match=re.escape(str(path)) + ".*mismatched lengths") as info:
        load_dataset(path)
    assert "observations has 19" in str(info.value) and "actions has 17" in str(info.value)


@pytest.mark.parametrize(
    "name, index, value, where",
    [
        ("rewards", (4,), np.nan, "rewards has a non-finite value nan, at row 4"),
        ("observations", (2, 1), np.inf, "observations has a non-finite value inf, at row 2, "),
        ("actions", (9, 0), -np.inf, "actions has a non-finite value -inf, at row 9, dimension 0"),
        (
            "next_observations",
            (6, 2),
            np.nan,
            "next_observations has a non-finite value nan, at row 6, dimension 2",
        ),
    ],
)
def test_non_finite_values_name_array_and_first_index(tmp_path, name, index, value, where):
    arrays = make_arrays(LAYOUT)
    arrays["next_observations"] = arrays["observations"].copy()
    arrays[name][index] = value
    arrays[name][(index[0] + 3, *index[1:])] = value  # a later bad value is not the one named
    path = write_h5(tmp_path / "d.hdf5", arrays)
    with pytest.raises(DatasetError, match=re.escape(str(path))) as info:
        load_dataset(path)
    assert where in str(info.value)


def test_float64_overflow_is_caught(tmp_path):
    arrays = make_arrays(LAYOUT)
    arrays["rewards"] = arrays["rewards"].astype(np.float64)
    arrays["rewards"][3] = 1e300
    expected = "rewards has a value too large for float32, 1e+300, at row 3"
    with pytest.raises(DatasetError, match=re.escape(expected)):
        load_dataset(write_h5(tmp_path / "d.hdf5", arrays))


@pytest.mark.parametrize(
    "index, value, bound",
    [((7, 1), -1.25, "lower bound low[1] = -1"), ((3, 0), 1.5, "upper bound high[0] = 1")],
)
def test_actions_outside_the_space_name_bound_value_and_index(tmp_path, index, value, bound):
    arrays = make_arrays(LAYOUT)
    arrays["actions"][index] = value
    arrays["actions"][10, 0] = 1.01  # out of range too, but not the worst
    path = write_h5(tmp_path / "d.hdf5", arrays)
    with pytest.raises(DatasetError, match=re.escape(str(path))) as info:
        load_dataset(path)
    message = str(info.value)
    assert f"the worst value, {value:g} at row {index[0]}, dimension {index[1]}" in message
    assert bound in message and "2 value(s) out of range" in message


def test_non_binary_flags_are_refused(tmp_path):
    arrays = make_arrays(LAYOUT)
    arrays["timeouts"] = arrays["timeouts"].astype(np.int64)
    arrays["timeouts"][5] = 2
    with pytest.raises(DatasetError, match=r"timeouts must be boolean \(or 0/1\), got 2 at row 5"):
        load_dataset(write_h5(tmp_path / "d.hdf5", arrays))


def test_bad_shapes_are_refused(tmp_path):
    arrays = make_arrays(LAYOUT)
    arrays["actions"] = arrays["actions"][:, 0]
    with pytest.raises(DatasetError, match=r"actions must have shape \(n, dim\)"):
        load_dataset(write_h5(tmp_path / "d.hdf5", arrays))


def test_corrupt_and_truncated_files(tmp_path):
    garbage = tmp_path / "garbage.hdf5"
    garbage.write_bytes(b"this is not an HDF5 file" * 10)
    with pytest.raises(DatasetError, match=re.escape(str(garbage)) + ".*unreadable or corrupt"):
        load_dataset(garbage)
    good = write_h5(tmp_path / "good.hdf5", make_arrays(LAYOUT * 50))
    truncated = tmp_path / "truncated.hdf5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DatasetError, match=re.escape(str(truncated)) + ".*unreadable or corrupt"):
        load_dataset(truncated)


def test_paths_that_are_not_datasets(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DatasetError, match=re.escape(str(text)) + ": neither a Minari"):
        load_dataset(text)
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path)) + ": neither a Minari"):
        load_dataset(tmp_path)
    missing = tmp_path / "missing.hdf5"
    with pytest.raises(DatasetError, match=re.escape(str(missing)) + ": no such file"):
        load_dataset(missing)
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "missing-folder")


# --- property: any episode layout --------------------------------------------------------

ends = st.sampled_from(["terminal", "timeout"])
layouts = st.tuples(
    st.lists(st.tuples(st.integers(1, 5), ends), min_size=0, max_size=6),
    st.tuples(st.integers(1, 5), st.sampled_from(["terminal", "timeout", "none"])),
)


@given(layout=layouts, stored_next=st.booleans(), seed=st.integers(0, 2**16))
def test_property_counts_next_observations_and_dropping(layout, stored_next, seed):
    layout = [*layout[0], layout[1]]
    arrays = make_arrays(layout, seed)
    obs = arrays["observations"]
    n = len(obs)
    if stored_next:
        arrays["next_observations"] = obs + 0.5
    if not stored_next and all(end != "terminal" and length == 1 for length, end in layout):
        with tempfile.TemporaryDirectory() as folder:
            with pytest.raises(DatasetError, match="no transition has a known next observation"):
                load_dataset(write_h5(Path(folder) / "d.hdf5", arrays))
        return
    with tempfile.TemporaryDirectory() as folder:
        t = load_dataset(write_h5(Path(folder) / "d.hdf5", arrays)).transitions

    # Which original rows survive: every row if next observations are stored; otherwise all
    # but the last row of each episode that does not end in a terminal.
    keep = np.ones(n, bool)
    if not stored_next:
        row = 0
        for length, end in layout:
            row += length
            keep[row - 1] = end == "terminal"
    rows = np.asarray(t.observations)[:, 0].astype(int)
    np.testing.assert_array_equal(rows, np.flatnonzero(keep))
    assert t.num_transitions == keep.sum()
    np.testing.assert_array_equal(np.asarray(t.rewards), arrays["rewards"][keep])
    np.testing.assert_array_equal(np.asarray(t.actions), arrays["actions"][keep])
    np.testing.assert_array_equal(np.asarray(t.terminals), arrays["terminals"][keep])

    next_obs = np.asarray(t.next_observations)
    terminals, timeouts = np.asarray(t.terminals), np.asarray(t.timeouts)
    if stored_next:
        np.testing.assert_array_equal(next_obs, obs + 0.5)
        np.testing.assert_array_equal(timeouts, arrays["timeouts"])
        return
    for j, row in enumerate(rows):
        if terminals[j]:
            np.testing.assert_array_equal(next_obs[j], obs[row])  # documented placeholder
        else:
            np.testing.assert_array_equal(next_obs[j], obs[row + 1])  # the true next state
            if not timeouts[j]:
                assert rows[j + 1] == row + 1  # inside an episode: the next row follows
    # Every episode with a kept row still ends (terminal or timeout), except possibly a final
    # one that ran to the end of the data; so the episode count is unchanged.
    kept_episodes = sum(1 for length, end in layout if end == "terminal" or length > 1)
    assert len(episode_returns(t)) == kept_episodes
