"""The learner protocol: what every algorithm gives the trainer.

An algorithm is a pipeline of one or more learners (SPAR: the anchor, then a rectifier;
a baseline: one learner). The trainer drives every learner through the same calls and
never names one:

- `init(key, previous)` builds a learner's state (`previous` is the state the stage
  before it ended with, or None for the first stage);
- `phases(steps)` lists the pure update functions `update(state, batch, key) ->
  (state, metrics)` and how many of the stage's `steps` each runs;
- `policies(state, normalizer)` turns a state into named deployable `BatchPolicy`s.

A state may hold an integer `step` field that counts updates: the trainer shares it
across seeds and grid points (so a `lax.cond` on it stays a real branch) instead of
vmapping it. Float hyperparameters live in a learner's fields as leaves, so the trainer
can stack learners along a grid axis and vmap them exactly like seeds.
"""

import abc
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._evaluation import BatchPolicy
from .data._normalize import ObservationNormalizer
from .data._transitions import Transitions, as_jax_array, episode_ends

State = Any
Metrics = dict[str, Float[Array, ""]]
Update = Callable[[State, "TrainingBatch", PRNGKeyArray], tuple[State, Metrics]]


class TrainingBatch(Transitions):
    """`Transitions` plus `next_actions`, what every learner's `update` receives.

    `next_actions[i]` is the dataset's action at row `i + 1` when that row continues row
    `i`'s episode; at an episode's last row (terminal, timeout or end of data) there is no
    next action in the data, and the row's own action stands in. ReBRAC's critic penalty
    reads it; the other learners ignore it. Observations are already normalised.
    """

    next_actions: Float[Array, "n act_dim"] = eqx.field(converter=as_jax_array)

    @classmethod
    def from_transitions(cls, transitions: Transitions) -> "TrainingBatch":
        """Add `next_actions` to `transitions` (episode boundaries from its flags).

        **Arguments:** `transitions`, a dataset whose episodes are consecutive rows.

        **Returns:** a `TrainingBatch` with the same rows.
        """
        actions = np.asarray(transitions.actions)
        ends = episode_ends(transitions)
        following = np.concatenate([actions[1:], actions[-1:]]) if len(actions) else actions
        nxt = np.where(ends[:, None], actions, following).astype(np.float32)
        return cls(
            observations=transitions.observations,
            actions=transitions.actions,
            rewards=transitions.rewards,
            next_observations=transitions.next_observations,
            terminals=transitions.terminals,
            timeouts=transitions.timeouts,
            next_actions=nxt,
        )

    def __check_init__(self):
        if self.next_actions.shape != self.actions.shape:
            raise ValueError(
                f"TrainingBatch.next_actions must have the actions' shape {self.actions.shape}, "
                f"got {self.next_actions.shape}."
            )


class Phase(NamedTuple):
    """A run of `steps` updates of one pure update function of a learner.

    `evaluate` says whether the trainer's periodic evaluation runs during this phase (a
    phase that trains only part of the deployed policy, like SPAR-PLAS's CVAE phase,
    turns it off).

    `sparse_metrics` maps each metric that is measured only on some steps to the 0/1 metric
    that flags those steps (TD3+BC's actor metrics to `actor_updated`, SPAR-PROJ's
    self-imitation metrics to `projected`); on the other steps the update reports 0 for it.
    The log averages such a metric over its flagged steps alone (and leaves it out of a chunk
    that has none), so a delayed actor's loss is not diluted by the steps it skipped.
    """

    name: str
    update: Update
    steps: int
    evaluate: bool = True
    sparse_metrics: Mapping[str, str] = MappingProxyType({})


class Learner(eqx.Module):
    """One stage of an algorithm: pure functions the trainer calls, and nothing else.

    Subclasses are final `eqx.Module`s. Fields that decide shapes or control flow are
    static; float hyperparameters are leaves (the trainer turns them into arrays and may
    stack them along a grid axis), so `update` must not branch on them in Python.
    """

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray, previous: State | None = None) -> State:
        """A fresh state for this stage, from `key` and the previous stage's final state."""

    @abc.abstractmethod
    def phases(self, steps: int) -> tuple[Phase, ...]:
        """The update functions of this stage and how many of its `steps` each runs."""

    @abc.abstractmethod
    def policies(self, state: State, normalizer: ObservationNormalizer) -> dict[str, BatchPolicy]:
        """The deployable policies of `state`, by name, each acting on raw observations."""

    def periodic_policies(
        self, state: State, normalizer: ObservationNormalizer
    ) -> dict[str, BatchPolicy]:
        """The policies evaluated during training (default: all of `policies`)."""
        return self.policies(state, normalizer)

    def diagnostics(
        self,
        state: State,
        normalizer: ObservationNormalizer,
        observations: Float[Array, "n obs_dim"],
        key: PRNGKeyArray,
    ) -> dict[str, Float[Array, ""]]:
        """Scalars about a final state, measured on raw dataset `observations` (default: none)."""
        del state, normalizer, observations, key
        return {}


def hyperparameter_arrays(tree):
    """`tree` with every Python float leaf made a float32 array (so it is traced, not static)."""
    return jax.tree_util.tree_map(
        lambda x: jnp.asarray(x, jnp.float32) if isinstance(x, float) else x, tree
    )
