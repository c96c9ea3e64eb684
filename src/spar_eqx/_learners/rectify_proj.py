"""Stage II, SPAR-PROJ: a residual CVAE with latent self-imitation (eq. 8-10, Alg. 4)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._config import ResidualConfig
from .._learner import Phase
from .._losses import (
    convex_targets,
    gaussian_kl,
    latent_self_imitation,
    weighted_reconstruction,
)
from .._optim import apply_grads, init_opt, make_optimizer
from .._residual import ResidualCVAE, polyak
from .._weighting import candidate_weights, normalized_advantage
from ..data._transitions import Transitions
from .rectify_common import (
    FrozenAnchor,
    Rectifier,
    data_weights,
    robust_q,
    robust_q_candidates,
    weight_metrics,
)


class PROJState(eqx.Module):
    anchor: FrozenAnchor
    cvae: ResidualCVAE
    target_cvae: ResidualCVAE
    opt: optax.OptState
    step: Int[Array, ""]


def weighted_elbo(
    cvae: ResidualCVAE,
    obs: Float[Array, "batch obs_dim"],
    base: Float[Array, "batch act_dim"],
    residual: Float[Array, "batch act_dim"],
    weights: Float[Array, " batch"],
    config: ResidualConfig,
    key: PRNGKeyArray,
) -> tuple[Float[Array, ""], tuple[Float[Array, ""], Float[Array, ""]]]:
    """Eq. 8: `recon_weight * E[w ||dec(s, a_base, z) - delta||^2] + beta * KL`.

    The weight multiplies only the reconstruction; the KL is never weighted.
    Returns `(loss, (reconstruction, kl))`.
    """
    keys = jr.split(key, obs.shape[0])
    recon, mean, log_std = jax.vmap(lambda o, b, r, k: cvae(o, b, r, key=k))(
        obs, base, residual, keys
    )
    rec = weighted_reconstruction(recon, residual, weights)
    kl = gaussian_kl(mean, log_std)
    return config.recon_weight * rec + config.kl_weight * kl, (rec, kl)


def self_imitation_targets(
    anchor: FrozenAnchor,
    target_cvae: ResidualCVAE,
    guide_critic,
    obs: Float[Array, "batch obs_dim"],
    base: Float[Array, "batch act_dim"],
    config: ResidualConfig,
    key: PRNGKeyArray,
):
    """K prior latents per state, their EMA-decoded residuals and normalised weights (eq. 9).

    Returns `(latents (B, K, dz), targets (B, K, A), omega (B, K), advantages (B, K))`,
    all without gradient.
    """
    k = config.num_candidates
    latents = jr.normal(key, (obs.shape[0], k, target_cvae.latent_dim))
    decode_k = jax.vmap(target_cvae.decode, in_axes=(None, None, 0))
    targets = jax.vmap(decode_k)(obs, base, latents)
    q_k = robust_q_candidates(
        guide_critic, obs, anchor.clip(base[:, None, :] + targets), config.lambda_u
    )
    q_base, sigma = robust_q(guide_critic, obs, base, config.lambda_u)
    # normalized_advantage is elementwise over one shape: broadcast the per-state terms.
    adv = normalized_advantage(
        q_k,
        jnp.broadcast_to(q_base[:, None], q_k.shape),
        jnp.broadcast_to(sigma[:, None], q_k.shape),
    )
    omega = candidate_weights(adv, config.temperature, config.sensitivity, config.filtering)
    return jax.lax.stop_gradient((latents, targets, omega, adv))


class RectifyPROJ(Rectifier):
    """SPAR-PROJ as pure functions: `init(anchor, key)`, `update(state, batch, key)`.

    Every step fits the weighted ELBO (eq. 8). Every `projection_period` steps
    (counted from step 0) it adds `lambda_g` times the latent self-imitation loss
    (eq. 10): K latents `z_k ~ N(0, I)` are decoded by the EMA target decoder,
    weighted by `omega_k` (eq. 9), and the online decoder regresses onto them.
    The target CVAE is Polyak-averaged every step with rate `target_tau`.
    """

    def residual(self, state):
        """The residual of the deployed policy."""
        return state.cvae

    def phases(self, steps: int) -> tuple[Phase, ...]:
        """One phase: `update` for all of Stage II's `steps`."""
        return (Phase("residual", self.update, steps),)

    def init(self, key: PRNGKeyArray, previous) -> PROJState:
        c, anchor = self.config, FrozenAnchor.of(previous)
        policy = anchor.policy
        cvae = ResidualCVAE(
            policy.obs_dim, policy.act_dim, c.latent_dim, c.width, c.cvae_depth, key=key
        )
        opt = make_optimizer(c.learning_rate, c.grad_clip)
        return PROJState(anchor, cvae, cvae, init_opt(opt, cvae), jnp.zeros((), jnp.int32))

    def update(
        self, state: PROJState, batch: Transitions, key: PRNGKeyArray
    ) -> tuple[PROJState, dict[str, Float[Array, ""]]]:
        c, anchor = self.config, state.anchor
        elbo_key, latent_key = jr.split(key)
        obs, act = batch.observations, batch.actions
        base = anchor.base_actions(obs)
        data_critic = anchor.critic.select(self.data_critics)
        guide_critic = anchor.critic.select(self.guide_critics)
        w, adv = data_weights(data_critic, obs, act, base, c)
        project = (state.step % c.projection_period) == 0

        def guide_loss(cvae):
            latents, targets, omega, cand_adv = self_imitation_targets(
                anchor, state.target_cvae, guide_critic, obs, base, c, latent_key
            )
            decode_k = jax.vmap(cvae.decode, in_axes=(None, None, 0))
            predicted = jax.vmap(decode_k)(obs, base, latents)
            if c.self_imitation == "convex":  # Prop. 3.3(i): one combined target per state
                combined = convex_targets(targets, omega)
                targets = jnp.broadcast_to(combined[:, None, :], targets.shape)
            accepted = jnp.mean(jnp.any(omega > 0, axis=-1).astype(jnp.float32))
            return latent_self_imitation(predicted, targets, omega), (accepted, jnp.mean(cand_adv))

        def skip():
            zero = jnp.zeros((), jnp.float32)
            return zero, (zero, zero)

        def loss_fn(cvae):
            fit, (rec, kl) = weighted_elbo(cvae, obs, base, act - base, w, c, elbo_key)
            guide, aux = jax.lax.cond(project, lambda: guide_loss(cvae), skip)
            return fit + c.lambda_g * guide, (rec, kl, guide, aux)

        opt = make_optimizer(c.learning_rate, c.grad_clip)
        (loss, (rec, kl, guide, (accepted, cand_adv))), grads = eqx.filter_value_and_grad(
            loss_fn, has_aux=True
        )(state.cvae)
        cvae, opt_state = apply_grads(opt, state.cvae, grads, state.opt)
        new_state = PROJState(
            anchor, cvae, polyak(state.target_cvae, cvae, c.target_tau), opt_state, state.step + 1
        )
        metrics = {
            "loss": loss,
            "recon_loss": rec,
            "kl": kl,
            "self_imitation_loss": guide,
            "projected": project.astype(jnp.float32),
            "states_with_targets": accepted,
            "candidate_advantage": cand_adv,
            **weight_metrics(w, adv, c),
        }
        return new_state, metrics
