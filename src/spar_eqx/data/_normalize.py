"""Observation normalisation and the reward transforms of the offline-RL literature."""

import dataclasses
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Float32

from .._environments import MUJOCO, domain_of
from ._dataset import OfflineDataset
from ._errors import DatasetError
from ._transitions import Transitions, episode_returns


class ObservationNormalizer(eqx.Module):
    """Per-dimension standardisation `(obs - mean) / std`.

    A PyTree, so it travels inside a trained policy and is saved with
    `eqx.tree_serialise_leaves`.

    **Arguments:**

    - `mean`: `(obs_dim,)` float32.
    - `std`: `(obs_dim,)` float32, positive (checked when the values are concrete).
    """

    mean: Float32[Array, " obs_dim"]
    std: Float32[Array, " obs_dim"]

    def __check_init__(self):
        for name in ("mean", "std"):
            x = getattr(self, name)
            if x.ndim != 1 or x.dtype != jnp.float32:
                raise ValueError(
                    f"ObservationNormalizer.{name} must be a 1-d float32 array, "
                    f"got shape {x.shape} and dtype {x.dtype}."
                )
        if self.mean.shape != self.std.shape:
            raise ValueError(
                f"ObservationNormalizer.mean and .std must have the same shape, "
                f"got {self.mean.shape} and {self.std.shape}."
            )
        if not isinstance(self.std, jax.core.Tracer):
            std = np.asarray(self.std)
            if not np.all(np.isfinite(std) & (std > 0)):
                raise ValueError(f"ObservationNormalizer.std must be finite and > 0, got {std}.")

    @classmethod
    def from_transitions(
        cls, transitions: Transitions, eps: float = 1e-3
    ) -> "ObservationNormalizer":
        """Mean and standard deviation of `transitions.observations`, per dimension.

        The standard deviation is floored at `eps`, so a constant dimension is centred and
        left unscaled by a huge factor. Only `observations` are used (the D4RL/IQL
        convention); the same statistics then apply to `next_observations`.

        **Arguments:**

        - `transitions`: a non-empty dataset.
        - `eps`: the floor on the standard deviation, > 0.

        **Returns:** an `ObservationNormalizer` with `(obs_dim,)` statistics.
        """
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}.")
        if transitions.num_transitions == 0:
            raise ValueError("Cannot compute observation statistics of an empty dataset.")
        obs = transitions.observations
        return cls(mean=jnp.mean(obs, axis=0), std=jnp.maximum(jnp.std(obs, axis=0), eps))

    @classmethod
    def identity(cls, obs_dim: int) -> "ObservationNormalizer":
        """The normaliser that changes nothing (mean 0, std 1): normalisation switched off."""
        return cls(mean=jnp.zeros(obs_dim, jnp.float32), std=jnp.ones(obs_dim, jnp.float32))

    def __call__(self, obs: Float[Array, "*batch obs_dim"]) -> Float[Array, "*batch obs_dim"]:
        """Normalise one observation or any batch of them (leading axes are kept)."""
        mean = jnp.broadcast_to(self.mean, obs.shape)
        std = jnp.broadcast_to(self.std, obs.shape)
        return (obs - mean) / std

    def inverse(self, obs: Float[Array, "*batch obs_dim"]) -> Float[Array, "*batch obs_dim"]:
        """Undo `__call__`: `obs * std + mean`."""
        mean = jnp.broadcast_to(self.mean, obs.shape)
        std = jnp.broadcast_to(self.std, obs.shape)
        return obs * std + mean

    def normalize_transitions(self, transitions: Transitions) -> Transitions:
        """`transitions` with `observations` and `next_observations` normalised."""
        return dataclasses.replace(
            transitions,
            observations=self(transitions.observations),
            next_observations=self(transitions.next_observations),
        )


RewardTransform = Literal["none", "antmaze", "locomotion"]
"""Reward transform names: `"none"`, `"antmaze"` (`r - 1`) or `"locomotion"` (returns
rescaled to a spread of 1000)."""

