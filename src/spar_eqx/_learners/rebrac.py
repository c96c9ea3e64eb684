"""ReBRAC (Tarasov et al. 2023, "Revisiting the Minimalist Approach to Offline RL")."""

from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._ensemble import CriticEnsemble
from .._hyper import Scalar, check_choice, check_non_negative, hyper
from .._learner import TrainingBatch
from .._networks import DeterministicPolicy
from ._td3 import AbstractTD3, TD3State
from ._td3_steps import Metrics, check_td3_config, frozen

_ON_OFF = ("on", "off")


class ReBRACConfig(eqx.Module):
    """ReBRAC's hyperparameters, with its D4RL locomotion defaults (arXiv 2305.09836,
    hyperparameter appendix, and the JAX reference code: github.com/tinkoff-ai/ReBRAC,
    copied into CORL as `algorithms/offline/rebrac.py` with per-dataset configs in
    `configs/offline/rebrac/`).

    The two behaviour penalties are tuned per dataset in the paper. The defaults are
    hopper-medium-replay-v2's (`actor_bc_coef` 0.05, `critic_bc_coef` 0.5). `--preset TASK`
    sets the authors' values for the paper's tasks (AntMaze and Adroit included, with their
    rates, batch and discount; see the Domains docs); for other locomotion datasets pass
    them as flags (`--actor-bc-coef`, `--critic-bc-coef`), from the ReBRAC paper's
    hyperparameter table as released in the CORL configs:

    | dataset (-v2)            | actor_bc_coef | critic_bc_coef |
    |--------------------------|---------------|----------------|
    | hopper-medium-replay     | 0.05          | 0.5            |
    | hopper-medium            | 0.01          | 0.01           |
    | hopper-medium-expert     | 0.1           | 0.01           |
    | halfcheetah-medium-replay| 0.01          | 0.001          |
    | halfcheetah-medium       | 0.001         | 0.01           |
    | halfcheetah-medium-expert| 0.01          | 0.1            |
    | walker2d-medium-replay   | 0.05          | 0.01           |
    | walker2d-medium          | 0.05          | 0.1            |
    | walker2d-medium-expert   | 0.01          | 0.01           |

    **Fields** (flag, default, source):

    - `num_critics` (`--critics`, 2): clipped double Q; the target and the actor use the minimum
    - `width`, `depth` (`--hidden` 256, `--layers` 3): actor and critics (`hidden_dim`,
      `actor_n_hiddens`, `critic_n_hiddens`)
    - `critic_layer_norm` (`--critic-layer-norm`, `"on"`): LayerNorm in the critics
      (`critic_ln`); the actor has none (`actor_ln` false)
    - `actor_learning_rate`, `critic_learning_rate` (`--actor-lr`, `--critic-lr`, 1e-3 each): Adam
    - `gamma` (`--gamma`, 0.99), `polyak` (`--polyak`, 0.005): `gamma`, `tau`
    - `policy_noise` (`--policy-noise`, 0.2), `noise_clip` (`--noise-clip`, 0.5),
      `policy_delay` (`--policy-delay`, 2): `policy_noise`, `noise_clip`, `policy_freq`
    - `actor_bc_coef` (`--actor-bc-coef`, 0.05), `critic_bc_coef` (`--critic-bc-coef`, 0.5):
      beta_1 and beta_2, hopper-medium-replay's values (table above)
    - `batch_size` (`--batch-size`, 1024)

    `normalize_q` is always on (every locomotion config sets it), and there is no gradient
    clipping in ReBRAC.
    """

    num_critics: int = hyper(
        2, "--critics", "critics (min over all)", static=True,
        paper="ReBRAC (clipped double Q)", paper_value=2,
    )  # fmt: skip
    width: int = hyper(
        256, "--hidden", "hidden width of actor and critics", static=True,
        paper="ReBRAC / CORL `hidden_dim`", paper_value=256,
    )  # fmt: skip
    depth: int = hyper(
        3, "--layers", "hidden layers of actor and critics", static=True,
        paper="ReBRAC / CORL `actor_n_hiddens`, `critic_n_hiddens`", paper_value=3,
    )  # fmt: skip
    critic_layer_norm: Literal["on", "off"] = hyper(
        "on", "--critic-layer-norm", "LayerNorm in the critics: 'on' or 'off'",
        static=True, choices=_ON_OFF,
        paper="ReBRAC / CORL `critic_ln`", paper_value="on",
    )  # fmt: skip
    actor_learning_rate: Scalar = hyper(
        1e-3, "--actor-lr", "actor Adam learning rate",
        paper="ReBRAC / CORL `actor_learning_rate`", paper_value=1e-3,
    )  # fmt: skip
    critic_learning_rate: Scalar = hyper(
        1e-3, "--critic-lr", "critic Adam learning rate",
        paper="ReBRAC / CORL `critic_learning_rate`", paper_value=1e-3,
    )  # fmt: skip
    gamma: Scalar = hyper(
        0.99, "--gamma", "discount",
        paper="ReBRAC / CORL `gamma`", paper_value=0.99,
    )  # fmt: skip
    polyak: Scalar = hyper(
        0.005, "--polyak", "target-network Polyak rate (on actor steps)",
        paper="ReBRAC / CORL `tau`", paper_value=0.005,
    )  # fmt: skip
    policy_noise: Scalar = hyper(
        0.2, "--policy-noise", "target-policy smoothing noise std",
        paper="ReBRAC / CORL `policy_noise`", paper_value=0.2,
    )  # fmt: skip
    noise_clip: Scalar = hyper(
        0.5, "--noise-clip", "clip of the target-policy noise",
        paper="ReBRAC / CORL `noise_clip`", paper_value=0.5,
    )  # fmt: skip
    policy_delay: int = hyper(
        2, "--policy-delay", "critic steps per actor step", static=True,
        paper="ReBRAC / CORL `policy_freq`", paper_value=2,
    )  # fmt: skip
    actor_bc_coef: Scalar = hyper(
        0.05, "--actor-bc-coef", "ReBRAC beta_1 (actor BC penalty)",
        paper=r"ReBRAC $\beta_1$, hopper-medium-replay (tuned per dataset)", paper_value=0.05,
    )  # fmt: skip
    critic_bc_coef: Scalar = hyper(
        0.5, "--critic-bc-coef", "ReBRAC beta_2 (critic BC penalty)",
        paper=r"ReBRAC $\beta_2$, hopper-medium-replay (tuned per dataset)", paper_value=0.5,
    )  # fmt: skip
    batch_size: int = hyper(
        1024, "--batch-size", "minibatch size", static=True,
        paper="ReBRAC / CORL `batch_size`", paper_value=1024,
    )  # fmt: skip

    def __check_init__(self):
        check_choice("critic_layer_norm", self.critic_layer_norm, _ON_OFF)
        check_td3_config(self)
        check_non_negative(actor_bc_coef=self.actor_bc_coef, critic_bc_coef=self.critic_bc_coef)


