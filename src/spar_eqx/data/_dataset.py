"""`OfflineDataset`: one dataset's transitions and what is known about their source."""

import dataclasses
from typing import Any

from jaxtyping import Array, Float32

from .._environment_names import environment
from .._environments import Environment
from .._scores import ReferenceScores
from ._transitions import Transitions


@dataclasses.dataclass(frozen=True, eq=False)
class OfflineDataset:
    """A loaded dataset: its `Transitions` and its metadata.

    Only `transitions` (and the action bounds) are arrays; pass `dataset.transitions` into
    jitted code, not the whole object.

    **Arguments:**

    - `transitions`: the validated `Transitions`.
    - `env_id`: the Gymnasium (or D4RL) environment id the data comes from, e.g. `"Hopper-v5"`.
    - `name`: the dataset id (Minari) or the path it was loaded from.
    - `reference`: D4RL reference returns for normalised scores, or None when unknown.
    - `action_low`, `action_high`: `(act_dim,)` float32 bounds of the action space; every
      action in `transitions` lies inside them (to 1e-6).
    - `metadata`: JSON-like facts about the source (Minari's `metadata.json`, HDF5 attributes,
      the command and seed that produced it when recorded there).
    - `reward_transform`: which reward transform has been applied to `transitions.rewards`
      (`"none"` as loaded; see `apply_reward_transform`).
    - `environment`: the [`spar_eqx.Environment`][] its policies are evaluated in: the one the
      dataset records (a Minari dataset's evaluation spec, with its keyword arguments and step
      limit), the one its D4RL name stands for, or, by default, `spar_eqx.environment(env_id)`.
    """

    transitions: Transitions
    env_id: str
    name: str
    reference: ReferenceScores | None
    action_low: Float32[Array, " act_dim"]
    action_high: Float32[Array, " act_dim"]
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    reward_transform: str = "none"
    environment: Environment | None = None

    def __post_init__(self):
        if self.environment is None:
            object.__setattr__(self, "environment", environment(self.env_id))
        if self.environment.env_id != self.env_id:
            raise ValueError(
                f"OfflineDataset.env_id is {self.env_id!r} but its environment is "
                f"{self.environment.env_id!r}; they must name the same environment."
            )
        act_dim = self.transitions.act_dim
        for name in ("action_low", "action_high"):
            bound = getattr(self, name)
            if bound.shape != (act_dim,):
                raise ValueError(
                    f"OfflineDataset.{name} must have shape ({act_dim},) to match the actions, "
                    f"got {bound.shape}."
                )

    @property
    def num_transitions(self) -> int:
        """The number of transitions."""
        return self.transitions.num_transitions

    @property
    def obs_dim(self) -> int:
        """The observation width."""
        return self.transitions.obs_dim

    @property
    def act_dim(self) -> int:
        """The action width."""
        return self.transitions.act_dim