REWARD_TRANSFORMS: tuple[str, ...] = ("none", "antmaze", "locomotion")


def antmaze_reward(rewards: Float[Array, "*batch"]) -> Float[Array, "*batch"]:
    """IQL's AntMaze reward shift, `r - 1`: 0 at the goal, -1 elsewhere."""
    return rewards - 1.0


def scale_locomotion_rewards(transitions: Transitions) -> Transitions:
    """IQL's locomotion reward scaling: `r * 1000 / (max_return - min_return)`.

    The returns are those of `episode_returns` (episodes split at terminals and timeouts).

    **Arguments:** `transitions`, a dataset whose episode returns are not all equal.

    **Returns:** the same transitions with scaled float32 rewards.
    """
    returns = np.asarray(episode_returns(transitions), dtype=np.float64)
    if returns.size == 0:
        raise DatasetError("Cannot scale the rewards of an empty dataset.")
    spread = float(returns.max() - returns.min())
    if not spread > 0:
        raise DatasetError(
            f"Cannot scale locomotion rewards: all {returns.size} episode(s) have the same "
            f"return {returns[0]:.6g} (max - min = 0). Use the 'none' reward transform."
        )
    return dataclasses.replace(transitions, rewards=transitions.rewards * (1000.0 / spread))


def apply_reward_transform(
    data: Transitions | OfflineDataset, kind: RewardTransform
) -> Transitions | OfflineDataset:
    """Apply a reward transform to `Transitions` or to an `OfflineDataset`.

    On an `OfflineDataset` the transform is recorded in `reward_transform`, and a second
    non-`"none"` transform is refused (it would compound silently).

    **Arguments:**

    - `data`: `Transitions` or an `OfflineDataset`.
    - `kind`: `"none"` (unchanged), `"antmaze"` (`r - 1`) or `"locomotion"`
      (`scale_locomotion_rewards`).

    **Returns:** the same type as `data`, with transformed rewards.
    """
    if kind not in REWARD_TRANSFORMS:
        raise ValueError(f"Unknown reward transform {kind!r}; expected one of {REWARD_TRANSFORMS}.")
    if kind == "none":
        return data
    if isinstance(data, OfflineDataset):
        if data.reward_transform != "none":
            raise ValueError(
                f"Dataset {data.name!r} already has the {data.reward_transform!r} reward "
                f"transform applied; refusing to apply {kind!r} on top of it."
            )
        try:
            transitions = apply_reward_transform(data.transitions, kind)
        except DatasetError as error:
            raise DatasetError(f"Dataset {data.name!r}: {error}") from None
        return dataclasses.replace(data, transitions=transitions, reward_transform=kind)
    if kind == "antmaze":
        return dataclasses.replace(data, rewards=antmaze_reward(data.rewards))
    return scale_locomotion_rewards(data)


def default_reward_transform(
    env_id: str, convention: Literal["spar", "iql"] = "spar"
) -> RewardTransform:
    """The reward transform a paper uses for `env_id`.

    - `"spar"` (default): the SPAR paper (Table 7) disables reward normalisation except on
      AntMaze, so `"antmaze"` for AntMaze and `"none"` for everything else (OGBench's
      single-task rewards are already 0 at success and -1 elsewhere).
    - `"iql"`: IQL's recipe, `"antmaze"` for AntMaze and `"locomotion"` for the MuJoCo
      locomotion families (hopper, halfcheetah, walker2d, ant); `"none"` otherwise
      (Adroit, unknown environments).

    **Arguments:** `env_id`, an environment or dataset id; `convention`, `"spar"` or `"iql"`.

    **Returns:** `"none"`, `"antmaze"` or `"locomotion"`.
    """
    if convention not in ("spar", "iql"):
        raise ValueError(f"Unknown convention {convention!r}; expected 'spar' or 'iql'.")
    domain = domain_of(env_id)
    if convention == "iql" and domain is MUJOCO:
        return "locomotion"
    return domain.reward_transform
