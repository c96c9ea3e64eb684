"""IQL's three losses (Kostrikov, Nair and Levine, 2022, eqs. 5-7) as pure functions of the
networks and a batch; `IQL.update` takes one Adam step on each. Also the initial state that
IQL and SPAR's Stage I share (a policy, critics, their target copy and V, each with Adam)."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._ensemble import CriticEnsemble
from .._hyper import Scalar
from .._learner import TrainingBatch
from .._losses import expectile_loss
from .._networks import TanhGaussianPolicy, ValueNetwork
from .._optim import initial_state


class ValueLearnerState(eqx.Module):
    """The state layout IQL and SPAR's Stage I share: a policy, critics, their Polyak copy, V,
    their optimiser states and the update counter (`IQLState`, `AnchorState` say which policy).

    **Fields:** `policy`; `critic`, `target_critic`; `value`; `policy_opt`, `critic_opt`,
    `value_opt`; `step`, an int32 scalar.
    """

    policy: eqx.Module
    critic: CriticEnsemble
    target_critic: CriticEnsemble
    value: ValueNetwork
    policy_opt: optax.OptState
    critic_opt: optax.OptState
    value_opt: optax.OptState
    step: Int[Array, ""]


def initial_value_state(
    state_cls: type[ValueLearnerState],
    policy: Any,
    config: Any,
    obs_dim: int,
    act_dim: int,
    keys: tuple[PRNGKeyArray, PRNGKeyArray],
    policy_optimizer: optax.GradientTransformation,
    optimizer: optax.GradientTransformation,
):
    """A fresh `state_cls` (`IQLState`, `AnchorState`) around `policy`: new critics (the
    target critics equal to them), a new V, their optimiser states, step 0.

    **Arguments:** `state_cls`; `policy`, the fresh policy; `config`, with `num_critics`,
    `width`, `depth`; `obs_dim`, `act_dim`; `keys`, the critics' and V's keys;
    `policy_optimizer`, the policy's optimiser; `optimizer`, the critics' and V's.

    **Returns:** the state.
    """
    qkey, vkey = keys
    critic = CriticEnsemble(
        obs_dim, act_dim, config.num_critics, config.width, config.depth, key=qkey
    )
    value = ValueNetwork(obs_dim, config.width, config.depth, key=vkey)
    optimizers = {"policy": policy_optimizer, "critic": optimizer, "value": optimizer}
    return initial_state(
        state_cls, optimizers, policy=policy, critic=critic, target_critic=critic, value=value
    )


def min_q(
    critic: CriticEnsemble,
    obs: Float[Array, "batch obs_dim"],
    actions: Float[Array, "batch act_dim"],
) -> Float[Array, " batch"]:
    """`min_i Q_i(s, a)` per row, over the members of `critic`.

    **Arguments:** `critic`, an ensemble; `obs` and `actions`, one batch.

    **Returns:** the members' minimum per row.
    """
    return jnp.min(critic.batch(obs, actions), axis=-1)


def value_loss(
    value: ValueNetwork,
    target_critic: CriticEnsemble,
    obs: Float[Array, "batch obs_dim"],
    actions: Float[Array, "batch act_dim"],
    expectile: Scalar,
) -> tuple[Float[Array, ""], Float[Array, " batch"]]:
    """IQL's V loss `E[|tau - 1{u < 0}| u^2]`, `u = min_i Q'_i(s, a) - V(s)` (IQL eq. 5).

    The target critics carry no gradient.

    **Arguments:** `value`, V; `target_critic`, the target ensemble; `obs`, `actions`, a
    batch of data pairs; `expectile`, tau.

    **Returns:** `(loss, V(s) per row)`.
    """
    q = jax.lax.stop_gradient(min_q(target_critic, obs, actions))
    v = jax.vmap(value)(obs)
    return expectile_loss(q - v, expectile), v


def critic_loss(
    critic: CriticEnsemble,
    value: ValueNetwork,
    batch: TrainingBatch,
    gamma: Scalar,
) -> tuple[Float[Array, ""], Float[Array, "batch members"]]:
    """IQL's critic loss `sum_i E[(r + gamma (1 - terminal) V(s') - Q_i(s, a))^2]` (eq. 6).

    Timeouts bootstrap (only `terminals` stop it); V carries no gradient.

    **Arguments:** `critic`, the online ensemble; `value`, V; `batch`, the data; `gamma`, the
    discount.

    **Returns:** `(loss, Q_i(s, a) per row and member)`.
    """
    not_done = 1.0 - batch.terminals.astype(jnp.float32)
    next_v = jax.vmap(value)(batch.next_observations)
    target = jax.lax.stop_gradient(batch.rewards + gamma * not_done * next_v)
    q = critic.batch(batch.observations, batch.actions)
    return jnp.sum(jnp.mean((target[:, None] - q) ** 2, axis=0)), q


def actor_loss(
    policy: TanhGaussianPolicy,
    target_critic: CriticEnsemble,
    value: ValueNetwork,
    obs: Float[Array, "batch obs_dim"],
    actions: Float[Array, "batch act_dim"],
    temperature: Scalar,
    max_weight: Scalar,
) -> tuple[Float[Array, ""], tuple[Float[Array, " batch"], Float[Array, " batch"]]]:
    """IQL's advantage-weighted regression `-E[min(exp(beta A), max_weight) log pi(a | s)]`.

    `A = min_i Q'_i(s, a) - V(s)` (IQL eq. 7); the weights carry no gradient, so only the
    policy is trained by this loss.

    **Arguments:** `policy`, the actor; `target_critic`, the target ensemble; `value`, V;
    `obs`, `actions`, a batch of data pairs; `temperature`, beta; `max_weight`, the cap.

    **Returns:** `(loss, (advantages, weights))`, per row.
    """
    adv = min_q(target_critic, obs, actions) - jax.vmap(value)(obs)
    weights = jax.lax.stop_gradient(jnp.minimum(jnp.exp(temperature * adv), max_weight))
    log_probs = jax.vmap(policy.log_prob)(obs, actions)
    return -jnp.mean(weights * log_probs), (jax.lax.stop_gradient(adv), weights)
