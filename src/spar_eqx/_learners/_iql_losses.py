"""IQL's three losses (Kostrikov, Nair and Levine, 2022, eqs. 5-7) as pure functions of the
networks and a batch; `IQL.update` takes one Adam step on each."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._ensemble import CriticEnsemble
from .._hyper import Scalar
from .._learner import TrainingBatch
from .._losses import expectile_loss
from .._networks import TanhGaussianPolicy, ValueNetwork


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
