"""What every Stage II variant shares: the frozen anchor, robust scores and data weights."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._config import ResidualConfig
from ._ensemble import CriticEnsemble
from ._networks import DeterministicPolicy, TanhGaussianPolicy
from ._weighting import advantage_weights, normalized_advantage


class FrozenAnchor(eqx.Module):
    """Stage I's outputs, frozen: the base policy and the critic ensemble.

    Stage II never differentiates with respect to these: losses take gradients
    only with respect to the residual model, and `base_actions` stops gradients.
    """

    policy: DeterministicPolicy | TanhGaussianPolicy
    critic: CriticEnsemble

    @property
    def max_action(self) -> float:
        return self.policy.max_action

    def base_actions(self, obs: Float[Array, "batch obs_dim"]) -> Float[Array, "batch act_dim"]:
        """`pi_base(s)` (the mode, for a Gaussian anchor), with gradients stopped."""
        return jax.lax.stop_gradient(jax.vmap(self.policy)(obs))

    def clip(self, actions: Float[Array, "*batch act_dim"]) -> Float[Array, "*batch act_dim"]:
        return jnp.clip(actions, -self.max_action, self.max_action)


def robust_q(
    critic: CriticEnsemble,
    obs: Float[Array, "batch obs_dim"],
    actions: Float[Array, "batch act_dim"],
    lambda_u: float,
) -> tuple[Float[Array, " batch"], Float[Array, " batch"]]:
    """`(Q_rob, sigma_Q)` per row (eq. 1), over the members of `critic`."""
    stats = jax.vmap(critic.stats, in_axes=(0, 0, None))(obs, actions, lambda_u)
    return stats.lcb, stats.std


def robust_q_candidates(
    critic: CriticEnsemble,
    obs: Float[Array, "batch obs_dim"],
    actions: Float[Array, "batch candidates act_dim"],
    lambda_u: float,
) -> Float[Array, "batch candidates"]:
    """`Q_rob(s, a_k)` for every state and candidate, vmapped over both axes."""
    per_state = jax.vmap(critic.lcb, in_axes=(None, 0, None))
    return jax.vmap(per_state, in_axes=(0, 0, None))(obs, actions, lambda_u)


def data_weights(
    data_critic: CriticEnsemble,
    obs: Float[Array, "batch obs_dim"],
    actions: Float[Array, "batch act_dim"],
    base: Float[Array, "batch act_dim"],
    config: ResidualConfig,
) -> tuple[Float[Array, " batch"], Float[Array, " batch"]]:
    """Weights `w(s, a)` of the fitting losses and the advantages behind them (Section 3.2.2).

    `A~ = (Q_rob(s, a) - Q_rob(s, a_base)) / sigma_Q(s)`, where `sigma_Q(s)` is
    the data critics' standard deviation at `(s, a_base)`. No gradient flows.
    """
    q_data, _ = robust_q(data_critic, obs, actions, config.lambda_u)
    q_base, sigma = robust_q(data_critic, obs, base, config.lambda_u)
    adv = normalized_advantage(q_data, q_base, sigma)
    w = advantage_weights(
        adv, config.temperature, config.sensitivity, config.filtering, config.max_weight
    )
    return jax.lax.stop_gradient(w), jax.lax.stop_gradient(adv)
