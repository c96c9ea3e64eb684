"""Stage II, SPAR-PROJ: a residual generator (the CVAE, or a flow) with latent
self-imitation (eq. 8-10, Alg. 4), written once against `AbstractResidualGenerator`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._components import GENERATORS
from .._config import ResidualConfig
from .._conflict import guidance_update
from .._ensemble import CriticEnsemble
from .._generator import AbstractResidualGenerator
from .._learner import Phase
from .._losses import convex_targets, latent_self_imitation
from .._optim import apply_grads, init_opt, make_optimizer
from .._residual import polyak, weighted_elbo
from .._weighting import candidate_weights, normalized_advantage
from ..data._transitions import Transitions
from .rectify_common import (
    FrozenAnchor,
    Rectifier,
    conflict_metrics,
    robust_q,
    robust_q_candidates,
    weight_metrics,
)


class PROJState(eqx.Module):
    """SPAR-PROJ's Stage II state (Alg. 4).

    **Fields:**

    - `anchor`: the frozen Stage I anchor.
    - `generator`: the residual generator (the CVAE of eq. 8, or a `ResidualFlow`), trained.
    - `target_generator`: its EMA copy `pi_res'`, which generates the self-imitation
      candidates.
    - `opt`: the generator's Adam state.
    - `step`: updates so far (decides the projection steps).
    """

    anchor: FrozenAnchor
    generator: AbstractResidualGenerator
    target_generator: AbstractResidualGenerator
    opt: optax.OptState
    step: Int[Array, ""]


__all__ = ["PROJState", "RectifyPROJ", "self_imitation_targets", "weighted_elbo"]


def self_imitation_targets(
    anchor: FrozenAnchor,
    target_generator: AbstractResidualGenerator,
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
    """Eq. 9: K prior noises per state, their EMA-generated residuals and normalised weights.

    The noises are the CVAE's latents, or a flow's initial points (integrated to residuals).

    **Arguments:**

    - `anchor`: the frozen anchor (clips the candidate actions `a_base + delta_k`).
    - `target_generator`: the EMA target `pi_res'` that generates the candidates.
    - `guide_critic`: the guide critics that score them.
    - `obs`, `base`: the batch's states and base actions.
    - `config`: the `ResidualConfig` (`num_candidates` = K, `lambda_u`, `temperature`,
      `sensitivity`, `filtering`).
    - `key`: draws the noises `z_k ~ N(0, I)`.

    **Returns:**

    `(latents, targets, omega, advantages)`: the noises `z_k`, the generated residuals
    `delta_k`, the normalised weights `omega_k` and the advantages `A~_k`, all without
    gradient.
    """
    k = config.num_candidates
    latents = jr.normal(key, (obs.shape[0], k, target_generator.noise_dim))
    generate_k = jax.vmap(target_generator.generate, in_axes=(None, None, 0))
    targets = jax.vmap(generate_k)(obs, base, latents)
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

    Every step fits the generator's weighted fit (eq. 8: the CVAE's weighted ELBO, or a
    flow's weighted flow matching). Every `projection_period` steps (counted from step 0) it
    adds `lambda_g` times the latent self-imitation loss (eq. 10): K noises `z_k ~ N(0, I)`
    are turned into residuals by the EMA target generator (decoded, or integrated), weighted
    by `omega_k` (eq. 9), and the online generator's residuals at the same noises regress onto
    them (through the Euler loop, for a flow). The target generator is Polyak-averaged every
    step with rate `target_tau`. `config.generator` picks the generator
    (`spar_eqx._components.GENERATORS`).

    Gradient conflict (Section 4.3, with `config.log_conflict`): `theta` is the generator's
    `generative_part()` (the CVAE decoder, the only part both objectives reach, the encoder
    held fixed; a flow's velocity field); `L_fit` is the weighted fit on the batch, with this
    step's noise; the guidance step
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
        """The residual of the deployed policy, the generator `pi_res(s, a_base, z)` of eq. 8.

        **Arguments:**

        - `state`: a `PROJState`.

        **Returns:**

        Its online generator (`ResidualCVAE` or `ResidualFlow`).
        """
        return state.generator

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

        - `key`: initialises the generator (the target starts as a copy).
        - `previous`: Stage I's final state, or a `FrozenAnchor`.

        **Returns:**

        A `PROJState` at step 0.
        """
        c, anchor = self.config, FrozenAnchor.of(previous)
        policy = anchor.policy
        generator = GENERATORS[c.generator](c, policy.obs_dim, policy.act_dim, key)
        opt = make_optimizer(c.learning_rate, c.grad_clip)
        return PROJState(
            anchor, generator, generator, init_opt(opt, generator), jnp.zeros((), jnp.int32)
        )

    def update(
        self, state: PROJState, batch: Transitions, key: PRNGKeyArray
    ) -> tuple[PROJState, dict[str, Float[Array, ""]]]:
        """One Adam step on the fit (plus eq. 10 on projection steps), then the EMA (Alg. 4).

        **Arguments:**

        - `state`: the current `PROJState`.
        - `batch`: transitions with normalised observations.
        - `key`: split into the fit's noise and the candidate noises.

        **Returns:**

        `(new_state, metrics)`: `loss`, the fit's terms (`recon_loss` and `kl` for the CVAE,
        `flow_loss` for a flow), `self_imitation_loss` (0 off
        projection steps), `projected`, `states_with_targets`, `candidate_advantage` and the
        `weight_metrics`; with `config.log_conflict` also `conflict_dd` and `conflict_vsd` of
        this batch's self-imitation step (Section 4.3).
        """
        c, anchor = self.config, state.anchor
        elbo_key, latent_key = jr.split(key)
        obs, act = batch.observations, batch.actions
        base = anchor.base_actions(obs)
        guide_critic = anchor.critic.select(self.guide_critics)
        w, adv = self.data_weights(anchor, obs, act, base)
        project = (state.step % c.projection_period) == 0

        def guide_loss(generator):
            latents, targets, omega, cand_adv = self_imitation_targets(
                anchor, state.target_generator, guide_critic, obs, base, c, latent_key
            )
            generate_k = jax.vmap(generator.generate, in_axes=(None, None, 0))
            predicted = jax.vmap(generate_k)(obs, base, latents)
            if c.self_imitation == "convex":  # Prop. 3.3(i): one combined target per state
                combined = convex_targets(targets, omega)
                targets = jnp.broadcast_to(combined[:, None, :], targets.shape)
            accepted = jnp.mean(jnp.any(omega > 0, axis=-1).astype(jnp.float32))
            return latent_self_imitation(predicted, targets, omega), (accepted, jnp.mean(cand_adv))

        def skip():
            zero = jnp.zeros((), jnp.float32)
            return zero, (zero, zero)

        def fit_loss(generator):
            return generator.fit_loss(obs, base, act - base, w, c, elbo_key)

        def loss_fn(generator):
            fit, fit_metrics = fit_loss(generator)
            guide, aux = jax.lax.cond(project, lambda: guide_loss(generator), skip)
            return fit + c.lambda_g * guide, (fit_metrics, guide, aux)

        opt = make_optimizer(c.learning_rate, c.grad_clip)
        (loss, (fit_metrics, guide, (accepted, cand_adv))), grads = eqx.filter_value_and_grad(
            loss_fn, has_aux=True
        )(state.generator)
        generator, opt_state = apply_grads(opt, state.generator, grads, state.opt)
        target = polyak(state.target_generator, generator, c.target_tau)
        new_state = PROJState(anchor, generator, target, opt_state, state.step + 1)
        metrics = {
            "loss": loss,
            **fit_metrics,
            "self_imitation_loss": guide,
            "projected": project.astype(jnp.float32),
            "states_with_targets": accepted,
            "candidate_advantage": cand_adv,
            **weight_metrics(w, adv, c),
        }
        if c.log_conflict:  # static: without it the update is exactly the one above

            def fit_of_part(part):
                whole = eqx.tree_at(lambda m: m.generative_part(), state.generator, part)
                return fit_loss(whole)[0]

            fit_grads = eqx.filter_grad(lambda m: fit_loss(m)[0])(state.generator)
            guide_grads = eqx.filter_grad(lambda m: guide_loss(m)[0])(state.generator)
            guided = jax.tree_util.tree_map(lambda f, g: f + c.lambda_g * g, fit_grads, guide_grads)
            delta = guidance_update(opt, state.opt, state.generator, guided, fit_grads)
            part = state.generator.generative_part()
            metrics |= conflict_metrics(fit_of_part, part, delta.generative_part())
        return new_state, metrics
