"""What every Stage II variant shares: the frozen anchor, robust scores, data weights, the
gradient-conflict metrics, and the `Rectifier` base learner whose deployed policy carries the
Stage III gate."""

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._config import GateConfig, ResidualConfig
from .._conflict import gradient_conflict
from .._ensemble import CriticEnsemble
from .._evaluation import BatchPolicy
from .._hyper import Scalar
from .._learner import Learner
from .._networks import AbstractAnchorPolicy
from .._policy import BasePolicy, SPARPolicy
from .._weighting import advantage_weights, normalized_advantage
from ..data._normalize import ObservationNormalizer


class FrozenAnchor(eqx.Module):
    """Stage I's outputs, frozen (Section 3.2, Alg. 2-4 input): the base policy and the critics.

    Stage II never differentiates with respect to these: losses take gradients
    only with respect to the residual model, and `base_actions` stops gradients.

    **Fields:**

    - `policy`: the BC anchor `pi_base`, an `AbstractAnchorPolicy` (deterministic, Gaussian
      for Adroit and AntMaze, or a flow).
    - `critic`: the Stage I critic ensemble behind `Q_rob` (eq. 1).
    """

    policy: AbstractAnchorPolicy
    critic: CriticEnsemble

    @classmethod
    def of(cls, previous) -> "FrozenAnchor":
        """A `FrozenAnchor` from Stage I's final state (Section 3.2).

        **Arguments:**

        - `previous`: Stage I's final state (anything with `policy` and `critic`), or a
          `FrozenAnchor`, returned as it is.

        **Returns:**

        The frozen anchor.
        """
        if isinstance(previous, FrozenAnchor):
            return previous
        return cls(previous.policy, previous.critic)

    @property
    def max_action(self) -> float:
        """The action bound of the anchor's action box `[-max_action, max_action]`."""
        return self.policy.max_action

    def base_actions(self, obs: Float[Array, "batch obs_dim"]) -> Float[Array, "batch act_dim"]:
        """`a_base = pi_base(s)` of eq. 7-10 (a Gaussian anchor's mode, a flow anchor's
        fixed-noise sample: `AbstractAnchorPolicy`), gradients stopped.

        **Arguments:**

        - `obs`: a batch of normalised observations.

        **Returns:**

        The base actions, one per row, carrying no gradient.
        """
        return jax.lax.stop_gradient(jax.vmap(self.policy)(obs))

    def clip(self, actions: Float[Array, "*batch act_dim"]) -> Float[Array, "*batch act_dim"]:
        """Actions clipped into the action box, as `a_synth` of eq. 7 is.

        **Arguments:**

        - `actions`: actions of any leading shape.

        **Returns:**

        `actions` clipped elementwise to `[-max_action, max_action]`.
        """
        return jnp.clip(actions, -self.max_action, self.max_action)


def robust_q(
    critic: CriticEnsemble,
    obs: Float[Array, "batch obs_dim"],
    actions: Float[Array, "batch act_dim"],
    lambda_u: Scalar,
) -> tuple[Float[Array, " batch"], Float[Array, " batch"]]:
    """Eq. 1: `(Q_rob, sigma_Q)` per row, over the members of `critic`.

    **Arguments:**

    - `critic`: the ensemble (or a subset of it, `CriticEnsemble.select`).
    - `obs`, `actions`: the state-action pairs, one per row.
    - `lambda_u`: the uncertainty weight of `Q_rob = mean - lambda_u * std`.

    **Returns:**

    `(q_rob, sigma)`: the lower confidence bound and the members' standard deviation, per row.
    """
    stats = jax.vmap(critic.stats, in_axes=(0, 0, None))(obs, actions, lambda_u)
    return stats.lcb, stats.std


def robust_q_candidates(
    critic: CriticEnsemble,
    obs: Float[Array, "batch obs_dim"],
    actions: Float[Array, "batch candidates act_dim"],
    lambda_u: Scalar,
) -> Float[Array, "batch candidates"]:
    """Eq. 1 and 9: `Q_rob(s, a_k)` for every state and candidate, vmapped over both axes.

    **Arguments:**

    - `critic`: the ensemble (or a subset of it).
    - `obs`: one state per row.
    - `actions`: the candidate actions of each state.
    - `lambda_u`: the uncertainty weight of `Q_rob`.

    **Returns:**

    `Q_rob` per state and candidate.
    """
    per_state = jax.vmap(critic.lcb, in_axes=(None, 0, None))
    return jax.vmap(per_state, in_axes=(0, 0, None))(obs, actions, lambda_u)


