"""Behaviour cloning (BC): the simplest offline baseline, one deterministic policy."""

import equinox as eqx
import jax
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._evaluation import BatchPolicy
from .._hyper import Scalar, check_count, check_positive, hyper
from .._learner import Learner, Phase, TrainingBatch
from .._losses import bc_loss
from .._networks import DeterministicPolicy
from .._optim import apply_grads, initial_state, make_optimizer
from .._policy import BasePolicy
from ..data._normalize import ObservationNormalizer


class BCConfig(eqx.Module):
    """Deterministic behaviour cloning: `min E ||pi(s) - a||^2` (SPAR's Alg. 1 line 4 alone).

    The defaults are those of the BC baselines of TD3+BC (Fujimoto and Gu, 2021,
    arXiv 2106.06860) and IQL (Kostrikov et al., 2022, arXiv 2110.06169): an MLP of two
    hidden layers of 256 units, Adam at 3e-4, batches of 256, no gradient clipping.

    **Fields** (flag, default, source):

    - `width`, `depth` (`--hidden` 256, `--layers` 2): TD3+BC / IQL
    - `learning_rate` (`--lr`, 3e-4): Adam, TD3+BC / IQL
    - `grad_clip` (`--grad-clip`, None: no clipping): global-norm clip, off as in TD3+BC / IQL
    - `batch_size` (`--batch-size`, 256): TD3+BC / IQL
    """

    width: int = hyper(
        256, "--hidden", "hidden width of the BC policy", static=True,
        paper="TD3+BC and IQL's BC baselines", paper_value=256,
    )  # fmt: skip
    depth: int = hyper(
        2, "--layers", "hidden layers of the BC policy", static=True,
        paper="TD3+BC and IQL's BC baselines", paper_value=2,
    )  # fmt: skip
    learning_rate: Scalar = hyper(
        3e-4, "--lr", "BC Adam learning rate",
        paper="TD3+BC and IQL's BC baselines (Adam)", paper_value=3e-4,
    )  # fmt: skip
    grad_clip: Scalar | None = hyper(
        None, "--grad-clip", "global-norm gradient clip (none)", kind=float,
        paper="none, as in TD3+BC and IQL",
    )  # fmt: skip
    batch_size: int = hyper(
        256, "--batch-size", "minibatch size", static=True,
        paper="TD3+BC and IQL's BC baselines", paper_value=256,
    )  # fmt: skip

    def __check_init__(self):
        check_count(width=self.width, depth=self.depth, batch_size=self.batch_size)
        check_positive(learning_rate=self.learning_rate, grad_clip=self.grad_clip)


class BCState(eqx.Module):
    """The BC policy, its Adam state and the update counter.

    **Fields:**

    - `policy`: the `DeterministicPolicy` `a = tanh(MLP(s))`, on normalised observations.
    - `policy_opt`: its optimiser state.
    - `step`: int32 scalar, the number of updates made (shared across seeds by the trainer).
    """

    policy: DeterministicPolicy
    policy_opt: optax.OptState
    step: Int[Array, ""]


class BC(Learner):
    """Behaviour cloning as a `Learner`: one phase `"bc"` of MSE regression on data actions.

    Each update makes one Adam step on `E ||pi(s) - a||^2` (summed over action dimensions,
    averaged over the batch). The minimiser at a state is the mean of the dataset's actions
    there, which `tanh` can represent as long as it lies inside `(-1, 1)`. Rewards, next
    observations and flags are ignored, so BC needs no reward convention.

    **Fields:**

    - `config`: a `BCConfig` (float hyperparameters are leaves).
    - `obs_dim`, `act_dim`: static sizes.
    """

    config: BCConfig
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)

    def _optimizer(self) -> optax.GradientTransformation:
        return make_optimizer(self.config.learning_rate, self.config.grad_clip)

    def init(self, key: PRNGKeyArray, previous: None = None) -> BCState:
        """A fresh policy and optimiser state.

        **Arguments:**

        - `key`: the PRNG key of the initialisation (same key, same bits).
        - `previous`: must be None; BC is a single-stage algorithm.

        **Returns:** a `BCState` with `step = 0`.
        """
        del previous
        c = self.config
        policy = DeterministicPolicy(self.obs_dim, self.act_dim, c.width, c.depth, key=key)
        return initial_state(BCState, {"policy": self._optimizer()}, policy=policy)

    def phases(self, steps: int) -> tuple[Phase, ...]:
        """One phase `"bc"` running `update` for all `steps`.

        **Arguments:** `steps`, the number of updates of the stage.

        **Returns:** `(Phase("bc", self.update, steps),)`.
        """
        return (Phase("bc", self.update, steps),)

    def policies(self, state: BCState, normalizer: ObservationNormalizer) -> dict[str, BatchPolicy]:
        """The cloned policy on raw observations.

        **Arguments:** `state`, a `BCState`; `normalizer`, the dataset's observation normaliser.

        **Returns:** `{"bc": BasePolicy(normalizer, state.policy)}`.
        """
        return {"bc": BasePolicy(normalizer, state.policy)}

    def update(
        self, state: BCState, batch: TrainingBatch, key: PRNGKeyArray
    ) -> tuple[BCState, dict[str, Float[Array, ""]]]:
        """One Adam step on the behaviour-cloning loss (pure; jit/vmap/scan-able).

        **Arguments:**

        - `state`: the current `BCState`.
        - `batch`: a `TrainingBatch` of `n` rows with normalised observations.
        - `key`: unused (the update is deterministic given the batch).

        **Returns:** `(new_state, {"bc_loss": E ||pi(s) - a||^2 before the step})`.
        """
        del key
        obs, act = batch.observations, batch.actions
        loss, grads = eqx.filter_value_and_grad(lambda policy: bc_loss(jax.vmap(policy)(obs), act))(
            state.policy
        )
        policy, policy_opt = apply_grads(self._optimizer(), state.policy, grads, state.policy_opt)
        new_state = BCState(policy=policy, policy_opt=policy_opt, step=state.step + 1)
        return new_state, {"bc_loss": loss}
