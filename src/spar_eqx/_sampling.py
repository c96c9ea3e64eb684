"""The training data of a learner outside the trainer: a dataset's transitions as a normalised
`TrainingBatch`, and minibatches drawn from it the way the trainer draws them."""

import dataclasses

import jax
import jax.random as jr
from jaxtyping import Array, Int, PRNGKeyArray

from ._learner import TrainingBatch
from .data._normalize import ObservationNormalizer
from .data._transitions import Transitions


def training_data(transitions: Transitions, normalizer: ObservationNormalizer) -> TrainingBatch:
    """Every row of `transitions` as a learner reads it: observations and next observations
    normalised, next actions added (`TrainingBatch.from_transitions`), as the trainer prepares
    a dataset (after any reward transform).

    **Arguments:** `transitions`, a dataset's transitions (e.g. `load_dataset(...).transitions`);
    `normalizer`, usually `ObservationNormalizer.from_transitions(transitions)`.

    **Returns:** a `TrainingBatch` of all `n` rows, to draw minibatches from with
    `sample_batch`.
    """
    # Row by row (vmap), as the trainer normalises: one broadcast over the whole array can
    # round differently under XLA's CPU fusions.
    rows = jax.vmap(normalizer)
    normalised = dataclasses.replace(
        transitions,
        observations=rows(transitions.observations),
        next_observations=rows(transitions.next_observations),
    )
    return TrainingBatch.from_transitions(normalised)


def sample_indices(key: PRNGKeyArray, rows: int, batch_size: int) -> Int[Array, " batch"]:
    """`batch_size` row indices drawn uniformly, with replacement, from `range(rows)`: the
    trainer's draw for every update (`run_chunk`), so the same key picks the same rows."""
    return jr.randint(key, (batch_size,), 0, rows)


def sample_batch(data: TrainingBatch, batch_size: int, *, key: PRNGKeyArray) -> TrainingBatch:
    """A minibatch of `batch_size` rows of `data`, drawn uniformly with replacement (jittable).

    **Arguments:**

    - `data`: all the rows, e.g. from `training_data`.
    - `batch_size`: rows to draw (Table 7: 256).
    - `key`: the draw's key; the trainer draws an update's rows with `sample_indices` on the
      first half of `jr.split` of the update's key.

    **Returns:** a `TrainingBatch` of `batch_size` rows, what a learner's `update` takes.
    """
    index = sample_indices(key, data.observations.shape[0], batch_size)
    return jax.tree_util.tree_map(lambda x: x[index], data)
