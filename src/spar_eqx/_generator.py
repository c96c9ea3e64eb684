"""The residual-generator protocol of Stage II: what SPAR-PROJ and SPAR-PLAS need of a
generative model of the residual `delta = a - pi_base(s)` (Sections 3.2.3-3.2.4, C.2.4).

A generator maps a noise vector `z ~ N(0, I)` (the CVAE's latent, the flow's initial point)
and a state with its base action to a residual, deterministically. SPAR-PROJ's latent
self-imitation (eq. 9-10), SPAR-PLAS's latent policy (Alg. 3) and the gate's candidates
(eq. 12) are written once against this interface; `ResidualCVAE` and `ResidualFlow` are its
two implementations, and a new generator is one file plus one line of
`spar_eqx._components.GENERATORS`.
"""

import abc
from typing import Any

import equinox as eqx
import jax
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

Metrics = dict[str, Float[Array, ""]]


class AbstractResidualGenerator(eqx.Module):
    """A conditional generative model of residuals `delta | (s, a_base)`, driven by noise.

    Implementations are final `eqx.Module`s acting on one example (batches through
    `jax.vmap`). They define:

    - `generate(obs, base_action, noise)`: the residual the noise maps to (the CVAE's decoder
      at the latent; the flow's Euler integration from the noise). Deterministic given the
      noise and differentiable in the parameters.
    - `fit_loss(obs, base, residual, weights, config, key)`: Stage II's weighted fit of the
      data residuals (eq. 8 for the CVAE: the weighted ELBO; for the flow: the weighted
      conditional flow-matching loss), with the weight on the data term only.
    - `generative_part()`: the sub-module `generate` reads and self-imitation trains (the
      CVAE's decoder, the flow's velocity field): Section 4.3's `theta` for SPAR-PROJ.

    **Fields** (abstract, static): `obs_dim`, `act_dim`, and `noise_dim`, the size of `z`.
    """

    obs_dim: eqx.AbstractVar[int]
    act_dim: eqx.AbstractVar[int]

    @property
    @abc.abstractmethod
    def noise_dim(self) -> int:
        """The size of the noise `z` that `generate` maps to a residual."""

    @abc.abstractmethod
    def generate(
        self,
        obs: Float[Array, " obs_dim"],
        base_action: Float[Array, " act_dim"],
        noise: Float[Array, " noise"],
    ) -> Float[Array, " act_dim"]:
        """The residual `delta = G(s, a_base, z)` for one state and one noise."""

    @abc.abstractmethod
    def fit_loss(
        self,
        obs: Float[Array, "batch obs_dim"],
        base: Float[Array, "batch act_dim"],
        residual: Float[Array, "batch act_dim"],
        weights: Float[Array, " batch"],
        config: Any,
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, ""], Metrics]:
        """Stage II's weighted fit of the data residuals, and its named terms."""

    @abc.abstractmethod
    def generative_part(self) -> eqx.Module:
        """The sub-module that maps noise to residuals (what self-imitation trains)."""

    def sample_noise(self, num: int, *, key: PRNGKeyArray) -> Float[Array, "num noise"]:
        """`num` noises from the prior `N(0, I)` (Algorithm 4 line 5).

        **Arguments:** `num`, a static count; `key` (keyword-only).

        **Returns:** noises of shape `(num, noise_dim)`.
        """
        return jr.normal(key, (num, self.noise_dim))

    def sample(
        self,
        obs: Float[Array, " obs_dim"],
        base_action: Float[Array, " act_dim"],
        num: int,
        *,
        key: PRNGKeyArray,
    ) -> Float[Array, "num act_dim"]:
        """`num` residuals generated from prior noises, vectorised over candidates (eq. 9).

        **Arguments:** `obs`, `base_action` (one state); `num`, the number of candidates `K`
        (static); `key` (keyword-only).

        **Returns:** `delta_k = G(s, a_base, z_k)`, shape `(num, act_dim)`.
        """
        noises = self.sample_noise(num, key=key)
        return jax.vmap(self.generate, in_axes=(None, None, 0))(obs, base_action, noises)

    def central(
        self, obs: Float[Array, " obs_dim"], base_action: Float[Array, " act_dim"]
    ) -> Float[Array, " act_dim"]:
        """The residual of the prior's mean noise `z = 0`: SPAR-PROJ's ungated action.

        **Arguments:** `obs`, `base_action`, one state and its base action.

        **Returns:** `G(s, a_base, 0)`, shape `(act_dim,)`.
        """
        return self.generate(obs, base_action, jax.numpy.zeros((self.noise_dim,), obs.dtype))
