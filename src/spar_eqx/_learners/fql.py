"""FQL (Park, Li and Levine 2025, "Flow Q-Learning"), the flow baseline of the paper's Table 9."""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._acting import ActingPolicy
from .._ensemble import CriticEnsemble
from .._evaluation import BatchPolicy
from .._flow import FlowPolicy, flow_matching_errors
from .._hyper import (
    Scalar,
    check_choice,
    check_count,
    check_non_negative,
    check_positive,
    check_unit,
    hyper,
)
from .._learner import Learner, Phase
from .._networks import _check_sizes, _mlp
from .._optim import apply_grads, initial_state, make_optimizer
from .._policy import BasePolicy
from .._residual import polyak
from ..data._normalize import ObservationNormalizer
from ..data._transitions import Transitions
from ._td3_steps import Metrics, bootstrap_target, critic_regression, frozen

_Q_AGG = ("mean", "min")


class FQLConfig(eqx.Module):
    """FQL's hyperparameters, with the authors' defaults (arXiv 2502.02538, and the reference
    code github.com/seohongpark/fql, `agents/fql.py` `get_config()`).

    The one hyperparameter FQL tunes per environment is `alpha`, the weight of the
    distillation penalty. The defaults are the code's (`alpha` 10, `q_agg` mean); `--preset
    TASK` sets the authors' per-task values from their README for the D4RL tasks they
    publish (AntMaze: alpha 10, 3 on the large mazes; Adroit: q_agg min with alpha
    3,000 to 30,000, pen-human and pen-cloned 10,000). FQL publishes no D4RL locomotion
    settings: there the defaults stand, and the README advises `--normalize-q-loss` and
    tuning alpha in {0.03, 0.1, 0.3, 1, 3, 10}.

    **Fields** (flag, default, source):

    - `alpha` (`--alpha`, 10.0): the distillation weight
    - `q_agg` (`--q-agg`, `"mean"`): the critics' aggregate in the target, `"mean"` or
      `"min"` (clipped double Q)
    - `normalize_q_loss` (`--normalize-q-loss`, False): scale the Q term by
      `1 / mean |Q|` (off in the paper's runs)
    - `num_critics` (`--critics`, 2), `width`, `depth` (`--hidden` 512, `--layers` 4): every
      network; the critics use LayerNorm, the actors do not; GELU throughout
    - `flow_steps` (`--flow-steps`, 10): Euler steps of the behaviour flow
    - `learning_rate` (`--lr`, 3e-4), `gamma` (`--gamma`, 0.99), `polyak` (`--polyak`,
      0.005), `batch_size` (`--batch-size`, 256)
    """

    alpha: Scalar = hyper(
        10.0, "--alpha", "FQL alpha: weight of the distillation penalty (tuned per task)",
        paper="FQL `alpha` (code default; tuned per environment, `--preset`)", paper_value=10.0,
    )  # fmt: skip
    q_agg: Literal["mean", "min"] = hyper(
        "mean", "--q-agg", "target aggregate of the critics: 'mean' or 'min'",
        static=True, choices=_Q_AGG,
        paper="FQL `q_agg` (code default; `min` on Adroit, `--preset`)", paper_value="mean",
    )  # fmt: skip
    normalize_q_loss: bool = hyper(
        False, "--normalize-q-loss", "scale the actor's Q term by 1 / mean|Q|", static=True,
        paper="FQL `normalize_q_loss` (off in the paper; the README advises it for new tasks)",
        paper_value=False,
    )  # fmt: skip
    num_critics: int = hyper(
        2, "--critics", "critics", static=True,
        paper="FQL `num_ensembles`", paper_value=2,
    )  # fmt: skip
    width: int = hyper(
        512, "--hidden", "hidden width of every network", static=True,
        paper="FQL `actor_hidden_dims`, `value_hidden_dims`", paper_value=512,
    )  # fmt: skip
    depth: int = hyper(
        4, "--layers", "hidden layers of every network", static=True,
        paper="FQL `actor_hidden_dims`, `value_hidden_dims`", paper_value=4,
    )  # fmt: skip
    flow_steps: int = hyper(
        10, "--flow-steps", "Euler steps of the behaviour flow", static=True,
        paper="FQL `flow_steps`", paper_value=10,
    )  # fmt: skip
    learning_rate: Scalar = hyper(
        3e-4, "--lr", "Adam learning rate of every network",
        paper="FQL `lr`", paper_value=3e-4,
    )  # fmt: skip
    gamma: Scalar = hyper(
        0.99, "--gamma", "discount",
        paper="FQL `discount`", paper_value=0.99,
    )  # fmt: skip
    polyak: Scalar = hyper(
        0.005, "--polyak", "target-critic Polyak rate",
        paper="FQL `tau`", paper_value=0.005,
    )  # fmt: skip
    batch_size: int = hyper(
        256, "--batch-size", "minibatch size", static=True,
        paper="FQL `batch_size`", paper_value=256,
    )  # fmt: skip

    def __check_init__(self):
        check_choice("q_agg", self.q_agg, _Q_AGG)
        check_count(
            num_critics=self.num_critics,
            width=self.width,
            depth=self.depth,
            flow_steps=self.flow_steps,
            batch_size=self.batch_size,
        )
        check_positive(learning_rate=self.learning_rate)
        check_non_negative(alpha=self.alpha)
        check_unit(gamma=self.gamma, polyak=self.polyak)
        if not isinstance(self.normalize_q_loss, bool):
            raise ValueError(
                f"normalize_q_loss must be True or False, got {self.normalize_q_loss!r}."
            )


