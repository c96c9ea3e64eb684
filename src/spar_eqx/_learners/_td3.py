"""The TD3 family: what TD3+BC and ReBRAC share, once (and the critic pieces FQL reuses).

Both learners are TD3 (Fujimoto et al. 2018) with a behaviour penalty: target-policy
smoothing, the clipped double-Q target, and a delayed actor whose step also Polyak-averages
the target actor and the target critics. `AbstractTD3` is that learner, with one state type
(`TD3State`); a final subclass supplies only what differs: its config, its critic-target
penalty (`target_penalty`), whether its critics use LayerNorm, and its actor loss. The pure
pieces it is built from (targets, the critics' regression, one TD3 update) are in
`_td3_steps.py`, where FQL's critic also finds them.
"""

import abc
from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._ensemble import CriticEnsemble
from .._evaluation import BatchPolicy
from .._learner import Learner, Phase
from .._networks import DeterministicPolicy
from .._optim import initial_state, make_optimizer
from .._policy import BasePolicy
from ..data._normalize import ObservationNormalizer
from ..data._transitions import Transitions
from ._td3_steps import (
    Metrics,
    actor_step_metrics,
    clipped_double_q_target,
    critic_regression,
    smoothed_target_actions,
    td3_update,
)


class TD3State(eqx.Module):
    """The state of a TD3-family learner (TD3+BC, ReBRAC): networks, targets, optimisers.

    **Fields:**

    - `actor`, `target_actor`: the `DeterministicPolicy` and its Polyak average.
    - `critic`, `target_critic`: the `CriticEnsemble` and its Polyak average.
    - `actor_opt`, `critic_opt`: their Adam states.
    - `step`: int32 scalar, the number of updates made (shared across seeds by the trainer;
      the actor steps when `step % policy_delay == 0`).
    """

    actor: DeterministicPolicy
    target_actor: DeterministicPolicy
    critic: CriticEnsemble
    target_critic: CriticEnsemble
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    step: Int[Array, ""]


