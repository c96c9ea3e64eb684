"""The chunk runner's draws: what batch and key each run's update sees at each step.

A probe learner reports, every step, the rows its batch holds (the data's rewards are the row
numbers) and a number drawn from its update key; the expected values are computed here one
step at a time from the documented recipe, so drawing them all before the scan (as
`run_chunk` does) must give the same bits.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Int

from spar_eqx import Learner, Phase, TrainingBatch
from spar_eqx._train._chunk import init_states, run_chunk, stack
from spar_eqx.data import Transitions

ROWS, BATCH, STEPS = 50, 4, 6


class ProbeState(eqx.Module):
    step: Int[Array, ""]


class Probe(Learner):
    """Changes nothing; reports its batch's row numbers and a uniform draw from its key."""

    def init(self, key, previous=None):
        return ProbeState(jnp.zeros((), jnp.int32))

    def phases(self, steps):
        return (Phase("probe", self.update, steps),)

    def update(self, state, batch, key):
        rows = batch.rewards.astype(jnp.int32)
        return ProbeState(state.step + 1), {"rows": rows, "key_draw": jr.uniform(key)}

    def policies(self, state, normalizer):
        return {}


def _data() -> TrainingBatch:
    zeros = jnp.zeros((ROWS, 2))
    flags = jnp.zeros((ROWS,), bool)
    rows = jnp.arange(ROWS, dtype=jnp.float32)
    return TrainingBatch.from_transitions(
        Transitions(zeros, jnp.zeros((ROWS, 1)), rows, zeros, flags, flags)
    )


@pytest.mark.parametrize("runs", [3, 1])  # one run takes the unbatched path
def test_each_step_sees_the_batch_and_key_its_own_key_draws(runs):
    learners = stack([Probe()] * runs)
    keys = jax.vmap(jr.key)(jnp.arange(runs) + 11)
    states = init_states(learners, keys)
    out, metrics = run_chunk(
        learners, states, _data(), keys,
        stage_steps=STEPS, phase=0, num_steps=STEPS, batch_size=BATCH,
    )  # fmt: skip
    assert int(out.step) == STEPS
    assert metrics["rows"].shape == (STEPS, runs, BATCH)
    for run in range(runs):
        step_keys = jr.split(keys[run], STEPS)
        for t in range(STEPS):
            index_key, update_key = jr.split(step_keys[t])
            rows = jr.randint(index_key, (BATCH,), 0, ROWS)
            np.testing.assert_array_equal(metrics["rows"][t, run], rows)
            assert metrics["key_draw"][t, run] == jr.uniform(update_key)
    # Different runs and different steps draw different batches.
    flat = np.asarray(metrics["rows"]).reshape(STEPS * runs, BATCH)
    assert len({tuple(r) for r in flat}) > STEPS * runs // 2
