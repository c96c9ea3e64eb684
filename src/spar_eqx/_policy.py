"""SPARPolicy: base + residual + gate composed into one jitted `act`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._config import GateConfig
from ._ensemble import CriticEnsemble
from ._gate import gate
from ._networks import DeterministicPolicy, TanhGaussianPolicy
from ._residual import LatentPolicy, ResidualCVAE, ResidualMLP
from .data._normalize import ObservationNormalizer


class PLASResidual(eqx.Module):
    """SPAR-PLAS's residual: `delta = decoder(s, a_base, pi_z(s, a_base))`."""

    latent_policy: LatentPolicy
    cvae: ResidualCVAE

    def __call__(
        self, obs: Float[Array, " obs_dim"], base_action: Float[Array, " act_dim"]
    ) -> Float[Array, " act_dim"]:
        return self.cvae.decode(obs, base_action, self.latent_policy(obs, base_action))


class SPARPolicy(eqx.Module):
    """The deployed SPAR policy: `a = a_base + G(residual)` (Section 3.3).

    Takes raw observations (it owns its `ObservationNormalizer`). Candidates:
    SPAR-MLP and SPAR-PLAS propose their one deterministic residual; SPAR-PROJ
    decodes `gate.num_candidates` prior latents. The gate (eq. 12) scores them
    with `critic` (the gate subset) and falls back to `a_base` exactly when the
    thresholds fail. Without the gate, SPAR-PROJ uses the prior mean `z = 0`.
    Actions are clipped to `[-max_action, max_action]`.

    `__call__(observations, key)` acts on a batch of shape `(n, obs_dim)` and is
    the `BatchPolicy` that `spar_eqx.evaluate` expects.
    """

    normalizer: ObservationNormalizer
    base: DeterministicPolicy | TanhGaussianPolicy
    residual: ResidualMLP | ResidualCVAE | PLASResidual
    critic: CriticEnsemble
    gate_config: GateConfig

    def __check_init__(self):
        if self.residual_act_dim != self.base.act_dim:
            raise ValueError(
                f"the residual acts on {self.residual_act_dim}-d actions but the base policy on "
                f"{self.base.act_dim}-d ones; build both for the same action space."
            )

    @property
    def residual_act_dim(self) -> int:
        r = self.residual
        return r.cvae.act_dim if isinstance(r, PLASResidual) else r.act_dim

    @property
    def variant(self) -> str:
        return {ResidualMLP: "mlp", ResidualCVAE: "proj", PLASResidual: "plas"}[type(self.residual)]

    def _candidates(self, obs, base, key, use_gate: bool):
        if isinstance(self.residual, ResidualCVAE):
            if use_gate:
                return self.residual.sample(obs, base, self.gate_config.num_candidates, key=key)
            zero = jnp.zeros((self.residual.latent_dim,), obs.dtype)
            return self.residual.decode(obs, base, zero)[None]
        return self.residual(obs, base)[None]

    def act_with_info(
        self, observation: Float[Array, " obs_dim"], key: PRNGKeyArray, use_gate: bool = True
    ) -> tuple[Float[Array, " act_dim"], Bool[Array, ""]]:
        """One state: `(action, accepted)`; `accepted` says whether the residual was used."""
        obs = self.normalizer(observation)
        max_action = self.base.max_action
        base = self.base(obs)
        residuals = self._candidates(obs, base, key, use_gate)
        candidates = jnp.clip(base[None, :] + residuals, -max_action, max_action)
        if not use_gate:
            return candidates[0], jnp.ones((), bool)
        c = self.gate_config
        q_base = self.critic.lcb(obs, base, c.lambda_u)
        q_cand = jax.vmap(self.critic.lcb, in_axes=(None, 0, None))(obs, candidates, c.lambda_u)
        decision = gate(base, candidates, q_base, q_cand, c.eta_abs, c.eta_rel, c.eps)
        return decision.action, decision.accepted

    @eqx.filter_jit
    def act(
        self, observation: Float[Array, " obs_dim"], key: PRNGKeyArray, use_gate: bool = True
    ) -> Float[Array, " act_dim"]:
        """The action for one raw observation (jitted)."""
        return self.act_with_info(observation, key, use_gate)[0]

    @eqx.filter_jit
    def act_batch(
        self, observations: Float[Array, "n obs_dim"], key: PRNGKeyArray, use_gate: bool = True
    ) -> tuple[Float[Array, "n act_dim"], Bool[Array, " n"]]:
        """Actions and gate decisions for a batch of raw observations (jitted, vmapped)."""
        keys = jr.split(key, observations.shape[0])
        return jax.vmap(self.act_with_info, in_axes=(0, 0, None))(observations, keys, use_gate)

    def __call__(
        self, observations: Float[Array, "n obs_dim"], key: PRNGKeyArray
    ) -> Float[Array, "n act_dim"]:
        return self.act_batch(observations, key)[0]

    def without_gate(self) -> "NoGatePolicy":
        """This policy with Stage III switched off (`a = clip(a_base + residual)`)."""
        return NoGatePolicy(self)

    def base_only(self) -> "BasePolicy":
        """The frozen BC anchor alone, behind the same normaliser."""
        return BasePolicy(self.normalizer, self.base)


class NoGatePolicy(eqx.Module):
    """A `SPARPolicy` evaluated without its gate."""

    policy: SPARPolicy

    def __call__(
        self, observations: Float[Array, "n obs_dim"], key: PRNGKeyArray
    ) -> Float[Array, "n act_dim"]:
        return self.policy.act_batch(observations, key, False)[0]


class BasePolicy(eqx.Module):
    """A base policy behind an observation normaliser, as a `BatchPolicy`."""

    normalizer: ObservationNormalizer
    base: DeterministicPolicy | TanhGaussianPolicy

    def __call__(
        self, observations: Float[Array, "n obs_dim"], key: PRNGKeyArray
    ) -> Float[Array, "n act_dim"]:
        del key
        return jax.vmap(lambda o: self.base(self.normalizer(o)))(observations)
