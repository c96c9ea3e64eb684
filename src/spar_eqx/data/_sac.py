"""Soft actor-critic (SAC) with a device-resident replay buffer, for the dataset generator.

The D4RL recipe trains an online SAC and records its policies; this is that SAC, built from the
library's own networks: a `TanhGaussianPolicy` actor (actions in `[-1, 1]`), a two-member
`CriticEnsemble` as twin critics with a Polyak-averaged target copy, and a learned entropy
temperature. Every update is a pure function `sac_update(state, batch, key) -> (state, metrics)`;
`sac_update_chunk` runs many of them in one compiled `lax.scan`, drawing batch indices from the
`ReplayBuffer` on the device inside each step.
"""

import dataclasses
import math

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._ensemble import CriticEnsemble
from .._networks import TanhGaussianPolicy
from .._optim import make_optimizer, optimizer_update, trainable
from ._replay import ReplayBuffer, SACBatch, sample_batch


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """Hyperparameters of the SAC and of its training schedule.

    **Fields:**

    - `width`, `depth`: hidden units per layer and number of hidden layers of actor and critics.
    - `learning_rate`: Adam step size of actor, critics and temperature.
    - `gamma`: discount; `tau`: Polyak rate of the target critics.
    - `batch_size`: transitions per update, drawn uniformly with replacement.
    - `start_steps`: environment steps taken with uniform random actions before the policy acts
      and before the first update.
    - `updates_per_step`: gradient updates per environment step.
    - `chunk_size`: environment steps collected with a fixed policy between two compiled update
      calls; each call then runs `chunk_size * updates_per_step` updates in one `lax.scan`.
    - `buffer_size`: replay capacity (oldest transitions are overwritten beyond it).
    - `eval_interval`: environment steps between two evaluations (a multiple of `chunk_size`).
    - `eval_episodes`: deterministic episodes per evaluation; their mean return is compared with
      the target.
    - `init_alpha`: initial entropy temperature; `learn_alpha`: tune it towards
      `target_entropy` (default `-act_dim`) or keep it fixed.
    """

    width: int = 256
    depth: int = 2
    learning_rate: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    start_steps: int = 5000
    updates_per_step: int = 1
    chunk_size: int = 1000
    buffer_size: int = 1_000_000
    eval_interval: int = 5000
    eval_episodes: int = 5
    init_alpha: float = 1.0
    learn_alpha: bool = True
    target_entropy: float | None = None

    def __post_init__(self):
        positive = (
            "width",
            "depth",
            "batch_size",
            "updates_per_step",
            "chunk_size",
            "buffer_size",
            "eval_interval",
            "eval_episodes",
        )
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"SACConfig.{name} must be a positive integer, got {value!r}.")
        if not (isinstance(self.start_steps, int) and self.start_steps >= 0):
            raise ValueError(
                f"SACConfig.start_steps must be a non-negative integer, got {self.start_steps!r}."
            )
        if self.eval_interval % self.chunk_size != 0:
            raise ValueError(
                f"SACConfig.eval_interval ({self.eval_interval}) must be a multiple of "
                f"chunk_size ({self.chunk_size}): evaluations happen between chunks."
            )
        if not self.learning_rate > 0:
            raise ValueError(f"SACConfig.learning_rate must be > 0, got {self.learning_rate}.")
        if not 0 <= self.gamma < 1:
            raise ValueError(f"SACConfig.gamma must lie in [0, 1), got {self.gamma}.")
        if not 0 < self.tau <= 1:
            raise ValueError(f"SACConfig.tau must lie in (0, 1], got {self.tau}.")
        if not (self.init_alpha > 0 and math.isfinite(self.init_alpha)):
            raise ValueError(f"SACConfig.init_alpha must be positive, got {self.init_alpha}.")


class SACState(eqx.Module):
    """Everything SAC learns: networks, temperature, optimiser states and the update count.

    The online SAC of the D4RL recipe (Haarnoja et al. 2018; Fu et al. 2020), which
    `spar_eqx.data.collect` trains to produce behaviour policies. It is not part of SPAR.

    **Fields:**

    - `actor`: a `TanhGaussianPolicy` with actions in `[-1, 1]`.
    - `critic`, `target_critic`: a two-member `CriticEnsemble` (twin critics) and its Polyak
      average.
    - `log_alpha`: the log entropy temperature (a float32 scalar).
    - `actor_opt_state`, `critic_opt_state`, `alpha_opt_state`: Adam states.
    - `step`: int32 scalar, updates made.
    - `config`: the `SACConfig` (static).
    """

    actor: TanhGaussianPolicy
    critic: CriticEnsemble
    target_critic: CriticEnsemble
    log_alpha: Float[Array, ""]
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    alpha_opt_state: optax.OptState
    step: Int[Array, ""]
    config: SACConfig = eqx.field(static=True)

    @property
    def target_entropy(self) -> float:
        """`config.target_entropy`, or `-act_dim` when that is None (SAC's default)."""
        if self.config.target_entropy is None:
            return -float(self.actor.act_dim)
        return float(self.config.target_entropy)