class AbstractTD3(Learner):
    """A TD3 learner with a behaviour penalty, as one `Learner` (TD3+BC and ReBRAC).

    Each update makes one critic step on `sum_i mean (Q_i(s, a) - y)^2` with
    `y = r + gamma (1 - terminal) (min_i Q'_i(s', a') - penalty(a'))`,
    `a' = clip(pi'(s') + clip(sigma eps, -c, c))`, then, when `step % policy_delay == 0`, one
    actor step on the subclass's `actor_loss` followed by Polyak averaging of the target actor
    and target critics (`td3_update`). The actor is a tanh-squashed `DeterministicPolicy`;
    observations in `batch` are already normalised.

    A final subclass declares `config` (with `width`, `depth`, `num_critics`, the two learning
    rates, `gamma`, `polyak`, `policy_noise`, `noise_clip`, `policy_delay`), `obs_dim`,
    `act_dim`, its `NAME` (phase and policy name), and defines `actor_loss`; it may override
    `target_penalty` and `critic_layer_norm`.
    """

    config: eqx.AbstractVar[Any]
    obs_dim: eqx.AbstractVar[int]
    act_dim: eqx.AbstractVar[int]
    NAME: ClassVar[str]
    ACTOR_METRICS: ClassVar[tuple[str, ...]] = ("bc_loss", "q_policy", "lambda")

    @abc.abstractmethod
    def actor_loss(
        self, actor: DeterministicPolicy, critic: CriticEnsemble, batch: Transitions
    ) -> tuple[Float[Array, ""], Metrics]:
        """The delayed actor's loss and its metrics (`ACTOR_METRICS`); the critic is frozen."""

    def critic_layer_norm(self) -> bool:
        """Whether the critics normalise their hidden layers (default: no, TD3's critics)."""
        return False

    def target_penalty(
        self, next_actions: Float[Array, "n act_dim"], batch: Transitions
    ) -> tuple[Float[Array, " n"] | None, Metrics]:
        """What the target subtracts from `min_i Q'_i(s', a')` per row, and its metrics.

        **Arguments:** `next_actions`, the smoothed `a'`; `batch`, the data.

        **Returns:** `(None, {})` by default: plain TD3's target.
        """
        del next_actions, batch
        return None, {}

    def phases(self, steps: int) -> tuple[Phase, ...]:
        """One phase, named `NAME`, running `update` for all `steps`.

        **Arguments:** `steps`, the number of updates of the stage.

        **Returns:** `(Phase(NAME, self.update, steps, sparse_metrics=...),)`: the actor's
        metrics are averaged over its delayed steps (`actor_step_metrics`).
        """
        sparse = actor_step_metrics(self.ACTOR_METRICS)
        return (Phase(self.NAME, self.update, steps, sparse_metrics=sparse),)

    def policies(
        self, state: TD3State, normalizer: ObservationNormalizer
    ) -> dict[str, BatchPolicy]:
        """`{NAME: pi}` behind the observation normaliser.

        **Arguments:** `state`, a `TD3State`; `normalizer`, the dataset's observation
        normaliser.

        **Returns:** `{NAME: BasePolicy(normalizer, state.actor)}`.
        """
        return {self.NAME: BasePolicy(normalizer, state.actor)}

    def _optimizers(self) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
        c = self.config
        return make_optimizer(c.actor_learning_rate), make_optimizer(c.critic_learning_rate)

    def init(self, key: PRNGKeyArray, previous: None = None) -> TD3State:
        """Fresh actor and critics from `key`, targets equal to them, step 0.

        **Arguments:** `key`; `previous` must be None (a single-stage learner).

        **Returns:** the initial `TD3State`.
        """
        del previous
        c = self.config
        akey, qkey = jr.split(key)
        actor = DeterministicPolicy(self.obs_dim, self.act_dim, c.width, c.depth, key=akey)
        critic = CriticEnsemble(
            self.obs_dim,
            self.act_dim,
            c.num_critics,
            c.width,
            c.depth,
            key=qkey,
            layer_norm=self.critic_layer_norm(),
        )
        actor_optimizer, critic_optimizer = self._optimizers()
        return initial_state(
            TD3State, {"actor": actor_optimizer, "critic": critic_optimizer},
            actor=actor, target_actor=actor, critic=critic, target_critic=critic,
        )  # fmt: skip

    def _target(
        self, state: TD3State, batch: Transitions, key: PRNGKeyArray
    ) -> tuple[Float[Array, " n"], Metrics]:
        c = self.config
        next_actions = smoothed_target_actions(
            state.target_actor, batch.next_observations, key, c.policy_noise, c.noise_clip
        )
        penalty, metrics = self.target_penalty(next_actions, batch)
        target = clipped_double_q_target(state.target_critic, batch, next_actions, c.gamma, penalty)
        return target, metrics

    def critic_target(
        self, state: TD3State, batch: Transitions, key: PRNGKeyArray
    ) -> Float[Array, " n"]:
        """The (penalised) clipped double-Q target `y` of every row, smoothing noise from `key`.

        **Arguments:** `state` (its target actor and target critics), a batch, and `key`.

        **Returns:** `y = r + gamma (1 - terminal) (min_i Q'_i(s', a') - penalty)` per row,
        stop-gradiented (`a'` from `smoothed_target_actions`).
        """
        return self._target(state, batch, key)[0]

    def critic_loss(
        self, critic: CriticEnsemble, state: TD3State, batch: Transitions, key: PRNGKeyArray
    ) -> tuple[Float[Array, ""], Metrics]:
        """`sum_i mean (Q_i(s, a) - y)^2`; `y` comes from `state`'s targets, stop-gradiented.

        **Arguments:** `critic`, the online critics (differentiated); `state`, `batch` and
        `key`, as in `critic_target`.

        **Returns:** `(loss, metrics)` with the means of `Q_i(s, a)` and of `y`, and the
        penalty's metrics.
        """
        target, extra = self._target(state, batch, key)
        loss, q = critic_regression(critic, batch.observations, batch.actions, target)
        return loss, {"q_data": jnp.mean(q), "q_target": jnp.mean(target), **extra}

    def update(
        self, state: TD3State, batch: Transitions, key: PRNGKeyArray
    ) -> tuple[TD3State, Metrics]:
        """One update (a critic step; an actor and target step every `policy_delay`).

        **Arguments:** `state`, a batch with normalised observations, and `key` (the
        target-policy noise).

        **Returns:** `(new_state, metrics)`: `critic_loss`, `q_data`, `q_target`, the penalty's
        metrics, and the actor step's `actor_loss` and `ACTOR_METRICS` (zeros when
        `actor_updated` is 0).
        """
        c = self.config
        actor_optimizer, critic_optimizer = self._optimizers()
        return td3_update(
            state,
            batch,
            key,
            critic_loss=self.critic_loss,
            actor_loss=self.actor_loss,
            actor_optimizer=actor_optimizer,
            critic_optimizer=critic_optimizer,
            tau=c.polyak,
            policy_delay=c.policy_delay,
        )
