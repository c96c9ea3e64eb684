"""The device-resident replay buffer SAC learns from: a fixed-capacity ring of transitions,
written and sampled by pure functions."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int, PRNGKeyArray


class SACBatch(eqx.Module):
    """A batch of transitions; `done` is 1 at terminations only (never at truncations).

    **Fields:** `obs`, `action`, `reward`, `next_obs` and `done` (float32, 0 or 1), one row
    per transition.
    """

    obs: Float[Array, "batch obs_dim"]
    action: Float[Array, "batch act_dim"]
    reward: Float[Array, " batch"]
    next_obs: Float[Array, "batch obs_dim"]
    done: Float[Array, " batch"]


class ReplayBuffer(eqx.Module):
    """A fixed-capacity ring buffer of transitions held as device arrays.

    `size` counts the valid rows (up to the capacity); `position` is where the next row goes.

    **Fields:** `data`, a `SACBatch` of `capacity` rows; `size` and `position`, int32
    scalars.
    """

    data: SACBatch
    size: Int[Array, ""]
    position: Int[Array, ""]

    @property
    def capacity(self) -> int:
        """The number of rows the buffer holds (static: its arrays' leading size)."""
        return self.data.reward.shape[0]


def buffer_init(capacity: int, obs_dim: int, act_dim: int) -> ReplayBuffer:
    """An empty `ReplayBuffer` of `capacity` rows (float32, zero-filled).

    **Arguments:** `capacity`, the number of rows (positive; `SACConfig.buffer_size`);
    `obs_dim`, `act_dim`, the sizes of observations and actions.

    **Returns:** a buffer with `size = position = 0`.
    """
    if capacity < 1:
        raise ValueError(f"a replay buffer needs a positive capacity, got {capacity}.")
    zeros = lambda *shape: jnp.zeros(shape, jnp.float32)
    data = SACBatch(
        zeros(capacity, obs_dim),
        zeros(capacity, act_dim),
        zeros(capacity),
        zeros(capacity, obs_dim),
        zeros(capacity),
    )
    return ReplayBuffer(data, jnp.array(0, jnp.int32), jnp.array(0, jnp.int32))


@eqx.filter_jit
def buffer_add(buffer: ReplayBuffer, transitions: SACBatch) -> ReplayBuffer:
    """`buffer` with `transitions` written at its position (wrapping around past the capacity).

    **Arguments:** `buffer`, the buffer; `transitions`, a batch of at most `capacity` rows.

    **Returns:** the updated buffer (a new PyTree; nothing is mutated).
    """
    n = transitions.reward.shape[0]
    if n > buffer.capacity:
        raise ValueError(f"cannot add {n} transitions to a buffer of capacity {buffer.capacity}.")
    rows = (buffer.position + jnp.arange(n, dtype=jnp.int32)) % buffer.capacity
    data = jax.tree_util.tree_map(lambda old, new: old.at[rows].set(new), buffer.data, transitions)
    size = jnp.minimum(buffer.size + n, buffer.capacity)
    return ReplayBuffer(data, size, (buffer.position + n) % buffer.capacity)


def sample_batch(buffer: ReplayBuffer, batch_size: int, key: PRNGKeyArray) -> SACBatch:
    """`batch_size` rows drawn uniformly, with replacement, from the buffer's valid rows.

    **Arguments:** `buffer`, the buffer (an empty one yields its zero-filled first row);
    `batch_size`, a Python int; `key`, a PRNG key.

    **Returns:** a `SACBatch` of `batch_size` rows.
    """
    rows = jr.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1), dtype=jnp.int32)
    return jax.tree_util.tree_map(lambda x: x[rows], buffer.data)
