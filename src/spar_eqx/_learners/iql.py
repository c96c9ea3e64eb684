"""Implicit Q-Learning (IQL; Kostrikov, Nair and Levine, 2022, arXiv 2110.06169).

IQL never queries the critics at actions outside the dataset:

- `V(s)` is the `expectile`-expectile of `min_i Q'_i(s, a)` over the data actions `a`
  (the target critics), by expectile regression;
- each critic `Q_i` regresses on `r + gamma (1 - terminal) V(s')`;
- the policy is extracted by advantage-weighted regression,
  `max E[min(exp(beta (min_i Q'_i(s, a) - V(s))), max_weight) log pi(a | s)]`.

One update follows the order of the authors' code (`ikostrikov/implicit_q_learning`,
`learner.py`): V first, then the actor and the critics with the new V, then the Polyak
step of the target critics.
"""

import dataclasses
from collections.abc import Callable
from typing import ClassVar, Literal

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from .._evaluation import BatchPolicy
from .._hyper import (
    Scalar,
    check_choice,
    check_count,
    check_non_negative,
    check_open_unit,
    check_positive,
    check_unit,
    hyper,
)
from .._learner import Learner, Phase, TrainingBatch
from .._networks import TanhGaussianPolicy
from .._optim import apply_grads
from .._policy import BasePolicy
from .._residual import polyak
from ..data._normalize import ObservationNormalizer
from ._iql_losses import ValueLearnerState, actor_loss, critic_loss, initial_value_state, value_loss

LR_SCHEDULES = ("constant", "cosine")


Schedule = Callable[[Array], Float[Array, ""]]


def _adam(learning_rate: Scalar | Schedule, grad_clip: Scalar | None):
    """`spar_eqx._optim.make_optimizer`, also taking an optax schedule (the actor's decay)."""
    opt = optax.adam(learning_rate)
    return opt if grad_clip is None else optax.chain(optax.clip_by_global_norm(grad_clip), opt)