class OneStepPolicy(eqx.Module):
    """FQL's one-step policy `mu(s, z)`: an MLP of `[s, z]` to an action (clipped when used).

    **Fields:** `mlp`; `obs_dim`, `act_dim`, static.
    """

    mlp: eqx.nn.MLP
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)

    def __init__(self, obs_dim: int, act_dim: int, width: int, depth: int, *, key: PRNGKeyArray):
        """**Arguments:** `obs_dim`, `act_dim`; `width`, `depth` (512 x 4 in FQL); `key`."""
        _check_sizes(obs_dim=obs_dim, act_dim=act_dim, width=width, depth=depth)
        self.mlp = _mlp(obs_dim + act_dim, act_dim, width, depth, key, "gelu")
        self.obs_dim, self.act_dim = obs_dim, act_dim

    def __call__(
        self, obs: Float[Array, " obs_dim"], noise: Float[Array, " act_dim"]
    ) -> Float[Array, " act_dim"]:
        """**Arguments:** `obs`, one normalised observation; `noise`, `z`.

        **Returns:** `clip(mu(s, z), -1, 1)`, the action FQL acts with and scores.
        """
        return jnp.clip(self.mlp(jnp.concatenate([obs, noise])), -1.0, 1.0)


class FQLPolicy(ActingPolicy):
    """FQL's deployed policy: `a = clip(mu(s, z), -1, 1)`, `z ~ N(0, I)` fresh per state.

    **Fields:** `normalizer`, the dataset's `ObservationNormalizer`; `actor`, the
    `OneStepPolicy`.
    """

    normalizer: ObservationNormalizer
    actor: OneStepPolicy

    def act_with_info(
        self, observation: Float[Array, " obs_dim"], key: PRNGKeyArray, use_gate: bool = True
    ) -> tuple[Float[Array, " act_dim"], Bool[Array, ""]]:
        """One state: `(mu(normalizer(observation), z), False)`, `z` drawn with `key`.

        **Arguments:** `observation`, one raw observation; `key`, the noise; `use_gate`,
        unused (no gate).

        **Returns:** the action and `accepted = False` (there is no residual).
        """
        del use_gate
        noise = jr.normal(key, (self.actor.act_dim,), observation.dtype)
        return self.actor(self.normalizer(observation), noise), jnp.zeros((), bool)

    def __call__(
        self, observations: Float[Array, "n obs_dim"], key: PRNGKeyArray
    ) -> Float[Array, "n act_dim"]:
        """**Arguments:** `observations`, `(n, obs_dim)` raw; `key`, split into one per row.

        **Returns:** the actions, `(n, act_dim)`.
        """
        return self.act_batch(observations, key)[0]


class FQLState(eqx.Module):
    """FQL's networks, the target critics, optimiser states and the update counter.

    **Fields:**

    - `flow`: the behaviour flow policy (`FlowPolicy`, GELU, trained by flow matching).
    - `actor`: the `OneStepPolicy` `mu(s, z)`.
    - `critic`, `target_critic`: the LayerNorm `CriticEnsemble` and its Polyak average.
    - `flow_opt`, `actor_opt`, `critic_opt`: their Adam states.
    - `step`: int32 scalar, the number of updates made.
    """

    flow: FlowPolicy
    actor: OneStepPolicy
    critic: CriticEnsemble
    target_critic: CriticEnsemble
    flow_opt: optax.OptState
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    step: Int[Array, ""]


