"""Stage II, SPAR-MLP: a deterministic residual with value-gradient guidance (eq. 7, Alg. 2)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._learner import Phase
from .._losses import value_guidance, weighted_reconstruction
from .._optim import apply_grads, init_opt, make_optimizer
from .._residual import ResidualMLP
from ..data._transitions import Transitions
from .rectify_common import (
    FrozenAnchor,
    Rectifier,
    data_weights,
    robust_q,
    weight_metrics,
)


class MLPState(eqx.Module):
    anchor: FrozenAnchor
    residual: ResidualMLP
    opt: optax.OptState
    step: Int[Array, ""]


class RectifyMLP(Rectifier):
    """SPAR-MLP as pure functions: `init(anchor, key)`, `update(state, batch, key)`.

    Loss (eq. 7): `E[w ||res(s, a_base) - (a - a_base)||^2] - lambda_g E[Q_rob(s, a_synth)]`
    with `a_synth = clip(a_base + res(s, a_base))`. The weights use the data
    critics, the guidance the guide critics; neither critic nor anchor is updated.
    """

    def residual(self, state):
        """The residual of the deployed policy."""
        return state.residual

    def phases(self, steps: int) -> tuple[Phase, ...]:
        """One phase: `update` for all of Stage II's `steps`."""
        return (Phase("residual", self.update, steps),)

    def init(self, key: PRNGKeyArray, previous) -> MLPState:
        c, anchor = self.config, FrozenAnchor.of(previous)
        policy = anchor.policy
        residual = ResidualMLP(policy.obs_dim, policy.act_dim, c.width, c.mlp_depth, key=key)
        opt = make_optimizer(c.learning_rate, c.grad_clip)
        return MLPState(anchor, residual, init_opt(opt, residual), jnp.zeros((), jnp.int32))

    def update(
        self, state: MLPState, batch: Transitions, key: PRNGKeyArray
    ) -> tuple[MLPState, dict[str, Float[Array, ""]]]:
        del key
        c, anchor = self.config, state.anchor
        obs, act = batch.observations, batch.actions
        base = anchor.base_actions(obs)
        data_critic = anchor.critic.select(self.data_critics)
        guide_critic = anchor.critic.select(self.guide_critics)
        w, adv = data_weights(data_critic, obs, act, base, c)

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
        return MLPState(anchor, residual, opt_state, state.step + 1), metrics
