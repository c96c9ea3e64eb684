"""The `Transitions` PyTree: one offline dataset as flat arrays, and episode returns."""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float32

# name -> (number of dimensions, dtype), in field order.
_LAYOUT = {
    "observations": (2, jnp.float32),
    "actions": (2, jnp.float32),
    "rewards": (1, jnp.float32),
    "next_observations": (2, jnp.float32),
    "terminals": (1, jnp.bool_),
    "timeouts": (1, jnp.bool_),
}


def as_jax_array(x) -> Array:
    """`x` as a JAX array: arrays and tracers as they are, anything else via `device_put`.

    (`jnp.asarray` compiles a conversion for every new shape, which adds up in tests.)
    """
    if isinstance(x, jax.Array):
        return x
    return jax.device_put(np.asarray(x))


class Transitions(eqx.Module):
    """Transitions `(s, a, r, s', terminal, timeout)` as flat arrays with a shared leading axis.

    Row `i` is one environment step. `next_observations[i]` is the true observation after
    step `i`, including the last step of an episode. `terminals[i]` is true when the step
    ended the episode in a terminal state (no bootstrapping from `s'`); `timeouts[i]` is true
    when the episode stopped after step `i` without a terminal state (a time limit, or the
    end of the recorded data), so `s'` may still be bootstrapped from. Rows of one episode
    are consecutive.

    Fields are converted to JAX arrays; floating fields must end up `float32` and
    flags `bool`, with one leading length `n`. These checks run at construction (shapes and
    dtypes are known even under `jit`); values are checked by the loaders, not here.

    **Arguments:**

    - `observations`: `(n, obs_dim)` float32.
    - `actions`: `(n, act_dim)` float32.
    - `rewards`: `(n,)` float32.
    - `next_observations`: `(n, obs_dim)` float32.
    - `terminals`: `(n,)` bool.
    - `timeouts`: `(n,)` bool.
    """

    observations: Float32[Array, "n obs_dim"] = eqx.field(converter=as_jax_array)
    actions: Float32[Array, "n act_dim"] = eqx.field(converter=as_jax_array)
    rewards: Float32[Array, " n"] = eqx.field(converter=as_jax_array)
    next_observations: Float32[Array, "n obs_dim"] = eqx.field(converter=as_jax_array)
    terminals: Bool[Array, " n"] = eqx.field(converter=as_jax_array)
    timeouts: Bool[Array, " n"] = eqx.field(converter=as_jax_array)

    def __check_init__(self):
        arrays = {name: getattr(self, name) for name in _LAYOUT}
        for name, (ndim, dtype) in _LAYOUT.items():
            x = arrays[name]
            if x.ndim != ndim or x.dtype != dtype:
                raise ValueError(
                    f"Transitions.{name} must be a {ndim}-d {jnp.dtype(dtype).name} array, "
                    f"got shape {x.shape} and dtype {x.dtype}."
                )
        lengths = {name: x.shape[0] for name, x in arrays.items()}
        if len(set(lengths.values())) != 1:
            listed = ", ".join(f"{name}={length}" for name, length in lengths.items())
            raise ValueError(f"Transitions fields must share one leading length, got {listed}.")
        if self.next_observations.shape[1] != self.observations.shape[1]:
            raise ValueError(
                "Transitions.next_observations must have the observations' width "
                f"{self.observations.shape[1]}, got {self.next_observations.shape[1]}."
            )

    @property
    def num_transitions(self) -> int:
        """The number of transitions `n`."""
        return self.observations.shape[0]

    @property
    def obs_dim(self) -> int:
        """The observation width."""
        return self.observations.shape[1]

    @property
    def act_dim(self) -> int:
        """The action width."""
        return self.actions.shape[1]

    @classmethod
    def concatenate(cls, parts: Sequence["Transitions"]) -> "Transitions":
        """Stack several `Transitions` end to end, in order.

        An episode is not joined across parts: the caller keeps each part's episodes whole
        (a part whose last row has no terminal or timeout simply ends there).

        **Arguments:** `parts`, a non-empty sequence with equal `obs_dim` and `act_dim`.

        **Returns:** one `Transitions` with `sum(p.num_transitions for p in parts)` rows.
        """
        if len(parts) == 0:
            raise ValueError("Transitions.concatenate needs at least one part, got none.")
        widths = {(p.obs_dim, p.act_dim) for p in parts}
        if len(widths) != 1:
            raise ValueError(
                "Transitions.concatenate needs parts with equal (obs_dim, act_dim), "
                f"got {sorted(widths)}."
            )
        return cls(**{name: jnp.concatenate([getattr(p, name) for p in parts]) for name in _LAYOUT})


def spread_rows(n: int, count: int) -> np.ndarray:
    """At most `count` row indices spread evenly over `n` rows, in order (every row when
    `n <= count`): the deterministic sample the final measurements and diagnoses use."""
    return np.round(np.linspace(0, n - 1, min(n, count))).astype(np.int64)


def episode_ends(transitions: Transitions) -> np.ndarray:
    """Boolean numpy array, true on the last row of each episode (the final row always is)."""
    ends = np.logical_or(np.asarray(transitions.terminals), np.asarray(transitions.timeouts))
    if ends.size:
        ends[-1] = True
    return ends


def episode_returns(transitions: Transitions) -> Float32[Array, " episodes"]:
    """Undiscounted return of each episode, in dataset order.

    Episodes are split after every row whose `terminals` or `timeouts` flag is set; rows
    after the last flag (an unfinished final episode) count as one more episode, as in
    IQL's reward scaling. Runs on the host (the episode count depends on the data), summing
    in float64.

    **Arguments:** `transitions`, the dataset.

    **Returns:** a float32 array with one return per episode (empty for an empty dataset).
    """
    ends = episode_ends(transitions)
    if ends.size == 0:
        return as_jax_array(np.zeros((0,), dtype=np.float32))
    starts = np.concatenate([[0], np.flatnonzero(ends[:-1]) + 1])
    rewards = np.asarray(transitions.rewards, dtype=np.float64)
    return as_jax_array(np.add.reduceat(rewards, starts).astype(np.float32))