class FQL(Learner):
    """FQL as a `Learner`: a behaviour flow, a one-step policy distilled from it and pushed up
    the critics, and TD critics bootstrapped through the one-step policy.

    Each update, from the current parameters (as the reference code's one `apply_loss_fn`):

    - critics: `mean_{i, batch} (Q_i(s, a) - y)^2`,
      `y = r + gamma (1 - terminal) agg_i Q'_i(s', mu(s', z'))` (`agg` = `q_agg`; the TD
      family's `bootstrap_target` and `critic_regression`);
    - behaviour flow: the flow-matching loss `mean ||v(s, x_t, t) - (a - x_0)||^2` (a mean over
      the batch and action dimensions, as the code's);
    - one-step policy: `alpha * mean ||mu(s, z) - flow(s, z)||^2 - lambda mean_i Q_i(s, mu(s, z))`,
      the flow's action from the same noise `z` (`compute_flow_actions`, no gradient), the
      critics frozen, `lambda = 1` or `1 / mean |Q|` (`normalize_q_loss`);

    then one Adam step on each (the code's single Adam over all three is the same update: the
    parameters are disjoint and there is no clipping) and the Polyak step of the target critics
    toward the critics after this update's step (the code's `target_update` reads the critics
    from before it, so its targets lag ours by one update: at `polyak` 0.005, one part in 200
    of one step). Observations in `batch` are already normalised (FQL's code does not
    normalise; this trainer always does).

    **Fields:** `config`, an `FQLConfig`; `obs_dim`, `act_dim`, static sizes.
    """

    config: FQLConfig
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)

    def phases(self, steps: int) -> tuple[Phase, ...]:
        """One phase, `"fql"`, running `update` for all `steps`."""
        return (Phase("fql", self.update, steps),)

    def policies(
        self, state: FQLState, normalizer: ObservationNormalizer
    ) -> dict[str, BatchPolicy]:
        """`{"fql": the one-step policy, "fql_flow": the behaviour flow (a BC policy)}`.

        **Arguments:** `state`, an `FQLState`; `normalizer`, the dataset's normaliser.

        **Returns:** FQL's deployed policy (`FQLPolicy`) and its behaviour flow acting through
        the fixed noise `z = 0` (`BasePolicy`; a flow BC baseline for free).
        """
        return {
            "fql": FQLPolicy(normalizer, state.actor),
            "fql_flow": BasePolicy(normalizer, state.flow),
        }

    def periodic_policies(self, state: FQLState, normalizer: ObservationNormalizer):
        """Only the deployed one-step policy is evaluated during training."""
        return {"fql": FQLPolicy(normalizer, state.actor)}

    def _optimizer(self) -> optax.GradientTransformation:
        return make_optimizer(self.config.learning_rate)

    def init(self, key: PRNGKeyArray, previous: None = None) -> FQLState:
        """Fresh networks from `key` (target critics equal to the critics), step 0.

        **Arguments:** `key`; `previous` must be None (FQL is a single stage).

        **Returns:** the initial `FQLState`.
        """
        del previous
        c = self.config
        fkey, akey, qkey = jr.split(key, 3)
        o, a = self.obs_dim, self.act_dim
        flow = FlowPolicy(o, a, c.width, c.depth, steps=c.flow_steps, key=fkey, activation="gelu")
        actor = OneStepPolicy(o, a, c.width, c.depth, key=akey)
        critic = CriticEnsemble(
            o, a, c.num_critics, c.width, c.depth, key=qkey, layer_norm=True, activation="gelu"
        )
        opt = self._optimizer()
        return initial_state(
            FQLState, {"flow": opt, "actor": opt, "critic": opt},
            flow=flow, actor=actor, critic=critic, target_critic=critic,
        )  # fmt: skip

    def critic_loss(
        self, critic: CriticEnsemble, state: FQLState, batch: Transitions, key: PRNGKeyArray
    ) -> tuple[Float[Array, ""], Metrics]:
        """`mean_{i, batch} (Q_i(s, a) - y)^2`, `y` through the one-step policy at `s'`.

        **Arguments:** `critic`, the online critics (differentiated); `state`, `batch`; `key`,
        the noise `z'` of the next actions.

        **Returns:** `(loss, {"q_data", "q_target"})`.
        """
        c = self.config
        noise = jr.normal(key, (batch.next_observations.shape[0], self.act_dim))
        next_actions = jax.vmap(frozen(state.actor))(batch.next_observations, noise)
        target = bootstrap_target(
            state.target_critic, batch, next_actions, c.gamma, aggregate=c.q_agg
        )
        loss, q = critic_regression(critic, batch.observations, batch.actions, target)
        return loss / critic.num_members, {"q_data": jnp.mean(q), "q_target": jnp.mean(target)}

    def flow_loss(
        self, flow: FlowPolicy, batch: Transitions, key: PRNGKeyArray
    ) -> tuple[Float[Array, ""], Metrics]:
        """The behaviour flow's loss, `mean_{batch, dims} (v(s, x_t, t) - (a - x_0))^2`."""
        errors = flow_matching_errors(flow.field, batch.observations, batch.actions, key)
        loss = jnp.mean(errors) / self.act_dim
        return loss, {"bc_flow_loss": loss}

    def actor_loss(
        self, actor: OneStepPolicy, state: FQLState, batch: Transitions, key: PRNGKeyArray
    ) -> tuple[Float[Array, ""], Metrics]:
        """`alpha * distill - lambda * mean Q(s, mu(s, z))` with the flow and critics frozen.

        **Arguments:** `actor`, the one-step policy (differentiated); `state`, its flow and
        critics; `batch`; `key`, the noise `z`.

        **Returns:** `(loss, {"distill_loss", "q_loss", "q_policy"})`.
        """
        c, obs = self.config, batch.observations
        noise = jr.normal(key, (obs.shape[0], self.act_dim))
        target = jax.vmap(frozen(state.flow).from_noise)(obs, noise)
        actions = jax.vmap(actor)(obs, noise)
        distill = jnp.mean((actions - jax.lax.stop_gradient(target)) ** 2)
        q = jnp.mean(frozen(state.critic).batch(obs, actions), axis=-1)
        q_loss = -jnp.mean(q)
        if c.normalize_q_loss:
            q_loss = jax.lax.stop_gradient(1.0 / jnp.mean(jnp.abs(q))) * q_loss
        loss = c.alpha * distill + q_loss
        return loss, {"distill_loss": distill, "q_loss": q_loss, "q_policy": jnp.mean(q)}

    def update(
        self, state: FQLState, batch: Transitions, key: PRNGKeyArray
    ) -> tuple[FQLState, Metrics]:
        """One FQL update: the critics, the behaviour flow and the one-step policy, each one
        Adam step from the current parameters, then the target critics' Polyak step.

        **Arguments:** `state`, a batch with normalised observations, and `key` (split into
        the critic's, the flow's and the actor's noise).

        **Returns:** `(new_state, metrics)`: `critic_loss`, `q_data`, `q_target`,
        `bc_flow_loss`, `actor_loss`, `distill_loss`, `q_loss`, `q_policy`.
        """
        c, opt = self.config, self._optimizer()
        critic_key, flow_key, actor_key = jr.split(key, 3)
        grad = lambda f: eqx.filter_value_and_grad(f, has_aux=True)
        (q_loss, q_metrics), q_grads = grad(self.critic_loss)(
            state.critic, state, batch, critic_key
        )
        (f_loss, f_metrics), f_grads = grad(self.flow_loss)(state.flow, batch, flow_key)
        (a_loss, a_metrics), a_grads = grad(self.actor_loss)(state.actor, state, batch, actor_key)
        critic, critic_opt = apply_grads(opt, state.critic, q_grads, state.critic_opt)
        flow, flow_opt = apply_grads(opt, state.flow, f_grads, state.flow_opt)
        actor, actor_opt = apply_grads(opt, state.actor, a_grads, state.actor_opt)
        new_state = FQLState(
            flow=flow,
            actor=actor,
            critic=critic,
            target_critic=polyak(state.target_critic, critic, c.polyak),
            flow_opt=flow_opt,
            actor_opt=actor_opt,
            critic_opt=critic_opt,
            step=state.step + 1,
        )
        metrics = {
            "critic_loss": q_loss,
            **q_metrics,
            **f_metrics,
            "actor_loss": a_loss,
            **a_metrics,
        }
        return new_state, metrics
