"""The TD3 family: what TD3+BC and ReBRAC share, once (and the critic pieces FQL reuses).

Both learners are TD3 (Fujimoto et al. 2018) with a behaviour penalty: target-policy
smoothing, the clipped double-Q target, and a delayed actor whose step also Polyak-averages
the target actor and the target critics. `AbstractTD3` is that learner, with one state type
(`TD3State`); a final subclass supplies only what differs: its config, its critic-target
penalty (`target_penalty`), whether its critics use LayerNorm, and its actor loss. FQL's
critic regresses on the same kind of bootstrapped target (`bootstrap_target`,
`critic_regression`).
"""

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._ensemble import CriticEnsemble
from .._evaluation import BatchPolicy
from .._hyper import Scalar, check_count, check_non_negative, check_positive, check_unit
from .._learner import Learner, Phase
from .._networks import DeterministicPolicy
from .._optim import apply_grads, initial_state, make_optimizer
from .._policy import BasePolicy
from .._residual import polyak
from ..data._normalize import ObservationNormalizer
from ..data._transitions import Transitions

Metrics = dict[str, Float[Array, ""]]


def frozen(module):
    """`module` with `stop_gradient` on every inexact array leaf (its other leaves untouched).

    **Arguments:** `module`, any PyTree (a critic, when the actor's loss reads it).

    **Returns:** a PyTree of the same structure and values through which no gradient flows.
    """
    params, static = eqx.partition(module, eqx.is_inexact_array)
    return eqx.combine(jax.lax.stop_gradient(params), static)


def check_td3_config(config) -> None:
    """The checks every TD3-family config shares (its subclass checks its penalties).

    **Arguments:** `config`, a TD3+BC or ReBRAC config: positive counts (`num_critics`,
    `width`, `depth`, `policy_delay`, `batch_size`), positive learning rates, non-negative
    smoothing noise and clip, `gamma` and `polyak` in [0, 1].

    **Raises:** `ValueError` naming the first field out of range.
    """
    check_count(
        num_critics=config.num_critics,
        width=config.width,
        depth=config.depth,
        policy_delay=config.policy_delay,
        batch_size=config.batch_size,
    )
    check_positive(
        actor_learning_rate=config.actor_learning_rate,
        critic_learning_rate=config.critic_learning_rate,
    )
    check_non_negative(policy_noise=config.policy_noise, noise_clip=config.noise_clip)
    check_unit(gamma=config.gamma, polyak=config.polyak)


def smoothed_target_actions(
    target_actor: DeterministicPolicy,
    next_observations: Float[Array, "n obs_dim"],
    key: PRNGKeyArray,
    policy_noise: Scalar,
    noise_clip: Scalar,
) -> Float[Array, "n act_dim"]:
    """Target-policy smoothing: `a' = clip(pi'(s') + clip(sigma * eps, -c, c), -m, m)`.

    **Arguments:**

    - `target_actor`: the target policy `pi'` (its `max_action` is the bound `m`).
    - `next_observations`: the batch's `s'`.
    - `key`: draws `eps ~ N(0, I)`, one per row and action dimension.
    - `policy_noise`: `sigma` (0 switches the smoothing off: `a' = pi'(s')`).
    - `noise_clip`: `c`.

    **Returns:** the smoothed next actions `a'`, one row per `s'`.
    """
    actions = jax.vmap(target_actor)(next_observations)
    noise = policy_noise * jr.normal(key, actions.shape, actions.dtype)
    noise = jnp.clip(noise, -noise_clip, noise_clip)
    bound = target_actor.max_action
    return jnp.clip(actions + noise, -bound, bound)


def bootstrap_target(
    target_critic: CriticEnsemble,
    batch: Transitions,
    next_actions: Float[Array, "n act_dim"],
    gamma: Scalar,
    penalty: Float[Array, " n"] | None = None,
    aggregate: Literal["min", "mean"] = "min",
) -> Float[Array, " n"]:
    """`y = r + gamma (1 - terminal) (agg_i Q'_i(s', a') - penalty)`, stop-gradiented.

    **Arguments:**

    - `target_critic`: the target critics `Q'_i`.
    - `batch`: supplies `r`, `s'` and the terminal flags (timeouts still bootstrap).
    - `next_actions`: `a'`, e.g. from `smoothed_target_actions`.
    - `gamma`: the discount.
    - `penalty`: subtracted from the bootstrapped value per row (ReBRAC's critic
      behaviour penalty); None for plain TD3.
    - `aggregate`: `"min"` over the members (TD3's clipped double Q) or `"mean"` (FQL's
      default `q_agg`).

    **Returns:** the regression target of every critic.
    """
    q = target_critic.batch(batch.next_observations, next_actions)
    q_next = jnp.min(q, axis=-1) if aggregate == "min" else jnp.mean(q, axis=-1)
    if penalty is not None:
        q_next = q_next - penalty
    not_done = 1.0 - batch.terminals.astype(jnp.float32)
    return jax.lax.stop_gradient(batch.rewards + gamma * not_done * q_next)


def clipped_double_q_target(
    target_critic: CriticEnsemble,
    batch: Transitions,
    next_actions: Float[Array, "n act_dim"],
    gamma: Scalar,
    penalty: Float[Array, " n"] | None = None,
) -> Float[Array, " n"]:
    """TD3's `y = r + gamma (1 - terminal) (min_i Q'_i(s', a') - penalty)`: `bootstrap_target`
    with the minimum over all members.

    **Arguments:** as `bootstrap_target`.

    **Returns:** the regression target of every critic.
    """
    return bootstrap_target(target_critic, batch, next_actions, gamma, penalty, "min")