class IQLConfig(eqx.Module):
    """IQL's hyperparameters, with the paper's MuJoCo locomotion defaults.

    Sources: the paper's Appendix B and the authors' `configs/mujoco_config.py` and
    `train_offline.py` (`ikostrikov/implicit_q_learning`). The actor's learning rate decays
    with a cosine schedule to 0 over the stage's steps there (`actor_lr_schedule="cosine"`);
    the critics and V keep a constant rate. IQL does not clip gradients.

    Rewards: for locomotion IQL scales rewards by `1000 / (max return - min return)` over the
    dataset's episodes. That is a property of the data pipeline, not of this config: the
    trainer applies it (the `"locomotion"` reward transform of
    `spar_eqx.data._normalize`), guided by `IQL.REWARD_CONVENTION == "iql"`.

    **Fields** (flag, default, source):

    - `width`, `depth` (`--hidden` 256, `--layers` 2): all networks, IQL App. B
    - `num_critics` (`--critics`, 2): clipped double Q, the minimum is used, IQL App. B
    - `learning_rate` (`--lr`, 3e-4): Adam for the actor, the critics and V, IQL App. B
    - `actor_lr_schedule` (`--actor-lr-schedule`, `"cosine"`): the actor's learning-rate
      schedule over the stage, IQL's `train_offline.py` (`"constant"` turns it off)
    - `grad_clip` (`--grad-clip`, None: no clipping): IQL clips nothing
    - `gamma` (`--gamma`, 0.99), `polyak` (`--polyak`, 0.005): IQL App. B
    - `expectile` (`--expectile`, 0.7): tau for locomotion, IQL App. B (0.9 on AntMaze)
    - `temperature` (`--temperature`, 3.0): inverse temperature beta for locomotion, IQL
      App. B (10.0 on AntMaze, 0.5 on Kitchen and Adroit)
    - `max_weight` (`--max-weight`, 100.0): the cap on `exp(beta A)`, IQL's `actor.py`
    - `batch_size` (`--batch-size`, 256): IQL App. B
    """

    width: int = hyper(
        256, "--hidden", "hidden width of actor, critics and V", static=True,
        paper="IQL App. B", paper_value=256,
    )  # fmt: skip
    depth: int = hyper(
        2, "--layers", "hidden layers of actor, critics and V", static=True,
        paper="IQL App. B", paper_value=2,
    )  # fmt: skip
    num_critics: int = hyper(
        2, "--critics", "critics; IQL uses their minimum", static=True,
        paper="IQL App. B (clipped double Q: the minimum)", paper_value=2,
    )  # fmt: skip
    learning_rate: Scalar = hyper(
        3e-4, "--lr", "Adam learning rate of actor, critics and V",
        paper="IQL App. B", paper_value=3e-4,
    )  # fmt: skip
    actor_lr_schedule: Literal["constant", "cosine"] = hyper(
        "cosine", "--actor-lr-schedule", "actor learning rate: 'cosine' decay to 0 or 'constant'",
        static=True, choices=LR_SCHEDULES,
        paper="IQL's `train_offline.py` (cosine decay to 0)", paper_value="cosine",
    )  # fmt: skip
    grad_clip: Scalar | None = hyper(
        None, "--grad-clip", "global-norm gradient clip (none)", kind=float,
        paper="none: IQL clips nothing",
    )  # fmt: skip
    gamma: Scalar = hyper(
        0.99, "--gamma", "discount",
        paper="IQL App. B", paper_value=0.99,
    )  # fmt: skip
    polyak: Scalar = hyper(
        0.005, "--polyak", "target-critic Polyak rate",
        paper="IQL App. B", paper_value=0.005,
    )  # fmt: skip
    expectile: Scalar = hyper(
        0.7, "--expectile", "expectile tau of V (0.9 on AntMaze)",
        paper=r"IQL App. B, $\tau$ on locomotion (0.9 on AntMaze)", paper_value=0.7,
    )  # fmt: skip
    temperature: Scalar = hyper(
        3.0, "--temperature", "inverse temperature beta of the actor",
        paper=r"IQL App. B, $\beta$ on locomotion (10 on AntMaze, 0.5 on Kitchen and Adroit)",
        paper_value=3.0,
    )  # fmt: skip
    max_weight: Scalar = hyper(
        100.0, "--max-weight", "cap on the actor's exp weights",
        paper="IQL's `actor.py`", paper_value=100.0,
    )  # fmt: skip
    batch_size: int = hyper(
        256, "--batch-size", "minibatch size", static=True,
        paper="IQL App. B", paper_value=256,
    )  # fmt: skip

    def __check_init__(self):
        check_choice("actor_lr_schedule", self.actor_lr_schedule, LR_SCHEDULES)
        check_count(
            width=self.width,
            depth=self.depth,
            num_critics=self.num_critics,
            batch_size=self.batch_size,
        )
        check_positive(
            learning_rate=self.learning_rate, grad_clip=self.grad_clip, max_weight=self.max_weight
        )
        check_unit(gamma=self.gamma, polyak=self.polyak)
        check_open_unit(expectile=self.expectile)
        check_non_negative(temperature=self.temperature)


class IQLState(ValueLearnerState):
    """Everything IQL trains, its optimiser states and the update counter.

    **Fields:**

    - `policy`: the `TanhGaussianPolicy` actor (deployed through its mode).
    - `critic`, `target_critic`: the `CriticEnsemble` and its Polyak average.
    - `value`: the `ValueNetwork` V.
    - `policy_opt`, `critic_opt`, `value_opt`: optimiser states.
    - `step`: int32 scalar, the number of updates made (shared across seeds by the trainer).
    """

    policy: TanhGaussianPolicy  # the shared layout's `policy`, narrowed (its place kept)


