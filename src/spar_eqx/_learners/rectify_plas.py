"""Stage II, SPAR-PLAS (ablation): a frozen residual generator (the CVAE, or a flow) and a
latent policy over its noise (Alg. 3), written once against `AbstractResidualGenerator`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._components import GENERATORS
from .._conflict import guidance_update
from .._generator import AbstractResidualGenerator
from .._learner import Phase
from .._losses import value_guidance, weighted_reconstruction
from .._optim import apply_grads, init_opt, make_optimizer
from .._policy import PLASResidual
from .._residual import LatentPolicy
from ..data._transitions import Transitions
from .rectify_common import (
    FrozenAnchor,
    Rectifier,
    conflict_metrics,
    robust_q,
    weight_metrics,
)


class PLASState(eqx.Module):
    """SPAR-PLAS's Stage II state (Alg. 3).

    **Fields:**

    - `anchor`: the frozen Stage I anchor.
    - `generator`: the residual generator (the CVAE of eq. 8, or a `ResidualFlow`), trained
      in phase 1 and frozen in phase 2.
    - `latent_policy`: the deterministic latent actor `pi_z(s, a_base)` over the generator's
      noise, trained in phase 2.
    - `generator_opt`, `latent_opt`: their Adam states.
    - `step`: updates so far, over both phases.
    """

    anchor: FrozenAnchor
    generator: AbstractResidualGenerator
    latent_policy: LatentPolicy
    generator_opt: optax.OptState
    latent_opt: optax.OptState
    step: Int[Array, ""]


class RectifyPLAS(Rectifier):
    """SPAR-PLAS (Alg. 3) in two phases, each a pure `update(state, batch, key)`.

    Phase 1 (`update_vae`): the residual generator by its weighted fit (eq. 8: the CVAE's
    weighted ELBO, or a flow's weighted flow matching).
    Phase 2 (`update_latent`): the generator is frozen; a deterministic latent policy
    `z = pi_z(s, a_base)` ascends `Q_rob(s, clip(a_base + G(s, a_base, z)))`
    (Alg. 3, lines 11-17; `G` decodes the latent, or integrates the flow from `z`).
    `plas_vae_fraction` of the stage's steps go to phase 1.

    Phase 2's loss, `-lambda_g E[Q_rob]`, is its only term, so under Adam `lambda_g` cancels
    (Adam's step does not depend on a constant scale of the gradient, up to its epsilon) and
    `lambda_g = 0` leaves the latent policy untrained: the literal Algorithm 3 cannot produce
    Table 4's three different SPAR-PLAS rows. `config.plas_objective = "fit"` adds the
    weighted fit of the data residuals through the frozen generator,
    `recon_weight E[w ||G(s, a_base, pi_z(s, a_base)) - (a - a_base)||^2]` (the `L_fit` of the
    conflict metrics below), so that `lambda_g` trades fit against guidance as in SPAR-MLP's
    eq. 7 (see the Training docs, *Choices where the paper is silent or inconsistent*).

    Gradient conflict (Section 4.3, with `config.log_conflict`, phase 2 only: phase 1 has no
    guidance): `theta` is the latent actor, the module Section 4.3 names for PLAS; `L_fit` is
    eq. 8's weighted reconstruction with the actor's latent in place of the encoder's,
    `recon_weight * E[w ||dec(s, a_base, pi_z(s, a_base)) - (a - a_base)||^2]` through the
    frozen decoder, on the batch (the KL term does not reach the actor); the guidance step is
    the actor's Q-ascent step (`guidance_update`: Adam from the current state on the
    `-lambda_g E[Q_rob]` gradient, minus Adam from the same state on a zero gradient, which
    removes the momentum history).

    **Arguments:**

    - `config`: the `ResidualConfig`.
    - `data_critics`, `guide_critics`: member indices of the data weights and the guidance.
    - `gate`, `gate_critics`: the Stage III gate (see `Rectifier`).
    """

    def residual(self, state):
        """The residual of the deployed policy, `G(s, a_base, pi_z(s, a_base))` (Alg. 3).

        **Arguments:**

        - `state`: a `PLASState`.

        **Returns:**

        A `PLASResidual` of its latent policy and generator.
        """
        return PLASResidual(state.latent_policy, state.generator)

    def phases(self, steps: int) -> tuple[Phase, ...]:
        """Alg. 3's two loops: the CVAE phase (no periodic evaluation: the latent policy is
        untrained), then the latent policy's.

        **Arguments:**

        - `steps`: Stage II's update budget, shared as `plas_vae_fraction` says (at least
          one CVAE step).

        **Returns:**

        `(Phase(generator, update_vae, ...), Phase("latent", update_latent, ...))`, the first
        named after `config.generator` (`"cvae"` or `"flow"`).
        """
        vae_steps = max(1, round(self.config.plas_vae_fraction * steps))
        return (
            Phase(self.config.generator, self.update_vae, vae_steps, evaluate=False),
            Phase("latent", self.update_latent, max(0, steps - vae_steps)),
        )

    def init(self, key: PRNGKeyArray, previous) -> PLASState:
        """A fresh SPAR-PLAS state on top of the frozen anchor (Alg. 3, input).

        **Arguments:**

        - `key`: initialises the generator and the latent policy.
        - `previous`: Stage I's final state, or a `FrozenAnchor`.

        **Returns:**

        A `PLASState` at step 0.
        """
        c, anchor = self.config, FrozenAnchor.of(previous)
        policy = anchor.policy
        vae_key, pol_key = jax.random.split(key)
        generator = GENERATORS[c.generator](c, policy.obs_dim, policy.act_dim, vae_key)
        latent_policy = LatentPolicy(
            policy.obs_dim,
            policy.act_dim,
            generator.noise_dim,
            c.width,
            c.latent_policy_depth,
            c.max_latent,
            key=pol_key,
        )
        opt = make_optimizer(c.learning_rate, c.grad_clip)
        return PLASState(
            anchor,
            generator,
            latent_policy,
            init_opt(opt, generator),
            init_opt(opt, latent_policy),
            jnp.zeros((), jnp.int32),
        )

    def update_vae(
        self, state: PLASState, batch: Transitions, key: PRNGKeyArray
    ) -> tuple[PLASState, dict[str, Float[Array, ""]]]:
        """One Adam step of the generator on its weighted fit (eq. 8; Alg. 3, phase 1).

        **Arguments:**

        - `state`: the current `PLASState`.
        - `batch`: transitions with normalised observations.
        - `key`: the fit's noise.

        **Returns:**

        `(new_state, metrics)`: `loss`, the fit's terms (`recon_loss` and `kl` for the CVAE,
        `flow_loss` for a flow) and the `weight_metrics`.
        """
        c, anchor = self.config, state.anchor
        obs, act = batch.observations, batch.actions
        base = anchor.base_actions(obs)
        w, adv = self.data_weights(anchor, obs, act, base)
        loss_fn = lambda gen: gen.fit_loss(obs, base, act - base, w, c, key)
        (loss, fit_metrics), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(
            state.generator
        )
        opt = make_optimizer(c.learning_rate, c.grad_clip)
        generator, generator_opt = apply_grads(opt, state.generator, grads, state.generator_opt)
        new_state = eqx.tree_at(
            lambda s: (s.generator, s.generator_opt, s.step),
            state,
            (generator, generator_opt, state.step + 1),
        )
        metrics = {"loss": loss, **fit_metrics, **weight_metrics(w, adv, c)}
        return new_state, metrics

    def update_latent(
        self, state: PLASState, batch: Transitions, key: PRNGKeyArray
    ) -> tuple[PLASState, dict[str, Float[Array, ""]]]:
        """One Adam step of the latent policy on `-lambda_g E[Q_rob]` through the frozen
        generator (Alg. 3, lines 11-17).

        **Arguments:**

        - `state`: the current `PLASState`.
        - `batch`: transitions with normalised observations.
        - `key`: unused (the update is deterministic).

        **Returns:**

        `(new_state, metrics)`: `loss`, `guide_q` and `residual_norm`; with
        `config.log_conflict` also `conflict_dd` and `conflict_vsd` of this step's Q-ascent
        (Section 4.3).
        """
        del key
        c, anchor = self.config, state.anchor
        obs = batch.observations
        base = anchor.base_actions(obs)
        guide_critic = anchor.critic.select(self.guide_critics)
        frozen = eqx.filter(state.generator, eqx.is_array, replace=None)
        frozen = eqx.combine(jax.lax.stop_gradient(frozen), state.generator)

        if c.plas_objective == "fit":  # the data weights of the fit term (no gradient)
            act = batch.actions
            w_fit, _ = self.data_weights(anchor, obs, act, base)

        def loss_fn(latent_policy):
            z = jax.vmap(latent_policy)(obs, base)
            residual = jax.vmap(frozen.generate)(obs, base, z)
            q, _ = robust_q(guide_critic, obs, anchor.clip(base + residual), c.lambda_u)
            loss = c.lambda_g * value_guidance(q)
            if c.plas_objective == "fit":  # static: `literal` is Algorithm 3 as written
                loss = loss + c.recon_weight * weighted_reconstruction(
                    residual, batch.actions - base, w_fit
                )
            return loss, (q, residual)

        (loss, (q, residual)), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(
            state.latent_policy
        )
        opt = make_optimizer(c.learning_rate, c.grad_clip)
        latent_policy, latent_opt = apply_grads(opt, state.latent_policy, grads, state.latent_opt)
        new_state = eqx.tree_at(
            lambda s: (s.latent_policy, s.latent_opt, s.step),
            state,
            (latent_policy, latent_opt, state.step + 1),
        )
        metrics = {
            "loss": loss,
            "guide_q": jnp.mean(q),
            "residual_norm": jnp.mean(jnp.linalg.norm(residual, axis=-1)),
        }
        if c.log_conflict:  # static: without it the update is exactly the one above
            act = batch.actions
            w, _ = self.data_weights(anchor, obs, act, base)

            def fit_loss(latent_policy):
                z = jax.vmap(latent_policy)(obs, base)
                decoded = jax.vmap(frozen.generate)(obs, base, z)
                return c.recon_weight * weighted_reconstruction(decoded, act - base, w)

            no_guidance = jax.tree_util.tree_map(jnp.zeros_like, grads)
            delta = guidance_update(opt, state.latent_opt, state.latent_policy, grads, no_guidance)
            metrics |= conflict_metrics(fit_loss, state.latent_policy, delta)
        return new_state, metrics