def critic_regression(
    critic: CriticEnsemble,
    observations: Float[Array, "n obs_dim"],
    actions: Float[Array, "n act_dim"],
    target: Float[Array, " n"],
) -> tuple[Float[Array, ""], Float[Array, "n members"]]:
    """The TD3 critic loss `sum_i mean_batch (Q_i(s, a) - y)^2`, and the `Q_i(s, a)`.

    **Arguments:** `critic`, the online ensemble; `observations`, `actions`, the data pairs;
    `target`, `y` per row (already stop-gradiented).

    **Returns:** `(loss, q)`, `q` of shape `(n, members)`.
    """
    q = critic.batch(observations, actions)
    loss = jnp.sum(jnp.mean((q - target[:, None]) ** 2, axis=0))
    return loss, q


def filter_cond(pred, true_fn: Callable[[], Any], false_fn: Callable[[], Any]):
    """`lax.cond(pred, true_fn, false_fn)` for outputs holding Equinox modules.

    Only the array leaves pass through the `cond`; the rest (activation functions,
    static fields) must agree between the branches and is taken from `true_fn`.

    **Arguments:** `pred`, a boolean scalar (traced or not); `true_fn`, `false_fn`, functions
    of no arguments returning PyTrees of the same structure.

    **Returns:** the output of the branch `pred` selects (only that branch runs on device).
    """
    statics = []

    def arrays_only(fn):
        def branch():
            dynamic, static = eqx.partition(fn(), eqx.is_array)
            statics.append(static)
            return dynamic

        return branch

    dynamic = jax.lax.cond(pred, arrays_only(true_fn), arrays_only(false_fn))
    return eqx.combine(dynamic, statics[0])


ActorLoss = Callable[[DeterministicPolicy, CriticEnsemble, Transitions], tuple[Any, Metrics]]
CriticLoss = Callable[[CriticEnsemble, Any, Transitions, PRNGKeyArray], tuple[Any, Metrics]]


def actor_step_metrics(names: tuple[str, ...]) -> dict[str, str]:
    """`Phase.sparse_metrics` of a `td3_update` learner: `actor_loss` and the actor loss's own
    metrics `names` are measured on the delayed actor's steps only (`actor_updated`)."""
    return {name: "actor_updated" for name in ("actor_loss", *names)}


def td3_update(
    state,
    batch: Transitions,
    key: PRNGKeyArray,
    *,
    critic_loss: CriticLoss,
    actor_loss: ActorLoss,
    actor_optimizer: optax.GradientTransformation,
    critic_optimizer: optax.GradientTransformation,
    tau: Scalar,
    policy_delay: int,
):
    """One TD3 update: a critic step, then (every `policy_delay` steps) a delayed actor step.

    The critics take one step on `critic_loss(critic, state, batch, key)` every call. When
    `state.step % policy_delay == 0` (a real `lax.cond`: the trainer shares `step` across
    seeds) the actor takes one step on `actor_loss(actor, new_critic, batch)` and the target
    actor and target critics are Polyak-averaged towards the new online networks with rate
    `tau`, as in the TD3 and TD3+BC reference code; otherwise the actor, its optimiser state
    and both targets are returned unchanged, bit for bit.

    **Arguments:**

    - `state`: a TD3-style state (`actor`, `target_actor`, `critic`, `target_critic`,
      `actor_opt`, `critic_opt`, `step`).
    - `batch`, `key`: the update's batch and randomness (passed to `critic_loss`).
    - `critic_loss`, `actor_loss`: `(loss, metrics)` functions, differentiated with respect
      to their first argument.
    - `actor_optimizer`, `critic_optimizer`: the optax transformations of the two steps.
    - `tau`: the Polyak rate; `policy_delay`: the static actor period.

    **Returns:** `(new_state, metrics)`: the critic metrics, then the actor's (zeros on
    steps without an actor update) and `actor_updated` (1.0 or 0.0).
    """
    (q_loss, critic_metrics), grads = eqx.filter_value_and_grad(critic_loss, has_aux=True)(
        state.critic, state, batch, key
    )
    critic, critic_opt = apply_grads(critic_optimizer, state.critic, grads, state.critic_opt)

    def actor_step():
        (loss, metrics), grads = eqx.filter_value_and_grad(actor_loss, has_aux=True)(
            state.actor, critic, batch
        )
        actor, actor_opt = apply_grads(actor_optimizer, state.actor, grads, state.actor_opt)
        targets = (polyak(state.target_actor, actor, tau), polyak(state.target_critic, critic, tau))
        metrics = {"actor_loss": loss, **metrics, "actor_updated": jnp.ones((), jnp.float32)}
        return (actor, actor_opt, *targets), metrics

    def no_actor_step():
        shapes = eqx.filter_eval_shape(actor_step)[1]
        metrics = {name: jnp.zeros(s.shape, s.dtype) for name, s in shapes.items()}
        return (state.actor, state.actor_opt, state.target_actor, state.target_critic), metrics

    (actor, actor_opt, target_actor, target_critic), actor_metrics = filter_cond(
        state.step % policy_delay == 0, actor_step, no_actor_step
    )
    new_state = dataclasses.replace(
        state,
        actor=actor,
        target_actor=target_actor,
        critic=critic,
        target_critic=target_critic,
        actor_opt=actor_opt,
        critic_opt=critic_opt,
        step=state.step + 1,
    )
    return new_state, {"critic_loss": q_loss, **critic_metrics, **actor_metrics}


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