class IQL(Learner):
    """Implicit Q-Learning as a `Learner`: one phase `"iql"`, deployed as the actor's mode.

    Each update (pure, deterministic given the batch: `key` is unused):

    1. one Adam step of V on `value_loss` (targets `min_i Q'_i(s, a)` of the target critics);
    2. one Adam step of the actor on `actor_loss`, advantages from the target critics and
       the new V;
    3. one Adam step of every critic on `critic_loss`, bootstrapping from the new V;
    4. the target critics move by Polyak averaging only:
       `Q' <- (1 - polyak) Q' + polyak Q`.

    The actor is the library's state-dependent `TanhGaussianPolicy`; the authors' code
    uses a Gaussian with a state-independent log std and a tanh on its mean only. Either
    way the deployed action is the mode, `policy(obs)`.

    Reward scaling is the trainer's job: `REWARD_CONVENTION = "iql"` asks it for IQL's
    recipe (rewards times `1000 / (max episode return - min episode return)` on locomotion,
    `r - 1` on AntMaze; see `spar_eqx.data._normalize.default_reward_transform`).

    With `actor_lr_schedule="cosine"` the actor's rate decays to 0 over `decay_steps`
    updates, which must equal the length of the stage: `phases(steps)` returns the update of
    a copy with `decay_steps = steps` (and refuses a different preset `decay_steps`). Calling
    `update` directly needs `decay_steps` set at construction. The schedule is driven by the
    optimiser state's own counter, so a resumed run continues where it stopped.

    **Fields:**

    - `config`: an `IQLConfig` (float hyperparameters are leaves).
    - `obs_dim`, `act_dim`: static sizes.
    - `decay_steps`: static; the cosine schedule's length (None until `phases` sets it;
      ignored by the constant schedule).
    """

    REWARD_CONVENTION: ClassVar[str] = "iql"

    config: IQLConfig
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)
    decay_steps: int | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        if self.decay_steps is not None and not (
            isinstance(self.decay_steps, int) and self.decay_steps >= 1
        ):
            raise ValueError(f"decay_steps must be a positive integer, got {self.decay_steps!r}.")

    def _optimizer(self) -> optax.GradientTransformation:
        return _adam(self.config.learning_rate, self.config.grad_clip)

    def _actor_schedule(self, decay_steps: int | None):
        c = self.config
        if c.actor_lr_schedule == "constant":
            return c.learning_rate
        if decay_steps is None:
            raise ValueError(
                "IQL with actor_lr_schedule='cosine' needs the length of its stage: run the "
                "update returned by phases(steps), or build IQL(..., decay_steps=steps)."
            )
        return optax.cosine_decay_schedule(c.learning_rate, decay_steps)

    def _actor_optimizer(self, decay_steps: int | None) -> optax.GradientTransformation:
        return _adam(self._actor_schedule(decay_steps), self.config.grad_clip)

    def init(self, key: PRNGKeyArray, previous: None = None) -> IQLState:
        """Fresh networks (target critics equal to the critics) and optimiser states.

        **Arguments:**

        - `key`: the PRNG key of the initialisation (same key, same bits).
        - `previous`: must be None; IQL is a single-stage algorithm.

        **Returns:** an `IQLState` with `step = 0`.
        """
        del previous
        c = self.config
        pkey, qkey, vkey = jr.split(key, 3)
        policy = TanhGaussianPolicy(self.obs_dim, self.act_dim, c.width, c.depth, key=pkey)
        # The optimiser state's structure does not depend on the schedule's length.
        actor_opt = self._actor_optimizer(self.decay_steps or 1)
        return initial_value_state(
            IQLState, policy, c, self.obs_dim, self.act_dim, (qkey, vkey), actor_opt,
            self._optimizer(),
        )  # fmt: skip

    def phases(self, steps: int) -> tuple[Phase, ...]:
        """One phase `"iql"` running `update` for all `steps`.

        With the cosine actor schedule, the phase's update is that of a copy of this learner
        with `decay_steps = steps`.

        **Arguments:** `steps`, the number of updates of the stage.

        **Returns:** `(Phase("iql", update, steps),)`.
        """
        learner = self
        if self.config.actor_lr_schedule == "cosine":
            length = max(int(steps), 1)
            if self.decay_steps is None:
                learner = dataclasses.replace(self, decay_steps=length)
            elif self.decay_steps != length:
                raise ValueError(
                    f"this IQL's cosine actor schedule decays over decay_steps="
                    f"{self.decay_steps} updates, but its stage runs {steps}; build it without "
                    "decay_steps (phases sets it) or with the stage's length."
                )
        return (Phase("iql", learner.update, steps),)

    def policies(
        self, state: IQLState, normalizer: ObservationNormalizer
    ) -> dict[str, BatchPolicy]:
        """The actor's mode on raw observations.

        **Arguments:** `state`, an `IQLState`; `normalizer`, the dataset's observation
        normaliser.

        **Returns:** `{"iql": BasePolicy(normalizer, state.policy)}`.
        """
        return {"iql": BasePolicy(normalizer, state.policy)}

    def update(
        self, state: IQLState, batch: TrainingBatch, key: PRNGKeyArray
    ) -> tuple[IQLState, dict[str, Float[Array, ""]]]:
        """One IQL update: V, then the actor and the critics, then the target critics.

        **Arguments:**

        - `state`: the current `IQLState`.
        - `batch`: a `TrainingBatch` of `n` rows with normalised observations (and rewards
          already transformed by the trainer).
        - `key`: unused (the update is deterministic given the batch).

        **Returns:** `(new_state, metrics)`; metrics are float32 scalars: `value_loss`,
        `critic_loss`, `actor_loss` (before their steps), `v_mean`, `q_mean` (online critics),
        `adv_mean`, `weight_mean` and `actor_lr` (the actor's rate at this step).
        """
        del key
        c = self.config
        opt = self._optimizer()
        actor_opt = self._actor_optimizer(self.decay_steps)
        obs, act = batch.observations, batch.actions

        # 1. V by expectile regression on the target critics' minimum.
        (v_loss, v), grads = eqx.filter_value_and_grad(value_loss, has_aux=True)(
            state.value, state.target_critic, obs, act, c.expectile
        )
        value, value_opt = apply_grads(opt, state.value, grads, state.value_opt)

        # 2. The actor by advantage-weighted regression (target critics, new V).
        (a_loss, (adv, weights)), grads = eqx.filter_value_and_grad(actor_loss, has_aux=True)(
            state.policy, state.target_critic, value, obs, act, c.temperature, c.max_weight
        )
        policy, policy_opt = apply_grads(actor_opt, state.policy, grads, state.policy_opt)

        # 3. The critics towards r + gamma (1 - terminal) V(s') (new V).
        (q_loss, q), grads = eqx.filter_value_and_grad(critic_loss, has_aux=True)(
            state.critic, value, batch, c.gamma
        )
        critic, critic_opt = apply_grads(opt, state.critic, grads, state.critic_opt)

        new_state = IQLState(
            policy=policy,
            critic=critic,
            target_critic=polyak(state.target_critic, critic, c.polyak),
            value=value,
            policy_opt=policy_opt,
            critic_opt=critic_opt,
            value_opt=value_opt,
            step=state.step + 1,
        )
        schedule = self._actor_schedule(self.decay_steps)
        actor_lr = schedule(state.step.astype(jnp.float32)) if callable(schedule) else schedule
        metrics = {
            "value_loss": v_loss,
            "critic_loss": q_loss,
            "actor_loss": a_loss,
            "v_mean": jnp.mean(v),
            "q_mean": jnp.mean(q),
            "adv_mean": jnp.mean(adv),
            "weight_mean": jnp.mean(weights),
            "actor_lr": jnp.asarray(actor_lr, jnp.float32),
        }
        return new_state, metrics
