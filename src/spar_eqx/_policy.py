"""SPARPolicy: base + residual + gate composed into one jitted `act`; `NoGatePolicy` and
`BasePolicy`, its ablations and every baseline's policy (all `ActingPolicy`s)."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._acting import ActingPolicy
from ._config import GateConfig
from ._ensemble import CriticEnsemble
from ._gate import gate
from ._generator import AbstractResidualGenerator
from ._networks import AbstractAnchorPolicy
from ._residual import LatentPolicy, ResidualMLP
from .data._normalize import ObservationNormalizer


class PLASResidual(eqx.Module):
    """SPAR-PLAS's residual: `delta = G(s, a_base, pi_z(s, a_base))` (Algorithm 3).

    **Fields:** `latent_policy`, the trained `LatentPolicy` `pi_z`; `generator`, the frozen
    residual generator (`ResidualCVAE`: its decoder; `ResidualFlow`: its integration) that
    maps the latent to a residual.
    """

    latent_policy: LatentPolicy
    generator: AbstractResidualGenerator

    def __call__(
        self, obs: Float[Array, " obs_dim"], base_action: Float[Array, " act_dim"]
    ) -> Float[Array, " act_dim"]:
        """**Arguments:** `obs`, `base_action`, one state and its base action.

        **Returns:** the residual `delta`, shape `(act_dim,)`, deterministic.
        """
        return self.generator.generate(obs, base_action, self.latent_policy(obs, base_action))


class SPARPolicy(ActingPolicy):
    """The deployed SPAR policy: `a = a_base + G(residual)` (Section 3.3).

    Takes raw observations (it owns its `ObservationNormalizer`). Candidates:
    SPAR-MLP and SPAR-PLAS propose their one deterministic residual; SPAR-PROJ
    generates `gate.num_candidates` residuals from prior noises (decoded by the CVAE, or
    integrated by a flow). The gate (eq. 12) scores them
    with `critic` (the gate subset) and falls back to `a_base` exactly when the
    thresholds fail. Without the gate, SPAR-PROJ uses the prior mean `z = 0`.
    Actions are clipped to `[-max_action, max_action]`.

    `__call__(observations, key)` acts on a batch of shape `(n, obs_dim)` and is
    the `BatchPolicy` that `spar_eqx.evaluate` expects.

    **Fields:**

    - `normalizer`: the dataset's `ObservationNormalizer` (raw observations in).
    - `base`: the frozen BC anchor `pi_base` (Stage I), an `AbstractAnchorPolicy`.
    - `residual`: a `ResidualMLP`, a residual generator (SPAR-PROJ: `ResidualCVAE` or
      `ResidualFlow`) or a `PLASResidual` (Stage II); it decides `variant`.
    - `critic`: the gate's critic subset (`M_rect` members, Table 7).
    - `gate_config`: the `GateConfig` of Stage III (`lambda_u`, thresholds, `K`).

    Raises `ValueError` when the residual and the base act on different action sizes.
    """

    normalizer: ObservationNormalizer
    base: AbstractAnchorPolicy
    residual: ResidualMLP | AbstractResidualGenerator | PLASResidual
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
        """The action size the residual produces (it must equal `base.act_dim`)."""
        r = self.residual
        return r.generator.act_dim if isinstance(r, PLASResidual) else r.act_dim

    @property
    def variant(self) -> str:
        """`"mlp"`, `"proj"` or `"plas"`, read off the type of `residual`."""
        if isinstance(self.residual, AbstractResidualGenerator):
            return "proj"
        return {ResidualMLP: "mlp", PLASResidual: "plas"}[type(self.residual)]

    def _candidates(self, obs, base, key, use_gate: bool):
        if isinstance(self.residual, AbstractResidualGenerator):
            if use_gate:
                return self.residual.sample(obs, base, self.gate_config.num_candidates, key=key)
            return self.residual.central(obs, base)[None]
        return self.residual(obs, base)[None]

    def act_with_info(
        self, observation: Float[Array, " obs_dim"], key: PRNGKeyArray, use_gate: bool = True
    ) -> tuple[Float[Array, " act_dim"], Bool[Array, ""]]:
        """One state: `(action, accepted)`; `accepted` says whether the residual was used.

        `a_k = clip(a_base + delta_k, -max_action, max_action)` for every candidate, then the
        gate of eq. (12) on `Q_rob` with the gate critics (Algorithm 5).

        **Arguments:**

        - `observation`: one raw (unnormalised) observation.
        - `key`: draws SPAR-PROJ's `K` prior latents (unused by the deterministic variants).
        - `use_gate`: False skips Stage III: the first candidate is used (SPAR-PROJ's
          `z = 0`), and `accepted` is True.

        **Returns:** `(action, accepted)`; the action lies in `[-max_action, max_action]`
        and equals `pi_base(s)` bit for bit when the gate refuses.
        """
        obs = self.normalizer(observation)
        max_action = self.base.max_action
        base = self.base(obs)
        residuals = self._candidates(obs, base, key, use_gate)
        candidates = jnp.clip(base[None, :] + residuals, -max_action, max_action)
        if not use_gate:
            return candidates[0], jnp.ones((), bool)
        c = self.gate_config
        # One ensemble pass scores the base action and every candidate: acting on one state
        # is bound by reading the critics' weights, so a second pass for `a_base` would cost
        # nearly as much again (about 0.1 ms of SPAR-PROJ's 0.4 on a CPU).
        scored = jnp.concatenate([base[None, :], candidates])
        q = jax.vmap(self.critic.lcb, in_axes=(None, 0, None))(obs, scored, c.lambda_u)
        decision = gate(base, candidates, q[0], q[1:], c.eta_abs, c.eta_rel, c.eps)
        return decision.action, decision.accepted

    # `act`, `act_batch` and `compile` come from `ActingPolicy`.

    def __call__(
        self, observations: Float[Array, "n obs_dim"], key: PRNGKeyArray
    ) -> Float[Array, "n act_dim"]:
        """The `BatchPolicy` call: `act_batch(observations, key)[0]`, with the gate."""
        return self.act_batch(observations, key)[0]

    def act_and_report(
        self, observations: Float[Array, "n obs_dim"], key: PRNGKeyArray
    ) -> tuple[Float[Array, "n act_dim"], dict[str, Float[Array, " n"]]]:
        """The `ReportingPolicy` call: the gated actions and, per row, `gate_acceptance`
        (1.0 where the gate used the residual, 0.0 where it returned `a_base`).

        **Arguments:** `observations`, `(n, obs_dim)` raw; `key`, as in `__call__`.

        **Returns:** `(actions, {"gate_acceptance": (n,)})`; the actions are `__call__`'s.
        """
        actions, accepted = self.act_batch(observations, key)
        return actions, {"gate_acceptance": accepted.astype(jnp.float32)}

    def without_gate(self) -> "NoGatePolicy":
        """This policy with Stage III switched off (`a = clip(a_base + residual)`).

        **Returns:** a `NoGatePolicy` sharing this policy's arrays (the paper's ablation of
        the gate, and the `spar_no_gate` policy the trainer evaluates).
        """
        return NoGatePolicy(self)

    def base_only(self) -> "BasePolicy":
        """The frozen BC anchor alone, behind the same normaliser.

        **Returns:** a `BasePolicy`, `a = pi_base(s)` (what the gate falls back to).
        """
        return BasePolicy(self.normalizer, self.base)


class NoGatePolicy(ActingPolicy):
    """A `SPARPolicy` evaluated without its gate: `a = clip(a_base + delta)` (no eq. 12).

    **Fields:** `policy`, the `SPARPolicy`.
    """

    policy: SPARPolicy

    def act_with_info(
        self, observation: Float[Array, " obs_dim"], key: PRNGKeyArray, use_gate: bool = True
    ) -> tuple[Float[Array, " act_dim"], Bool[Array, ""]]:
        """One state, never gated: `policy.act_with_info(observation, key, use_gate=False)`.

        **Arguments:** `observation`, one raw observation; `key`, SPAR-PROJ's latent;
        `use_gate`, ignored (this policy has no gate).

        **Returns:** `(action, True)`: the residual is always used.
        """
        del use_gate
        return self.policy.act_with_info(observation, key, False)

    def __call__(
        self, observations: Float[Array, "n obs_dim"], key: PRNGKeyArray
    ) -> Float[Array, "n act_dim"]:
        """**Arguments:** `observations`, `(n, obs_dim)` raw; `key`, SPAR-PROJ's latents.

        **Returns:** the ungated actions, `(n, act_dim)`.
        """
        return self.policy.act_batch(observations, key, False)[0]


class BasePolicy(ActingPolicy):
    """A base policy behind an observation normaliser, as a `BatchPolicy`.

    SPAR's anchor alone (`SPARPolicy.base_only`), and the deployed policy of every baseline.

    **Fields:** `normalizer`, the dataset's `ObservationNormalizer`; `base`, an
    `AbstractAnchorPolicy` (a `DeterministicPolicy`, a `TanhGaussianPolicy` acting through its
    mode, or a `FlowPolicy` acting through its fixed-noise sample).
    """

    normalizer: ObservationNormalizer
    base: AbstractAnchorPolicy

    def act_with_info(
        self, observation: Float[Array, " obs_dim"], key: PRNGKeyArray, use_gate: bool = True
    ) -> tuple[Float[Array, " act_dim"], Bool[Array, ""]]:
        """One state: `(base(normalizer(observation)), False)`.

        **Arguments:** `observation`, one raw observation; `key` and `use_gate`, unused (a
        base policy is deterministic and has no gate).

        **Returns:** the action and `accepted = False` (there is no residual to accept).
        """
        del key, use_gate
        return self.base(self.normalizer(observation)), jnp.zeros((), bool)

    def __call__(
        self, observations: Float[Array, "n obs_dim"], key: PRNGKeyArray
    ) -> Float[Array, "n act_dim"]:
        """**Arguments:** `observations`, `(n, obs_dim)` raw; `key`, unused (deterministic).

        **Returns:** `base(normalizer(o))` for each row, `(n, act_dim)`.
        """
        del key
        return jax.vmap(lambda o: self.base(self.normalizer(o)))(observations)