def _optimizer(config: SACConfig) -> optax.GradientTransformation:
    return make_optimizer(config.learning_rate)


def sac_init(obs_dim: int, act_dim: int, config: SACConfig, key: PRNGKeyArray) -> SACState:
    """A fresh SAC: random actor and twin critics, target critics equal to the critics.

    **Arguments:** `obs_dim`, `act_dim`: sizes of observations and actions; `config`, the
    hyperparameters; `key`, a PRNG key.

    **Returns:** the initial `SACState` (step 0).
    """
    actor_key, critic_key = jr.split(key)
    actor = TanhGaussianPolicy(obs_dim, act_dim, config.width, config.depth, key=actor_key)
    critic = CriticEnsemble(obs_dim, act_dim, 2, config.width, config.depth, key=critic_key)
    log_alpha = jnp.array(math.log(config.init_alpha), jnp.float32)
    opt = _optimizer(config)
    return SACState(
        actor=actor,
        critic=critic,
        target_critic=critic,
        log_alpha=log_alpha,
        actor_opt_state=opt.init(trainable(actor)),
        critic_opt_state=opt.init(trainable(critic)),
        alpha_opt_state=opt.init(log_alpha),
        step=jnp.array(0, jnp.int32),
        config=config,
    )


def _sample(actor: TanhGaussianPolicy, obs, key):
    keys = jr.split(key, obs.shape[0])
    return jax.vmap(lambda o, k: actor.sample(o, key=k))(obs, keys)


def _q(critic: CriticEnsemble, obs, action) -> Float[Array, "batch members"]:
    return jax.vmap(critic)(obs, action)


def sac_update(
    state: SACState, batch: SACBatch, key: PRNGKeyArray
) -> tuple[SACState, dict[str, Float[Array, ""]]]:
    """One SAC update: critics, then actor, then temperature, then the target critics.

    Critic target: `r + gamma * (1 - done) * (min_j Q'_j(s', a') - alpha * log pi(a'|s'))`
    with `a' ~ pi(s')`; the critic loss is half the squared error summed over the two members.
    Actor loss: `alpha * log pi(a|s) - min_j Q_j(s, a)` with a reparameterised `a ~ pi(s)`.
    Temperature loss: `-log_alpha * (log pi(a|s) + target_entropy)` (when `learn_alpha`).

    **Arguments:** `state`, the current `SACState`; `batch`, a `SACBatch`; `key`, a PRNG key.

    **Returns:** the new state and a dict of scalar metrics (`critic_loss`, `actor_loss`,
    `alpha`, `q_mean`, `entropy`).
    """
    config = state.config
    opt = _optimizer(config)
    target_key, actor_key = jr.split(key)
    alpha = jnp.exp(state.log_alpha)

    next_action, next_log_prob = _sample(state.actor, batch.next_obs, target_key)
    next_q = jnp.min(_q(state.target_critic, batch.next_obs, next_action), axis=1)
    soft_next = next_q - alpha * next_log_prob
    target = batch.reward + config.gamma * (1.0 - batch.done) * soft_next
    target = lax.stop_gradient(target)

    def critic_loss_fn(critic):
        q = _q(critic, batch.obs, batch.action)
        return 0.5 * jnp.sum(jnp.mean((q - target[:, None]) ** 2, axis=0)), jnp.mean(q)

    (critic_loss, q_mean), grads = eqx.filter_value_and_grad(critic_loss_fn, has_aux=True)(
        state.critic
    )
    updates, critic_opt_state = optimizer_update(
        opt, grads, state.critic_opt_state, trainable(state.critic)
    )
    critic = eqx.apply_updates(state.critic, updates)

    def actor_loss_fn(actor):
        action, log_prob = _sample(actor, batch.obs, actor_key)
        q = jnp.min(_q(critic, batch.obs, action), axis=1)
        return jnp.mean(alpha * log_prob - q), log_prob

    (actor_loss, log_prob), grads = eqx.filter_value_and_grad(actor_loss_fn, has_aux=True)(
        state.actor
    )
    updates, actor_opt_state = optimizer_update(
        opt, grads, state.actor_opt_state, trainable(state.actor)
    )
    actor = eqx.apply_updates(state.actor, updates)

    log_alpha, alpha_opt_state = state.log_alpha, state.alpha_opt_state
    if config.learn_alpha:
        slack = lax.stop_gradient(jnp.mean(log_prob) + state.target_entropy)
        grad = -slack  # d/d(log_alpha) of -log_alpha * slack
        updates, alpha_opt_state = optimizer_update(
            opt, grad, state.alpha_opt_state, state.log_alpha
        )
        log_alpha = optax.apply_updates(state.log_alpha, updates)

    new_target = jax.tree_util.tree_map(
        lambda online, old: config.tau * online + (1.0 - config.tau) * old,
        trainable(critic),
        trainable(state.target_critic),
    )
    target_critic = eqx.combine(new_target, state.target_critic)

    new_state = SACState(
        actor=actor,
        critic=critic,
        target_critic=target_critic,
        log_alpha=log_alpha,
        actor_opt_state=actor_opt_state,
        critic_opt_state=critic_opt_state,
        alpha_opt_state=alpha_opt_state,
        step=state.step + 1,
        config=config,
    )
    metrics = {
        "critic_loss": critic_loss,
        "actor_loss": actor_loss,
        "alpha": alpha,
        "q_mean": q_mean,
        "entropy": -jnp.mean(log_prob),
    }
    return new_state, metrics