ReBRACState = TD3State  # ReBRAC's state is the TD3 family's


class ReBRAC(AbstractTD3):
    """ReBRAC as a `Learner`: TD3+BC with decoupled actor and critic behaviour penalties,
    LayerNorm critics, deeper networks, larger batches and learning rates.

    Each update makes one critic step on `sum_i mean (Q_i(s, a) - y)^2` with

    `y = r + gamma (1 - terminal) (min_i Q'_i(s', a') - beta_2 ||a' - a'_data||^2)`,
    `a' = clip(pi'(s') + clip(0.2 eps, -0.5, 0.5))`,

    `a'_data` the dataset's next action (`batch.next_actions`), then, when
    `step % policy_delay == 0`, one actor step on

    `mean(beta_1 ||pi(s) - a||^2 - lambda Q(s, pi(s)))`, `Q = min_i Q_i`,
    `lambda = stop_grad(1 / mean |Q(s, pi(s))|)`

    followed by Polyak averaging of the target actor and target critics. Observations in
    `batch` are already normalised. What it shares with TD3+BC is `AbstractTD3`; what
    differs is the critic penalty (`target_penalty`), the LayerNorm switch and the actor loss.

    **Fields:**

    - `config`: a `ReBRACConfig` (float hyperparameters are leaves).
    - `obs_dim`, `act_dim`: static sizes.
    """

    config: ReBRACConfig
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)
    NAME: ClassVar[str] = "rebrac"

    def critic_layer_norm(self) -> bool:
        """`critic_layer_norm == "on"`: LayerNorm in the critics (ReBRAC's default)."""
        return self.config.critic_layer_norm == "on"

    def target_penalty(
        self, next_actions: Float[Array, "n act_dim"], batch: TrainingBatch
    ) -> tuple[Float[Array, " n"], Metrics]:
        """ReBRAC's critic penalty `beta_2 ||a' - a'_data||^2` (`a'_data = batch.next_actions`).

        **Arguments:** `next_actions`, the smoothed `a'`; `batch`, a `TrainingBatch`.

        **Returns:** `(penalty, {"next_action_mse": mean ||a' - a'_data||^2})`.
        """
        distance = jnp.sum((next_actions - batch.next_actions) ** 2, axis=-1)
        return self.config.critic_bc_coef * distance, {"next_action_mse": jnp.mean(distance)}

    def actor_loss(
        self, actor: DeterministicPolicy, critic: CriticEnsemble, batch: TrainingBatch
    ) -> tuple[Float[Array, ""], Metrics]:
        """`mean(beta_1 ||pi(s) - a||^2 - lambda min_i Q_i(s, pi(s)))`, `lambda` stop-gradiented.

        The critic is frozen (no gradient reaches it).

        **Arguments:** `actor`, the online actor (differentiated); `critic`, the critics just
        updated; `batch`, the data.

        **Returns:** `(loss, metrics)` with the mean squared distance `||pi(s) - a||^2`,
        `mean Q(s, pi(s))` and `lambda`.
        """
        pi = jax.vmap(actor)(batch.observations)
        q = jnp.min(frozen(critic).batch(batch.observations, pi), axis=-1)
        lam = jax.lax.stop_gradient(1.0 / jnp.mean(jnp.abs(q)))
        distance = jnp.sum((pi - batch.actions) ** 2, axis=-1)
        loss = jnp.mean(self.config.actor_bc_coef * distance - lam * q)
        return loss, {"bc_loss": jnp.mean(distance), "q_policy": jnp.mean(q), "lambda": lam}
