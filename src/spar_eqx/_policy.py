"""SPARPolicy: base + residual + gate composed into one jitted `act`; `DeployedPolicy`, the
same `act` compiled ahead of time for a control loop."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from ._config import GateConfig
from ._ensemble import CriticEnsemble
from ._gate import gate
from ._module_jit import module_jit
from ._networks import DeterministicPolicy, TanhGaussianPolicy
from ._residual import LatentPolicy, ResidualCVAE, ResidualMLP
from .data._normalize import ObservationNormalizer


class PLASResidual(eqx.Module):
    """SPAR-PLAS's residual: `delta = decoder(s, a_base, pi_z(s, a_base))` (Algorithm 3).

    **Fields:** `latent_policy`, the trained `LatentPolicy` `pi_z`; `cvae`, the frozen
    `ResidualCVAE` whose decoder maps its latent to a residual.
    """

    latent_policy: LatentPolicy
    cvae: ResidualCVAE

    def __call__(
        self, obs: Float[Array, " obs_dim"], base_action: Float[Array, " act_dim"]
    ) -> Float[Array, " act_dim"]:
        """**Arguments:** `obs`, `base_action`, one state and its base action.

        **Returns:** the residual `delta`, shape `(act_dim,)`, deterministic.
        """
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

    **Fields:**

    - `normalizer`: the dataset's `ObservationNormalizer` (raw observations in).
    - `base`: the frozen BC anchor `pi_base` (Stage I).
    - `residual`: a `ResidualMLP`, a `ResidualCVAE` (SPAR-PROJ) or a `PLASResidual`
      (Stage II); it decides `variant`.
    - `critic`: the gate's critic subset (`M_rect` members, Table 7).
    - `gate_config`: the `GateConfig` of Stage III (`lambda_u`, thresholds, `K`).

    Raises `ValueError` when the residual and the base act on different action sizes.
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
        """The action size the residual produces (it must equal `base.act_dim`)."""
        r = self.residual
        return r.cvae.act_dim if isinstance(r, PLASResidual) else r.act_dim

    @property
    def variant(self) -> str:
        """`"mlp"`, `"proj"` or `"plas"`, read off the type of `residual`."""
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

    def act(
        self, observation: Float[ArrayLike, " obs_dim"], key: PRNGKeyArray, use_gate: bool = True
    ) -> Float[Array, " act_dim"]:
        """The action for one raw observation (jitted; a NumPy observation is cast as JAX
        casts jit arguments).

        The policy's PyTree is partitioned into arrays and the rest on its first call and
        remembered (`module_jit`), so a call costs the compiled computation and JAX's dispatch,
        as `compile`'s does; it compiles again for a new observation shape or dtype, where a
        `DeployedPolicy` refuses one.

        **Arguments:** as `act_with_info`.

        **Returns:** `act_with_info(observation, key, use_gate)[0]`.
        """
        return _act(self, observation, key, use_gate)

    def compile(
        self,
        observation: Float[ArrayLike, " obs_dim"],
        key: PRNGKeyArray | None = None,
        use_gate: bool = True,
    ) -> "DeployedPolicy":
        """`act`, compiled once ahead of time for a control loop (Table 11's deployment).

        The returned `DeployedPolicy` runs one executable, compiled here, for one observation
        shape and dtype and one key type: nothing is traced or compiled while the loop runs,
        and an input of another kind raises instead of compiling (about as fast as `act`,
        which compiles on demand).

        **Arguments:**

        - `observation`: an example raw observation; its shape and dtype are the only ones
          the compiled `act` accepts (its values are unused).
        - `key`: an example key, fixing the key type (default: a typed `jax.random.key`; pass
          a legacy `jax.random.PRNGKey` to act with those).
        - `use_gate`: as in `act_with_info`, fixed at compile time.

        **Returns:** a `DeployedPolicy` whose `act(observation, key)` equals
        `self.act(observation, key, use_gate)` bit for bit.
        """
        return DeployedPolicy(self, observation, key, use_gate)

    def act_batch(
        self, observations: Float[Array, "n obs_dim"], key: PRNGKeyArray, use_gate: bool = True
    ) -> tuple[Float[Array, "n act_dim"], Bool[Array, " n"]]:
        """Actions and gate decisions for a batch of raw observations (jitted, vmapped).

        **Arguments:** `observations`, shape `(n, obs_dim)`; `key`, split into one key per
        row; `use_gate`, as in `act_with_info`.

        **Returns:** `(actions, accepted)` of shapes `(n, act_dim)` and `(n,)`.
        """
        return _act_batch(self, observations, key, use_gate)

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


def _act_one(policy: SPARPolicy, observation, key, use_gate: bool):
    return policy.act_with_info(observation, key, use_gate)[0]


def _act_rows(policy: SPARPolicy, observations, key, use_gate: bool):
    keys = jr.split(key, observations.shape[0])
    return jax.vmap(policy.act_with_info, in_axes=(0, 0, None))(observations, keys, use_gate)


# Functions of the policy, not jitted methods: binding a jitted method builds a wrapper on
# every call (about 0.03 ms of `act`).
_act = module_jit(_act_one, static_argnums=(3,))
_act_batch = module_jit(_act_rows, static_argnums=(3,))


class DeployedPolicy:
    """A `SPARPolicy`'s `act`, compiled ahead of time: the low-latency path for a control loop.

    Built by `SPARPolicy.compile`. The jitted function of `SPARPolicy.act` is lowered and
    compiled once for the example's observation shape and dtype and key type; each call hands
    the policy's stored arrays, the observation and the key straight to that executable. After
    construction nothing is traced or compiled: an observation of another shape or dtype (after
    JAX's usual float64 -> float32 cast of NumPy input), or another key type, raises a
    `TypeError` instead of recompiling. It is as fast as `act` after `act`'s first call (see
    `benchmarks/latency.py`); what it adds is that a control loop can never stall on a compile.

    **Guarantee:** `deployed.act(observation, key)` equals
    `policy.act(observation, key, use_gate)` bit for bit: the same traced function, compiled by
    XLA with the same (default) options, on the same arrays (`tests/test_policy.py` checks it
    for every variant). Like any jitted JAX call it returns before the result is ready
    (`jax.block_until_ready` or `np.asarray` waits).

    Not a PyTree: to jit, vmap or differentiate through the policy, use `SPARPolicy` itself.

    **Attributes:** `policy`, the `SPARPolicy`; `use_gate`, as passed to `SPARPolicy.compile`.
    """

    __slots__ = ("policy", "use_gate", "_run")

    def __init__(
        self,
        policy: SPARPolicy,
        observation: Float[ArrayLike, " obs_dim"],
        key: PRNGKeyArray | None = None,
        use_gate: bool = True,
    ):
        """**Arguments:** as `SPARPolicy.compile`, with the policy first."""
        if key is None:
            key = jax.eval_shape(jr.key, 0)
        self.policy, self.use_gate = policy, use_gate
        self._run = _act.compile(policy, observation, key, use_gate)

    def act(
        self, observation: Float[ArrayLike, " obs_dim"], key: PRNGKeyArray
    ) -> Float[Array, " act_dim"]:
        """The action for one raw observation: `policy.act(observation, key, use_gate)`.

        **Arguments:** `observation`, of the example's shape and dtype; `key`, of the
        example's key type (unused by SPAR-MLP and SPAR-PLAS).

        **Returns:** the action, shape `(act_dim,)`.
        """
        return self._run(observation, key)


class NoGatePolicy(eqx.Module):
    """A `SPARPolicy` evaluated without its gate: `a = clip(a_base + delta)` (no eq. 12).

    **Fields:** `policy`, the `SPARPolicy`.
    """

    policy: SPARPolicy

    def __call__(
        self, observations: Float[Array, "n obs_dim"], key: PRNGKeyArray
    ) -> Float[Array, "n act_dim"]:
        """**Arguments:** `observations`, `(n, obs_dim)` raw; `key`, SPAR-PROJ's latents.

        **Returns:** the ungated actions, `(n, act_dim)`.
        """
        return self.policy.act_batch(observations, key, False)[0]


class BasePolicy(eqx.Module):
    """A base policy behind an observation normaliser, as a `BatchPolicy`.

    SPAR's anchor alone (`SPARPolicy.base_only`), and the deployed policy of every baseline.

    **Fields:** `normalizer`, the dataset's `ObservationNormalizer`; `base`, a
    `DeterministicPolicy` or a `TanhGaussianPolicy` (acting through its mode).
    """

    normalizer: ObservationNormalizer
    base: DeterministicPolicy | TanhGaussianPolicy

    def __call__(
        self, observations: Float[Array, "n obs_dim"], key: PRNGKeyArray
    ) -> Float[Array, "n act_dim"]:
        """**Arguments:** `observations`, `(n, obs_dim)` raw; `key`, unused (deterministic).

        **Returns:** `base(normalizer(o))` for each row, `(n, act_dim)`.
        """
        del key
        return jax.vmap(lambda o: self.base(self.normalizer(o)))(observations)
