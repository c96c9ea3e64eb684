"""TD3+BC (Fujimoto & Gu 2021, "A Minimalist Approach to Offline Reinforcement Learning")."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._ensemble import CriticEnsemble
from .._hyper import Scalar, check_non_negative, hyper
from .._networks import DeterministicPolicy
from ..data._transitions import Transitions
from ._td3 import AbstractTD3, TD3State
from ._td3_steps import Metrics, check_td3_config, frozen


class TD3BCConfig(eqx.Module):
    """TD3+BC's hyperparameters, with the paper's defaults (arXiv 2106.06860, Table 3, and
    the authors' reference code, github.com/sfujim/TD3_BC).

    **Fields** (flag, default, source):

    - `num_critics` (`--critics`, 2): TD3's clipped double Q; the actor follows member 0 (`Q1`)
    - `width`, `depth` (`--hidden` 256, `--layers` 2): actor and critics, Table 3
    - `actor_learning_rate`, `critic_learning_rate` (`--actor-lr`, `--critic-lr`, 3e-4 each):
      Adam, Table 3
    - `gamma` (`--gamma`, 0.99), `polyak` (`--polyak`, 0.005): Table 3
    - `alpha` (`--alpha`, 2.5): `lambda = alpha / mean |Q1(s, pi(s))|`, Section 5
    - `policy_noise` (`--policy-noise`, 0.2), `noise_clip` (`--noise-clip`, 0.5),
      `policy_delay` (`--policy-delay`, 2): TD3's, Table 3
    - `batch_size` (`--batch-size`, 256): Table 3

    There is no gradient clipping in TD3+BC, so there is no `grad_clip` field.
    """

    num_critics: int = hyper(
        2, "--critics", "critics (min over all in the target)", static=True,
        paper="TD3's clipped double Q", paper_value=2,
    )  # fmt: skip
    width: int = hyper(
        256, "--hidden", "hidden width of actor and critics", static=True,
        paper="TD3+BC Table 3", paper_value=256,
    )  # fmt: skip
    depth: int = hyper(
        2, "--layers", "hidden layers of actor and critics", static=True,
        paper="TD3+BC Table 3", paper_value=2,
    )  # fmt: skip
    actor_learning_rate: Scalar = hyper(
        3e-4, "--actor-lr", "actor Adam learning rate",
        paper="TD3+BC Table 3", paper_value=3e-4,
    )  # fmt: skip
    critic_learning_rate: Scalar = hyper(
        3e-4, "--critic-lr", "critic Adam learning rate",
        paper="TD3+BC Table 3", paper_value=3e-4,
    )  # fmt: skip
    gamma: Scalar = hyper(
        0.99, "--gamma", "discount",
        paper="TD3+BC Table 3", paper_value=0.99,
    )  # fmt: skip
    polyak: Scalar = hyper(
        0.005, "--polyak", "target-network Polyak rate (on actor steps)",
        paper="TD3+BC Table 3", paper_value=0.005,
    )  # fmt: skip
    alpha: Scalar = hyper(
        2.5, "--alpha", "TD3+BC alpha: lambda = alpha / mean|Q|",
        paper=r"TD3+BC Section 5, $\lambda = \alpha / \text{mean}|Q|$", paper_value=2.5,
    )  # fmt: skip
    policy_noise: Scalar = hyper(
        0.2, "--policy-noise", "target-policy smoothing noise std",
        paper="TD3+BC Table 3 (TD3's)", paper_value=0.2,
    )  # fmt: skip
    noise_clip: Scalar = hyper(
        0.5, "--noise-clip", "clip of the target-policy noise",
        paper="TD3+BC Table 3 (TD3's)", paper_value=0.5,
    )  # fmt: skip
    policy_delay: int = hyper(
        2, "--policy-delay", "critic steps per actor step", static=True,
        paper="TD3+BC Table 3 (TD3's)", paper_value=2,
    )  # fmt: skip
    batch_size: int = hyper(
        256, "--batch-size", "minibatch size", static=True,
        paper="TD3+BC Table 3", paper_value=256,
    )  # fmt: skip

    def __check_init__(self):
        check_td3_config(self)
        check_non_negative(alpha=self.alpha)


TD3BCState = TD3State  # TD3+BC's state is the TD3 family's


class TD3BC(AbstractTD3):
    """TD3+BC as a `Learner`: TD3 whose actor also regresses on the data actions.

    Each update makes one critic step on `sum_i mean (Q_i(s, a) - y)^2` with
    `y = r + gamma (1 - terminal) min_i Q'_i(s', clip(pi'(s') + clip(0.2 eps, -0.5, 0.5)))`,
    then, when `step % policy_delay == 0`, one actor step on

    `-lambda * mean Q1(s, pi(s)) + mean (pi(s) - a)^2`,
    `lambda = stop_grad(alpha / mean |Q1(s, pi(s))|)`

    (the BC term is the reference code's `F.mse_loss`: a mean over the batch and the action
    dimensions) followed by Polyak averaging of the target actor and target critics. The
    actor is a tanh-squashed `DeterministicPolicy`. Observations in `batch` are already
    normalised (TD3+BC's state normalisation is the trainer's `ObservationNormalizer`).
    Everything but the actor loss is the TD3 family's (`AbstractTD3`).

    **Fields:**

    - `config`: a `TD3BCConfig` (float hyperparameters are leaves).
    - `obs_dim`, `act_dim`: static sizes.
    """

    config: TD3BCConfig
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)
    NAME: ClassVar[str] = "td3bc"

    def actor_loss(
        self, actor: DeterministicPolicy, critic: CriticEnsemble, batch: Transitions
    ) -> tuple[Float[Array, ""], Metrics]:
        """`-lambda * mean Q1(s, pi(s)) + mean (pi(s) - a)^2` with `lambda` stop-gradiented.

        The critic is frozen (no gradient reaches it).

        **Arguments:** `actor`, the online actor (differentiated); `critic`, the critics just
        updated; `batch`, the data.

        **Returns:** `(loss, metrics)` with the BC term, `mean Q1(s, pi(s))` and `lambda`.
        """
        pi = jax.vmap(actor)(batch.observations)
        q1 = frozen(critic).select([0]).batch(batch.observations, pi)[:, 0]
        lam = jax.lax.stop_gradient(self.config.alpha / jnp.mean(jnp.abs(q1)))
        bc = jnp.mean((pi - batch.actions) ** 2)
        loss = -lam * jnp.mean(q1) + bc
        return loss, {"bc_loss": bc, "q_policy": jnp.mean(q1), "lambda": lam}