def data_weights(
    data_critic: CriticEnsemble,
    obs: Float[Array, "batch obs_dim"],
    actions: Float[Array, "batch act_dim"],
    base: Float[Array, "batch act_dim"],
    config: ResidualConfig,
) -> tuple[Float[Array, " batch"], Float[Array, " batch"]]:
    """Section 3.2.2 (eq. 7, 8): the weights `w(s, a)` of the fitting losses and their advantages.

    `A~ = (Q_rob(s, a) - Q_rob(s, a_base)) / sigma_Q(s)`, where `sigma_Q(s)` is
    the data critics' standard deviation at `(s, a_base)`. No gradient flows.

    **Arguments:**

    - `data_critic`: the data critics (the ensemble's data subset).
    - `obs`, `actions`: the batch's states and dataset actions.
    - `base`: the base actions `a_base` of those states.
    - `config`: the `ResidualConfig` (`lambda_u`, `temperature`, `sensitivity`, `filtering`,
      `max_weight`).

    **Returns:**

    `(weights, advantages)` per row, both without gradient.
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
    """Section 3.2.2: what the data weights did this step.

    **Arguments:**

    - `weights`, `advantages`: `data_weights`' output for the batch.
    - `config`: the `ResidualConfig` (`sensitivity`, `max_weight`).

    **Returns:**

    A dict of scalars:

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


def conflict_metrics(
    fit_loss: Callable[[Any], Float[Array, ""]], params: PyTree, delta: PyTree
) -> dict[str, Float[Array, ""]]:
    """Section 4.3, Table 3: `conflict_dd` and `conflict_vsd` of one guidance step.

    **Arguments:**

    - `fit_loss`: `params -> L_fit`, the variant's fitting loss on this batch.
    - `params`: `theta`, the parameters both the fit and the guidance reach.
    - `delta`: the guidance step on `params` (`guidance_update`).

    **Returns:**

    `{"conflict_dd": DD, "conflict_vsd": VSD}` (see `gradient_conflict`).
    """
    dd, vsd = gradient_conflict(fit_loss, params, delta)
    return {"conflict_dd": dd, "conflict_vsd": vsd}


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

    With `config.log_conflict`, each variant's guidance update also reports Section 4.3's
    `conflict_dd` and `conflict_vsd` (see the variant for its `L_fit` and guidance step).
    """

    config: ResidualConfig
    data_critics: tuple[int, ...] = eqx.field(static=True)
    guide_critics: tuple[int, ...] = eqx.field(static=True)
    gate: GateConfig = GateConfig()
    gate_critics: tuple[int, ...] = eqx.field(static=True, default=())

    def data_weights(
        self,
        anchor: FrozenAnchor,
        obs: Float[Array, "batch obs_dim"],
        actions: Float[Array, "batch act_dim"],
        base: Float[Array, "batch act_dim"],
    ) -> tuple[Float[Array, " batch"], Float[Array, " batch"]]:
        """`data_weights` of the anchor's data critics (Section 3.2.2, eq. 7, 8).

        **Arguments:** `anchor`, the frozen anchor; `obs`, `actions`, the batch's states and
        dataset actions; `base`, their base actions.

        **Returns:** `(weights, advantages)` per row, both without gradient.
        """
        data_critic = anchor.critic.select(self.data_critics)
        return data_weights(data_critic, obs, actions, base, self.config)

    @abc.abstractmethod
    def residual(self, state):
        """The residual module of `state` that `SPARPolicy` composes with the anchor (Alg. 5).

        **Arguments:**

        - `state`: a state of this learner.

        **Returns:**

        The residual model (`ResidualMLP`, `ResidualCVAE` or `PLASResidual`).
        """

    def spar_policy(self, state, normalizer: ObservationNormalizer) -> SPARPolicy:
        """The deployed SPAR policy of `state`: anchor + residual + gate (eq. 12, Section 3.3).

        **Arguments:**

        - `state`: a state of this learner.
        - `normalizer`: the dataset's observation normaliser (the policy acts on raw
          observations).

        **Returns:**

        The gated `SPARPolicy`, scored by the gate's critic subset.
        """
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
        """The deployable policies of Stages I-III (eq. 12): the anchor, and SPAR with and
        without the gate.

        **Arguments:**

        - `state`: a state of this learner.
        - `normalizer`: the dataset's observation normaliser.

        **Returns:**

        `{"base", "spar", "spar_no_gate"}` policies, all on raw observations.
        """
        spar = self.spar_policy(state, normalizer)
        return {
            "base": BasePolicy(normalizer, state.anchor.policy),
            "spar": spar,
            "spar_no_gate": spar.without_gate(),
        }

    def periodic_policies(self, state, normalizer: ObservationNormalizer):
        """The policy evaluated during training (eq. 12): only the gated one.

        **Arguments:**

        - `state`: a state of this learner.
        - `normalizer`: the dataset's observation normaliser.

        **Returns:**

        `{"spar": the gated policy}`.
        """
        return {"spar": self.spar_policy(state, normalizer)}

    def diagnostics(self, state, normalizer, observations, key):
        """The Stage III gate's acceptance rate (eq. 12) on dataset observations.

        **Arguments:**

        - `state`: a final state of this learner.
        - `normalizer`: the dataset's observation normaliser.
        - `observations`: raw dataset observations.
        - `key`: the gated policy's sampling key.

        **Returns:**

        `{"gate_acceptance": the share of observations on which the gate used the residual}`.
        """
        accepted = self.spar_policy(state, normalizer).act_batch(observations, key)[1]
        return {"gate_acceptance": jnp.mean(accepted.astype(jnp.float32))}
