"""`ActingPolicy`: what every deployable policy offers a control loop (`act`, `act_batch`,
`compile`), written once on top of each policy's `act_with_info`; `DeployedPolicy`, its `act`
compiled ahead of time."""

import abc

import equinox as eqx
import jax
import jax.random as jr
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from ._module_jit import module_jit


class ActingPolicy(eqx.Module):
    """A policy on raw observations that a control loop can call, one state at a time or in
    batches: `SPARPolicy`, `NoGatePolicy` and `BasePolicy` (every baseline's policy).

    A subclass defines `act_with_info` for one state; `act`, `act_batch` and `compile` are
    written here once, so every policy `spar_eqx.load_policy` returns is used the same way.
    """

    @abc.abstractmethod
    def act_with_info(
        self, observation: Float[Array, " obs_dim"], key: PRNGKeyArray, use_gate: bool = True
    ) -> tuple[Float[Array, " act_dim"], Bool[Array, ""]]:
        """One state: `(action, accepted)`, `accepted` saying whether a residual was used."""

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

    def act_batch(
        self,
        observations: Float[ArrayLike, "n obs_dim"],
        key: PRNGKeyArray,
        use_gate: bool = True,
    ) -> tuple[Float[Array, "n act_dim"], Bool[Array, " n"]]:
        """Actions and gate decisions for a batch of raw observations (jitted, vmapped; NumPy
        input is cast as in `act`).

        **Arguments:** `observations`, shape `(n, obs_dim)`; `key`, split into one key per
        row; `use_gate`, as in `act_with_info`.

        **Returns:** `(actions, accepted)` of shapes `(n, act_dim)` and `(n,)`.
        """
        return _act_batch(self, observations, key, use_gate)

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


def _act_one(policy: ActingPolicy, observation, key, use_gate: bool):
    return policy.act_with_info(observation, key, use_gate)[0]


def _act_rows(policy: ActingPolicy, observations, key, use_gate: bool):
    keys = jr.split(key, observations.shape[0])
    return jax.vmap(policy.act_with_info, in_axes=(0, 0, None))(observations, keys, use_gate)


# Functions of the policy, not jitted methods: binding a jitted method builds a wrapper on
# every call (about 0.03 ms of `act`).
_act = module_jit(_act_one, static_argnums=(3,))
_act_batch = module_jit(_act_rows, static_argnums=(3,))


class DeployedPolicy:
    """A policy's `act`, compiled ahead of time: the low-latency path for a control loop.

    Built by `ActingPolicy.compile` (`SPARPolicy.compile`, or any policy
    `spar_eqx.load_policy` returns). The jitted function of `act` is lowered and compiled once
    for the example's observation shape and dtype and key type; each call hands the policy's
    stored arrays, the observation and the key straight to that executable. After construction
    nothing is traced or compiled: an observation of another shape or dtype (after JAX's usual
    float64 -> float32 cast of NumPy input), or another key type, raises a `TypeError` instead
    of recompiling. It is as fast as `act` after `act`'s first call (see
    `benchmarks/latency.py`); what it adds is that a control loop can never stall on a compile.

    **Guarantee:** `deployed.act(observation, key)` equals
    `policy.act(observation, key, use_gate)` bit for bit: the same traced function, compiled by
    XLA with the same (default) options, on the same arrays (`tests/test_policy.py` checks it
    for every variant). Like any jitted JAX call it returns before the result is ready
    (`jax.block_until_ready` or `np.asarray` waits).

    Not a PyTree: to jit, vmap or differentiate through the policy, use the policy itself.

    **Attributes:** `policy`, the compiled policy; `use_gate`, as passed to `compile`.
    """

    __slots__ = ("policy", "use_gate", "_run")

    def __init__(
        self,
        policy: ActingPolicy,
        observation: Float[ArrayLike, " obs_dim"],
        key: PRNGKeyArray | None = None,
        use_gate: bool = True,
    ):
        """**Arguments:** as `ActingPolicy.compile`, with the policy first."""
        if key is None:
            key = jax.eval_shape(jr.key, 0)
        self.policy, self.use_gate = policy, use_gate
        self._run = _act.compile(policy, observation, key, use_gate)

    def act(
        self, observation: Float[ArrayLike, " obs_dim"], key: PRNGKeyArray
    ) -> Float[Array, " act_dim"]:
        """The action for one raw observation: `policy.act(observation, key, use_gate)`.

        **Arguments:** `observation`, of the example's shape and dtype; `key`, of the
        example's key type (unused by deterministic policies).

        **Returns:** the action, shape `(act_dim,)`.
        """
        return self._run(observation, key)
