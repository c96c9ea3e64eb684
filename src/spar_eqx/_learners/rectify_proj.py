"""Stage II, SPAR-PROJ: a residual CVAE with latent self-imitation (eq. 8-10, Alg. 4)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._config import ResidualConfig
from .._conflict import guidance_update
from .._ensemble import CriticEnsemble
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
    conflict_metrics,
    data_weights,
    robust_q,
    robust_q_candidates,
    weight_metrics,
)


class PROJState(eqx.Module):
    """SPAR-PROJ's Stage II state (Alg. 4).

    **Fields:**

    - `anchor`: the frozen Stage I anchor.
    - `cvae`: the residual CVAE (eq. 8), trained.
    - `target_cvae`: its EMA copy `pi_res'`, which decodes the self-imitation candidates.
    - `opt`: the CVAE's Adam state.
    - `step`: updates so far (decides the projection steps).
    """

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
    `z ~ q(z | s, delta)` is drawn by reparameterisation with `key`.

    **Arguments:**

    - `cvae`: the residual CVAE.
    - `obs`, `base`: the batch's states and base actions `a_base`.
    - `residual`: the data residuals `delta = a - a_base`.
    - `weights`: the data weights `w(s, a)` (no gradient flows into them).
    - `config`: the `ResidualConfig` (`recon_weight`, `kl_weight` = `beta`).
    - `key`: the reparameterisation noise, one draw per row.

    **Returns:**

    `(loss, (reconstruction, kl))`, three scalars.
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
    guide_critic: CriticEnsemble,
    obs: Float[Array, "batch obs_dim"],
    base: Float[Array, "batch act_dim"],
    config: ResidualConfig,
    key: PRNGKeyArray,
) -> tuple[
    Float[Array, "batch candidates latent"],
    Float[Array, "batch candidates act_dim"],
    Float[Array, "batch candidates"],
    Float[Array, "batch candidates"],
]:
    """Eq. 9: K prior latents per state, their EMA-decoded residuals and normalised weights.

    **Arguments:**

    - `anchor`: the frozen anchor (clips the candidate actions `a_base + delta_k`).
    - `target_cvae`: the EMA target `pi_res'` that decodes the candidates.
    - `guide_critic`: the guide critics that score them.
    - `obs`, `base`: the batch's states and base actions.
    - `config`: the `ResidualConfig` (`num_candidates` = K, `lambda_u`, `temperature`,
      `sensitivity`, `filtering`).
    - `key`: draws the latents `z_k ~ N(0, I)`.

    **Returns:**

    `(latents, targets, omega, advantages)`: the latents `z_k`, the decoded residuals
    `delta_k`, the normalised weights `omega_k` and the advantages `A~_k`, all without
    gradient.
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
    """SPAR-PROJ (eq. 8-10, Alg. 4) as pure functions: `init(key, anchor)`, `update(state, batch,
    key)`.

    Every step fits the weighted ELBO (eq. 8). Every `projection_period` steps
    (counted from step 0) it adds `lambda_g` times the latent self-imitation loss
    (eq. 10): K latents `z_k ~ N(0, I)` are decoded by the EMA target decoder,
    weighted by `omega_k` (eq. 9), and the online decoder regresses onto them.
    The target CVAE is Polyak-averaged every step with rate `target_tau`.

    Gradient conflict (Section 4.3, with `config.log_conflict`): `theta` is the CVAE decoder
    (the only part both objectives reach; the encoder is held fixed); `L_fit` is eq. 8's
    weighted ELBO on the batch, with this step's reparameterisation noise; the guidance step
    is what `lambda_g` times eq. 10's loss (this step's latents and EMA targets) adds to the
    optimiser update (`guidance_update`: Adam from the current state on the ELBO plus
    self-imitation gradient, minus Adam on the ELBO gradient alone), restricted to the
    decoder. It is measured on *every* step, as the self-imitation step this batch would
    take, so each logged value (an average over steps) is a real measurement; on projection
    steps it is exactly the guidance inside the applied update.

    **Arguments:**

    - `config`: the `ResidualConfig`.
    - `data_critics`, `guide_critics`: member indices of the data weights and the guidance.
    - `gate`, `gate_critics`: the Stage III gate (see `Rectifier`).
    """

    def residual(self, state):
        """The residual of the deployed policy, the CVAE `pi_res(s, a_base, z)` of eq. 8.

        **Arguments:**

        - `state`: a `PROJState`.

        **Returns:**

        Its online `ResidualCVAE`.
        """
        return state.cvae

    def phases(self, steps: int) -> tuple[Phase, ...]:
        """Alg. 4's single loop: `update` for all of Stage II's steps.

        **Arguments:**

        - `steps`: Stage II's update budget.

        **Returns:**

        One `Phase("residual", update, steps)`; the self-imitation metrics are averaged over
        the projection steps alone (`sparse_metrics`, flagged by `projected`).
        """
        sparse = {
            name: "projected"
            for name in ("self_imitation_loss", "states_with_targets", "candidate_advantage")
        }
        return (Phase("residual", self.update, steps, sparse_metrics=sparse),)

    def init(self, key: PRNGKeyArray, previous) -> PROJState:
        """A fresh SPAR-PROJ state on top of the frozen anchor (Alg. 4, input).

        **Arguments:**

        - `key`: initialises the CVAE (the target starts as a copy).
        - `previous`: Stage I's final state, or a `FrozenAnchor`.

        **Returns:**

        A `PROJState` at step 0.
        """
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
        """One Adam step on eq. 8 (plus eq. 10 on projection steps), then the EMA (Alg. 4).

        **Arguments:**

        - `state`: the current `PROJState`.
        - `batch`: transitions with normalised observations.
        - `key`: split into the ELBO's reparameterisation noise and the candidate latents.

        **Returns:**

        `(new_state, metrics)`: `loss`, `recon_loss`, `kl`, `self_imitation_loss` (0 off
        projection steps), `projected`, `states_with_targets`, `candidate_advantage` and the
        `weight_metrics`; with `config.log_conflict` also `conflict_dd` and `conflict_vsd` of
        this batch's self-imitation step (Section 4.3).
        """
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
        if c.log_conflict:  # static: without it the update is exactly the one above

            def elbo(cvae):
                return weighted_elbo(cvae, obs, base, act - base, w, c, elbo_key)[0]

            def elbo_of_decoder(decoder):
                return elbo(eqx.tree_at(lambda m: m.decoder, state.cvae, decoder))

            fit_grads = eqx.filter_grad(elbo)(state.cvae)
            guide_grads = eqx.filter_grad(lambda m: guide_loss(m)[0])(state.cvae)
            guided = jax.tree_util.tree_map(lambda f, g: f + c.lambda_g * g, fit_grads, guide_grads)
            delta = guidance_update(opt, state.opt, state.cvae, guided, fit_grads)
            metrics |= conflict_metrics(elbo_of_decoder, state.cvae.decoder, delta.decoder)
        return new_state, metrics