@eqx.debug.assert_max_traces(max_traces=None)
def _update_chunk(
    state: SACState, buffer: ReplayBuffer, key: PRNGKeyArray, num_updates: int
) -> tuple[SACState, dict[str, Float[Array, ""]]]:
    dynamic, static = eqx.partition(state, eqx.is_array)

    def step(carry, step_key):
        batch_key, update_key = jr.split(step_key)
        current = eqx.combine(carry, static)
        batch = sample_batch(buffer, current.config.batch_size, batch_key)
        current, metrics = sac_update(current, batch, update_key)
        return eqx.filter(current, eqx.is_array), metrics

    dynamic, metrics = lax.scan(step, dynamic, jr.split(key, num_updates))
    state = eqx.combine(dynamic, static)
    return state, jax.tree_util.tree_map(lambda m: jnp.mean(m, axis=0), metrics)


_update_chunk_jit = eqx.filter_jit(_update_chunk)


def sac_update_chunk(
    state: SACState, buffer: ReplayBuffer, key: PRNGKeyArray, num_updates: int
) -> tuple[SACState, dict[str, Float[Array, ""]]]:
    """`num_updates` SAC updates in one compiled `lax.scan`, batches drawn on the device.

    Each step draws `batch_size` row indices uniformly (with replacement) from the valid rows of
    `buffer` and calls `sac_update`. The call compiles once per `num_updates` and buffer shape.

    **Arguments:** `state`, the `SACState`; `buffer`, a non-empty `ReplayBuffer`; `key`, a PRNG
    key; `num_updates`, a positive Python int.

    **Returns:** the new state and the metrics of `sac_update` averaged over the chunk.
    """
    if not (isinstance(num_updates, int) and num_updates >= 1):
        raise ValueError(f"num_updates must be a positive Python int, got {num_updates!r}.")
    if int(buffer.size) < 1:
        raise ValueError("sac_update_chunk needs a non-empty replay buffer; add transitions first.")
    return _update_chunk_jit(state, buffer, key, num_updates)


def num_chunk_traces() -> int:
    """How many times the body of `sac_update_chunk` has been traced (compiled) so far.

    **Returns:** the count, for tests that prove a chunk compiles once.
    """
    return eqx.debug.get_num_traces(_update_chunk)


@eqx.filter_jit
def act(
    actor: TanhGaussianPolicy,
    obs: Float[Array, "*batch obs_dim"],
    key: PRNGKeyArray | None = None,
) -> Float[Array, "*batch act_dim"]:
    """Actions in `[-max_action, max_action]` for one observation or a batch of them.

    **Arguments:** `actor`, the policy; `obs`, shape `(obs_dim,)` or `(n, obs_dim)`; `key`, a PRNG
    key to sample `a ~ pi(s)`, or None for the deterministic mode `max_action * tanh(mu(s))`.

    **Returns:** actions of shape `(act_dim,)` or `(n, act_dim)`.
    """
    if obs.ndim == 1:
        if key is None:
            return actor(obs)
        return actor.sample(obs, key=key)[0]
    if key is None:
        return jax.vmap(actor)(obs)
    return _sample(actor, obs, key)[0]


@eqx.filter_jit
def _act_step(
    actor: TanhGaussianPolicy, obs: Float[Array, " obs_dim"], key: PRNGKeyArray, t: Int[Array, ""]
) -> Float[Array, " act_dim"]:
    return actor.sample(obs, key=jr.fold_in(key, t))[0]
