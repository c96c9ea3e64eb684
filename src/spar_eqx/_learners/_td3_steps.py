"""The TD3 family's pure pieces: target actions, bootstrapped targets, the critics' regression
and one TD3 update (a critic step, then a delayed actor step with Polyak-averaged targets).

`AbstractTD3` (`_td3.py`) is the learner built from them; FQL's critic reuses
`bootstrap_target` and `critic_regression`.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from .._ensemble import CriticEnsemble
from .._hyper import Scalar, check_count, check_non_negative, check_positive, check_unit
from .._networks import DeterministicPolicy
from .._optim import apply_grads
from .._residual import polyak
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
