"""Stage I: the BC anchor and the expectile critic ensemble (Section 3.1, Algorithm 1)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._components import ANCHOR_POLICIES
from .._config import AnchorConfig
from .._evaluation import BatchPolicy
from .._learner import Learner, Phase
from .._losses import expectile_loss
from .._networks import AbstractAnchorPolicy
from .._optim import apply_grads, make_optimizer, ordered_after
from .._policy import BasePolicy
from .._residual import polyak
from ..data._normalize import ObservationNormalizer
from ..data._transitions import Transitions
from ._iql_losses import ValueLearnerState, initial_value_state


class AnchorState(ValueLearnerState):
    """Everything Stage I trains, plus optimiser states and the step counter.

    **Fields:**

    - `policy`: the BC anchor `pi_base`, an `AbstractAnchorPolicy` (`DeterministicPolicy`,
      `TanhGaussianPolicy` for `base_policy="gaussian"`, `FlowPolicy` for `"flow"`), on
      normalised observations.
    - `critic`, `target_critic`: the `CriticEnsemble` of eq. (1) and its Polyak average.
    - `value`: the `ValueNetwork` `V` (the bootstrap of `q_target="value"`).
    - `policy_opt`, `critic_opt`, `value_opt`: their Adam states.
    - `step`: int32 scalar, the number of updates made (shared across seeds by the trainer).
    """

    policy: AbstractAnchorPolicy  # the shared layout's `policy`, narrowed (its place kept)


class Anchor(Learner):
    """Stage I as a `Learner`: `init(key) -> state`, `update(state, batch, key)`.

    Each update makes one gradient step on (i) the pure BC loss of `pi_base`,
    (ii) the critics against `y = r + gamma (1 - terminal) * bootstrap(s')`,
    (iii) `V` by expectile regression on the target critics' mean at data
    actions, then Polyak-averages the target critics. Observations in `batch`
    are already normalised.

    The policy is trained by pure BC and never sees the critics (Section 3.1); the critics
    never see the policy unless `q_target="policy"` (Alg. 1 line 6). After Stage I, the
    rectifiers freeze `policy` and `critic` (`FrozenAnchor`).

    **Fields:**

    - `config`: an `AnchorConfig` (float hyperparameters are leaves).
    - `obs_dim`, `act_dim`: static sizes.
    """

    config: AnchorConfig
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)

    def _optimizer(self):
        return make_optimizer(self.config.learning_rate, self.config.grad_clip)

    def phases(self, steps: int) -> tuple[Phase, ...]:
        """One phase: `update` for all of Stage I's `steps`.

        **Arguments:** `steps`, Stage I's budget (1M in the paper, Table 7).

        **Returns:** `(Phase("anchor", self.update, steps),)`.
        """
        return (Phase("anchor", self.update, steps),)

    def policies(
        self, state: AnchorState, normalizer: ObservationNormalizer
    ) -> dict[str, BatchPolicy]:
        """`{"base": BasePolicy(normalizer, state.policy)}`: Stage I's deployable policy,
        `pi_base` on raw observations (`normalizer`, the dataset's), from an `AnchorState`."""
        return {"base": BasePolicy(normalizer, state.policy)}

    def init(self, key: PRNGKeyArray, previous: None = None) -> AnchorState:
        """Fresh networks and optimiser states from `key` (Stage I has no previous stage).

        **Arguments:** `key`, split once into the policy's, the critics' and V's keys;
        `previous`, ignored (None).

        **Returns:** an `AnchorState` with `target_critic == critic` and `step = 0`.
        """
        del previous
        c = self.config
        pkey, qkey, vkey = jr.split(key, 3)
        policy = ANCHOR_POLICIES[c.base_policy](c, self.obs_dim, self.act_dim, pkey)
        opt = self._optimizer()
        return initial_value_state(
            AnchorState, policy, c, self.obs_dim, self.act_dim, (qkey, vkey), opt, opt
        )

    def update(
        self, state: AnchorState, batch: Transitions, key: PRNGKeyArray
    ) -> tuple[AnchorState, dict[str, Float[Array, ""]]]:
        """One Stage I step (Algorithm 1): BC, the critics, V, then the target critics.

        The critics regress on `y = r + gamma (1 - terminal) bootstrap(s')` (stop-gradiented;
        timeouts bootstrap), with the expectile `critic_expectile`; `bootstrap` is `V(s')`
        (`q_target="value"`) or `mean_i Q'_i(s', pi_base(s'))` (`"policy"`). V regresses on
        the target critics' mean at the data actions with the expectile `expectile` (`tau`,
        Table 8). Pure; jit, vmap and scan it.

        **Arguments:**

        - `state`: the current `AnchorState`.
        - `batch`: transitions with normalised observations.
        - `key`: the anchor's BC noise (a flow anchor's `x_0` and `t`; unused by the
          deterministic and Gaussian anchors, whose update is deterministic given the batch).

        **Returns:** `(new_state, metrics)`; metrics are scalars: `bc_loss`, `q_loss` (summed
        over members), `v_loss` (each before its step), `q_mean` and `q_std` (the members'
        mean and standard deviation at the data actions, averaged over the batch).
        """
        c, opt = self.config, self._optimizer()
        obs, act, next_obs = batch.observations, batch.actions, batch.next_observations
        not_done = 1.0 - batch.terminals.astype(jnp.float32)

        # (i) pure behaviour cloning, the anchor's own loss (squared error, NLL or flow matching).
        def policy_loss(policy):
            return policy.bc_loss(obs, act, key)

        bc, grads = eqx.filter_value_and_grad(policy_loss)(state.policy)
        policy, policy_opt = apply_grads(opt, state.policy, grads, state.policy_opt)

        # (ii) critics: every member regresses on the same target.
        if c.q_target == "value":
            bootstrap = jax.vmap(state.value)(next_obs)
        else:
            next_act = jax.vmap(state.policy)(next_obs)
            bootstrap = jnp.mean(state.target_critic.batch(next_obs, next_act), axis=-1)
        target = jax.lax.stop_gradient(batch.rewards + c.gamma * not_done * bootstrap)

        def critic_loss(critic):
            q = critic.batch(obs, act)  # (batch, members)
            # Each member's expectile loss, summed over members: the mean over every
            # (row, member) pair times M (one elementwise pass, no per-member transpose).
            members = q.shape[1]
            diff = (target[:, None] - q).ravel()
            return 2.0 * members * expectile_loss(diff, c.critic_expectile), q

        (q_loss, q), grads = eqx.filter_value_and_grad(critic_loss, has_aux=True)(state.critic)
        critic, critic_opt = apply_grads(opt, state.critic, grads, state.critic_opt)

        # (iii) V by expectile regression on the target critics' mean at data actions.
        q_data = jax.lax.stop_gradient(jnp.mean(state.target_critic.batch(obs, act), axis=-1))

        def value_loss(value):
            return expectile_loss(q_data - jax.vmap(value)(obs), c.expectile)

        old_value = ordered_after(state.value, target)
        v_loss, grads = eqx.filter_value_and_grad(value_loss)(old_value)
        value, value_opt = apply_grads(opt, old_value, grads, state.value_opt)

        new_state = AnchorState(
            policy=policy,
            critic=critic,
            target_critic=polyak(ordered_after(state.target_critic, q_data), critic, c.polyak),
            value=value,
            policy_opt=policy_opt,
            critic_opt=critic_opt,
            value_opt=value_opt,
            step=state.step + 1,
        )
        metrics = {
            "bc_loss": bc,
            "q_loss": q_loss,
            "v_loss": v_loss,
            "q_mean": jnp.mean(q),
            "q_std": jnp.mean(jnp.std(q, axis=-1)),
        }
        return new_state, metrics
