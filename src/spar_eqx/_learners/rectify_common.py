"""What every Stage II variant shares: the frozen anchor, robust scores, data weights, and
the `Rectifier` base learner whose deployed policy carries the Stage III gate."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._config import GateConfig, ResidualConfig
from .._ensemble import CriticEnsemble
from .._evaluation import BatchPolicy
from .._hyper import Scalar
from .._learner import Learner
from .._networks import DeterministicPolicy, TanhGaussianPolicy
from .._policy import BasePolicy, SPARPolicy
from .._weighting import advantage_weights, normalized_advantage
from ..data._normalize import ObservationNormalizer


class FrozenAnchor(eqx.Module):
    """Stage I's outputs, frozen: the base policy and the critic ensemble.

    Stage II never differentiates with respect to these: losses take gradients
    only with respect to the residual model, and `base_actions` stops gradients.
    """

    policy: DeterministicPolicy | TanhGaussianPolicy
    critic: CriticEnsemble

    @classmethod
    def of(cls, previous) -> "FrozenAnchor":
        """A `FrozenAnchor` from Stage I's final state (anything with `policy` and `critic`)."""
        if isinstance(previous, FrozenAnchor):
            return previous
        return cls(previous.policy, previous.critic)

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
    lambda_u: Scalar,
) -> tuple[Float[Array, " batch"], Float[Array, " batch"]]:
    """`(Q_rob, sigma_Q)` per row (eq. 1), over the members of `critic`."""
    stats = jax.vmap(critic.stats, in_axes=(0, 0, None))(obs, actions, lambda_u)
    return stats.lcb, stats.std


def robust_q_candidates(
    critic: CriticEnsemble,
    obs: Float[Array, "batch obs_dim"],
    actions: Float[Array, "batch candidates act_dim"],
    lambda_u: Scalar,
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


def weight_metrics(
    weights: Float[Array, " batch"], advantages: Float[Array, " batch"], config: ResidualConfig
) -> dict[str, Float[Array, ""]]:
    """What the data weights did this step.

    - `weight_mean`: the mean weight;
    - `positive_advantage`: the share of samples with `A~ > 0`;
    - `capped_weights`: the share of samples whose weight sits at `max_weight`. At low
      temperatures many `exp(A~ / T)` reach the cap, which turns the weighting into nearly
      `{0, max_weight}`: watch this before reading a temperature or exp-vs-uniform ablation.
    """
    at_cap = weights >= config.max_weight * (1.0 - 1e-6)
    if config.sensitivity != "exp":
        at_cap = jnp.zeros_like(at_cap)
    return {
        "weight_mean": jnp.mean(weights),
        "positive_advantage": jnp.mean((advantages > 0).astype(jnp.float32)),
        "capped_weights": jnp.mean(at_cap.astype(jnp.float32)),
    }


class Rectifier(Learner):
    """Stage II as a `Learner`: a residual on top of a frozen Stage I anchor.

    `init(key, previous)` freezes the anchor `previous` (Stage I's final state, or a
    `FrozenAnchor`). The deployed policies are the anchor alone (`"base"`), SPAR with the
    Stage III gate (`"spar"`, scored by the gate's critic subset) and SPAR without it
    (`"spar_no_gate"`). Subclasses say which module is the residual (`residual`).

    **Fields:**

    - `config`: the `ResidualConfig`.
    - `data_critics`, `guide_critics`: member indices of the data weights and guidance.
    - `gate`: the `GateConfig` of the deployed policy.
    - `gate_critics`: member indices the gate scores with; empty means the last
      `gate.gate_critics` members of the ensemble.
    """

    config: ResidualConfig
    data_critics: tuple[int, ...] = eqx.field(static=True)
    guide_critics: tuple[int, ...] = eqx.field(static=True)
    gate: GateConfig = GateConfig()
    gate_critics: tuple[int, ...] = eqx.field(static=True, default=())

    @abc.abstractmethod
    def residual(self, state):
        """The residual module of `state` that `SPARPolicy` composes with the anchor."""

    def spar_policy(self, state, normalizer: ObservationNormalizer) -> SPARPolicy:
        """The deployed SPAR policy of `state`: anchor + residual + gate (Section 3.3)."""
        critic = state.anchor.critic
        gate_idx = self.gate_critics or tuple(
            range(critic.num_members - self.gate.gate_critics, critic.num_members)
        )
        return SPARPolicy(
            normalizer,
            state.anchor.policy,
            self.residual(state),
            critic.select(gate_idx),
            self.gate,
        )

    def policies(self, state, normalizer: ObservationNormalizer) -> dict[str, BatchPolicy]:
        """`base`, `spar` (gated) and `spar_no_gate`, all on raw observations."""
        spar = self.spar_policy(state, normalizer)
        return {
            "base": BasePolicy(normalizer, state.anchor.policy),
            "spar": spar,
            "spar_no_gate": spar.without_gate(),
        }

    def periodic_policies(self, state, normalizer: ObservationNormalizer):
        """During training only the gated policy is evaluated."""
        return {"spar": self.spar_policy(state, normalizer)}

    def diagnostics(self, state, normalizer, observations, key):
        """`gate_acceptance`: the share of `observations` on which the gate used the residual."""
        accepted = self.spar_policy(state, normalizer).act_batch(observations, key)[1]
        return {"gate_acceptance": jnp.mean(accepted.astype(jnp.float32))}
