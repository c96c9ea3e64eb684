"""`training_data` and `sample_batch`: a learner's data outside the trainer, the same rows and
draws as the trainer's."""

import jax.random as jr
import numpy as np

import spar_eqx
from spar_eqx import RunConfig, TrainingBatch, sample_batch, training_data
from spar_eqx._train._data import prepare

from .helpers import tree_equal_bits


def test_training_data_is_what_the_trainer_trains_on(hopper_file):
    prepared = prepare(
        RunConfig(algo="bc", dataset=str(hopper_file), reward_transform="none"), "spar"
    )
    data = training_data(prepared.dataset.transitions, prepared.normalizer)
    assert isinstance(data, TrainingBatch)
    assert tree_equal_bits(data, prepared.data)


def test_sample_batch_draws_the_rows_the_trainer_draws(hopper_file):
    prepared = prepare(
        RunConfig(algo="bc", dataset=str(hopper_file), reward_transform="none"), "spar"
    )
    data, key = prepared.data, jr.key(7)
    batch = sample_batch(data, 32, key=key)
    rows = np.asarray(jr.randint(key, (32,), 0, data.observations.shape[0]))
    np.testing.assert_array_equal(batch.observations, np.asarray(data.observations)[rows])
    np.testing.assert_array_equal(batch.next_actions, np.asarray(data.next_actions)[rows])
    assert batch.actions.shape == (32, 3) and batch.rewards.shape == (32,)
    assert not np.array_equal(sample_batch(data, 32, key=jr.key(8)).actions, batch.actions)
    # A learner's update takes it as it is.
    bc = spar_eqx.BC(spar_eqx.BCConfig(width=16), obs_dim=11, act_dim=3)
    _, metrics = bc.update(bc.init(jr.key(0)), batch, jr.key(1))
    assert np.isfinite(metrics["bc_loss"])
