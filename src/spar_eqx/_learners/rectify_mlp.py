"""Stage II, SPAR-MLP: a deterministic residual with value-gradient guidance (eq. 7, Alg. 2)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._conflict import guidance_update
from .._learner import Phase
from .._losses import value_guidance, weighted_reconstruction
from .._optim import apply_grads, init_opt, make_optimizer
from .._residual import ResidualMLP
from ..data._transitions import Transitions
from .rectify_common import (
    FrozenAnchor,
    Rectifier,
    conflict_metrics,
    robust_q,
    weight_metrics,
)


class MLPState(eqx.Module):
    """SPAR-MLP's Stage II state (Alg. 2).

    **Fields:**

    - `anchor`: the frozen Stage I anchor.
    - `residual`: the residual MLP `pi_res(s, a_base)` of eq. 7.
    - `opt`: its Adam state.
    - `step`: updates so far.
    """

    anchor: FrozenAnchor
    residual: ResidualMLP
    opt: optax.OptState
    step: Int[Array, ""]


class RectifyMLP(Rectifier):
    """SPAR-MLP (eq. 7, Alg. 2) as pure functions: `init(key, anchor)`, `update(state, batch, key)`.

    Loss (eq. 7): `E[w ||res(s, a_base) - (a - a_base)||^2] - lambda_g E[Q_rob(s, a_synth)]`
    with `a_synth = clip(a_base + res(s, a_base))`. The weights use the data
    critics, the guidance the guide critics; neither critic nor anchor is updated.

    Gradient conflict (Section 4.3, with `config.log_conflict`): `theta` is the residual MLP;
    `L_fit` is eq. 7's weighted regression term `E[w ||res(s, a_base) - (a - a_base)||^2]`
    on the batch; the guidance step is what the `-lambda_g E[Q_rob(s, a_synth)]` term adds to
    this step's optimiser update (`guidance_update`: Adam from the current state on the full
    gradient, minus Adam from the same state on the fit gradient alone).

    **Arguments:**

    - `config`: the `ResidualConfig`.
    - `data_critics`, `guide_critics`: member indices of the data weights and the guidance.
    - `gate`, `gate_critics`: the Stage III gate (see `Rectifier`).
    """

    def residual(self, state):
        """The residual of the deployed policy, `pi_res` of eq. 7.

        **Arguments:**

        - `state`: an `MLPState`.

        **Returns:**

        Its `ResidualMLP`.
        """
        return state.residual

    def phases(self, steps: int) -> tuple[Phase, ...]:
        """Alg. 2's single loop: `update` for all of Stage II's steps.

        **Arguments:**

        - `steps`: Stage II's update budget.

        **Returns:**

        One `Phase("residual", update, steps)`.
        """
        return (Phase("residual", self.update, steps),)

    def init(self, key: PRNGKeyArray, previous) -> MLPState:
        """A fresh SPAR-MLP state on top of the frozen anchor (Alg. 2, input).

        **Arguments:**

        - `key`: initialises the residual MLP.
        - `previous`: Stage I's final state, or a `FrozenAnchor`.

        **Returns:**

        An `MLPState` at step 0.
        """
        c, anchor = self.config, FrozenAnchor.of(previous)
        policy = anchor.policy
        residual = ResidualMLP(policy.obs_dim, policy.act_dim, c.width, c.mlp_depth, key=key)
        opt = make_optimizer(c.learning_rate, c.grad_clip)
        return MLPState(anchor, residual, init_opt(opt, residual), jnp.zeros((), jnp.int32))

    def update(
        self, state: MLPState, batch: Transitions, key: PRNGKeyArray
    ) -> tuple[MLPState, dict[str, Float[Array, ""]]]:
        """One Adam step on eq. 7 (Alg. 2, one iteration).

        **Arguments:**

        - `state`: the current `MLPState`.
        - `batch`: transitions with normalised observations.
        - `key`: unused (the update is deterministic).

        **Returns:**

        `(new_state, metrics)`: `loss`, `fit_loss`, `guide_q` (mean `Q_rob(s, a_synth)`),
        the `weight_metrics` and `residual_norm`; with `config.log_conflict` also
        `conflict_dd` and `conflict_vsd` of this step's guidance (Section 4.3).
        """
        del key
        c, anchor = self.config, state.anchor
        obs, act = batch.observations, batch.actions
        base = anchor.base_actions(obs)
        guide_critic = anchor.critic.select(self.guide_critics)
        w, adv = self.data_weights(anchor, obs, act, base)

        def loss_fn(residual):
            res = jax.vmap(residual)(obs, base)
            fit = weighted_reconstruction(res, act - base, w)
            q, _ = robust_q(guide_critic, obs, anchor.clip(base + res), c.lambda_u)
            guide = value_guidance(q)
            return fit + c.lambda_g * guide, (fit, guide, res)

        opt = make_optimizer(c.learning_rate, c.grad_clip)
        (loss, (fit, guide, res)), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(
            state.residual
        )
        residual, opt_state = apply_grads(opt, state.residual, grads, state.opt)
        metrics = {
            "loss": loss,
            "fit_loss": fit,
            "guide_q": -guide,
            **weight_metrics(w, adv, c),
            "residual_norm": jnp.mean(jnp.linalg.norm(res, axis=-1)),
        }
        if c.log_conflict:  # static: without it the update is exactly the one above

            def fit_loss(residual):
                return weighted_reconstruction(jax.vmap(residual)(obs, base), act - base, w)

            fit_grads = eqx.filter_grad(fit_loss)(state.residual)
            delta = guidance_update(opt, state.opt, state.residual, grads, fit_grads)
            metrics |= conflict_metrics(fit_loss, state.residual, delta)
        return MLPState(anchor, residual, opt_state, state.step + 1), metrics
