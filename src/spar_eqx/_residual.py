"""Residual models of Stage II: a deterministic regressor, a residual CVAE (one
`AbstractResidualGenerator`), a latent policy."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ._generator import AbstractResidualGenerator, Metrics
from ._hyper import Scalar, is_number
from ._losses import gaussian_kl, weighted_reconstruction
from ._networks import _check_sizes, _mlp

_LOG_STD_MIN = -4.0
_LOG_STD_MAX = 15.0


class ResidualMLP(eqx.Module):
    """SPAR-MLP's residual `delta = pi_res(s, a_base)` (eq. 7): an MLP with a linear head.

    Unbounded: the deployed action `a_base + delta` is clipped to the action bounds by
    `SPARPolicy`, not here.
    """

    mlp: eqx.nn.MLP
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)

    def __init__(
        self, obs_dim: int, act_dim: int, width: int = 256, depth: int = 2, *, key: PRNGKeyArray
    ):
        """**Arguments:**

        - `obs_dim`, `act_dim`: sizes of `s` and `a`.
        - `width`, `depth`: hidden units and layers (256 x 2, Table 7 *MLP residual hidden
          dims*).
        - `key`: the initialisation key (keyword-only).
        """
        _check_sizes(obs_dim=obs_dim, act_dim=act_dim, width=width, depth=depth)
        self.mlp = _mlp(obs_dim + act_dim, act_dim, width, depth, key)
        self.obs_dim, self.act_dim = obs_dim, act_dim

    def __call__(
        self, obs: Float[Array, " obs_dim"], base_action: Float[Array, " act_dim"]
    ) -> Float[Array, " act_dim"]:
        """**Arguments:** `obs`, one (normalised) state; `base_action`, `pi_base(obs)`.

        **Returns:** the residual `delta`, shape `(act_dim,)`.
        """
        return self.mlp(jnp.concatenate([obs, base_action]))


class ResidualCVAE(AbstractResidualGenerator):
    """The residual CVAE of SPAR-PROJ and SPAR-PLAS (eq. 8): the default residual generator.

    Encoder `q(z | s, a_base, delta)` is a diagonal Gaussian (log std clipped to
    [-4, 15]); decoder `(s, a_base, z) -> delta` is deterministic. Defaults follow
    Table 7: latent 16, 3 hidden layers of 256. The prior is `p(z) = N(0, I)`; SPAR-PROJ
    decodes prior samples as its candidates (eq. 9, Algorithm 4) and SPAR-PLAS decodes the
    latent of a `LatentPolicy` (Algorithm 3). As an `AbstractResidualGenerator`, its noise is
    the latent (`generate` is `decode`) and its fit is the weighted ELBO (`weighted_elbo`).
    """

    encoder: eqx.nn.MLP
    decoder: eqx.nn.MLP
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        latent_dim: int = 16,
        width: int = 256,
        depth: int = 3,
        *,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `obs_dim`, `act_dim`: sizes of `s` and `a`.
        - `latent_dim`: `d_z` (16, Table 7).
        - `width`, `depth`: hidden units and layers of encoder and decoder each (256 and 3,
          Table 7).
        - `key`: split once into the encoder's and the decoder's keys (keyword-only).
        """
        _check_sizes(
            obs_dim=obs_dim, act_dim=act_dim, latent_dim=latent_dim, width=width, depth=depth
        )
        enc_key, dec_key = jr.split(key)
        self.encoder = _mlp(obs_dim + 2 * act_dim, 2 * latent_dim, width, depth, enc_key)
        self.decoder = _mlp(obs_dim + act_dim + latent_dim, act_dim, width, depth, dec_key)
        self.obs_dim, self.act_dim, self.latent_dim = obs_dim, act_dim, latent_dim

    def encode(
        self,
        obs: Float[Array, " obs_dim"],
        base_action: Float[Array, " act_dim"],
        residual: Float[Array, " act_dim"],
    ) -> tuple[Float[Array, " latent"], Float[Array, " latent"]]:
        """Mean and log standard deviation of `q(z | s, a_base, delta)` (eq. 8).

        **Arguments:** `obs`, `base_action` and `residual` (`delta = a - a_base`), one row.

        **Returns:** `(mean, log_std)`, each of shape `(latent_dim,)`; `log_std` in `[-4, 15]`.
        """
        out = self.encoder(jnp.concatenate([obs, base_action, residual]))
        mean, log_std = out[: self.latent_dim], out[self.latent_dim :]
        return mean, jnp.clip(log_std, _LOG_STD_MIN, _LOG_STD_MAX)

    def decode(
        self,
        obs: Float[Array, " obs_dim"],
        base_action: Float[Array, " act_dim"],
        latent: Float[Array, " latent"],
    ) -> Float[Array, " act_dim"]:
        """The residual `delta = decoder(s, a_base, z)` (eq. 8, 10).

        **Arguments:** `obs`, `base_action`, and a latent `z` of shape `(latent_dim,)`.

        **Returns:** `delta`, shape `(act_dim,)`; deterministic given `z`.
        """
        return self.decoder(jnp.concatenate([obs, base_action, latent]))

    def __call__(
        self,
        obs: Float[Array, " obs_dim"],
        base_action: Float[Array, " act_dim"],
        residual: Float[Array, " act_dim"],
        *,
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, " act_dim"], Float[Array, " latent"], Float[Array, " latent"]]:
        """Reconstruct `residual` through a reparameterised latent (the ELBO of eq. 8).

        **Arguments:** `obs`, `base_action`, `residual` (one row); `key`, the noise of
        `z = mean + exp(log_std) * eps` (keyword-only).

        **Returns:** `(recon, mean, log_std)`: the decoded residual, differentiable through
        `z`, and the encoder's Gaussian (for `spar_eqx.gaussian_kl`).
        """
        mean, log_std = self.encode(obs, base_action, residual)
        latent = mean + jnp.exp(log_std) * jr.normal(key, mean.shape, mean.dtype)
        return self.decode(obs, base_action, latent), mean, log_std

    @property
    def noise_dim(self) -> int:
        """The latent size `d_z`: the CVAE's noise is its latent."""
        return self.latent_dim

    def generate(
        self,
        obs: Float[Array, " obs_dim"],
        base_action: Float[Array, " act_dim"],
        noise: Float[Array, " latent"],
    ) -> Float[Array, " act_dim"]:
        """The generator protocol's `generate`: `decode` at the latent `noise` (eq. 10)."""
        return self.decode(obs, base_action, noise)

    def generative_part(self) -> eqx.nn.MLP:
        """The decoder: what self-imitation trains (the encoder is not reached by eq. 10)."""
        return self.decoder

    def fit_loss(
        self,
        obs: Float[Array, "batch obs_dim"],
        base: Float[Array, "batch act_dim"],
        residual: Float[Array, "batch act_dim"],
        weights: Float[Array, " batch"],
        config: Any,
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, ""], Metrics]:
        """The weighted ELBO of eq. 8 (`weighted_elbo`), with `recon_loss` and `kl` named."""
        loss, (rec, kl) = weighted_elbo(self, obs, base, residual, weights, config, key)
        return loss, {"recon_loss": rec, "kl": kl}

    def sample_latents(self, num: int, *, key: PRNGKeyArray) -> Float[Array, "num latent"]:
        """`num` latents from the prior `N(0, I)` (Algorithm 4 line 5): `sample_noise`.

        **Arguments:** `num`, a static count; `key` (keyword-only).

        **Returns:** latents of shape `(num, latent_dim)`.
        """
        return self.sample_noise(num, key=key)


def weighted_elbo(
    cvae: ResidualCVAE,
    obs: Float[Array, "batch obs_dim"],
    base: Float[Array, "batch act_dim"],
    residual: Float[Array, "batch act_dim"],
    weights: Float[Array, " batch"],
    config: Any,
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


class LatentPolicy(eqx.Module):
    """SPAR-PLAS's deterministic latent policy `z = max_latent * tanh(MLP(s, a_base))` (Alg. 3).

    Every latent coordinate lies in `[-max_latent, max_latent]`; the frozen CVAE decoder
    turns the latent into the residual (`PLASResidual`).
    """

    mlp: eqx.nn.MLP
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)
    max_latent: float = eqx.field(static=True)

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        latent_dim: int = 16,
        width: int = 256,
        depth: int = 2,
        max_latent: float = 2.0,
        *,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `obs_dim`, `act_dim`, `latent_dim`: sizes of `s`, `a` and `z`.
        - `width`, `depth`: hidden units and layers (256 x 2, Table 7 *Latent policy hidden
          dims*).
        - `max_latent`: the bound on every latent coordinate (positive).
        - `key`: the initialisation key (keyword-only).
        """
        _check_sizes(
            obs_dim=obs_dim, act_dim=act_dim, latent_dim=latent_dim, width=width, depth=depth
        )
        self.mlp = _mlp(obs_dim + act_dim, latent_dim, width, depth, key)
        self.obs_dim, self.act_dim, self.latent_dim = obs_dim, act_dim, latent_dim
        self.max_latent = float(max_latent)

    def __check_init__(self):
        if not self.max_latent > 0:
            raise ValueError(f"max_latent must be positive, got {self.max_latent}.")

    def __call__(
        self, obs: Float[Array, " obs_dim"], base_action: Float[Array, " act_dim"]
    ) -> Float[Array, " latent"]:
        """**Arguments:** `obs`, `base_action`, one state and its base action.

        **Returns:** the latent `z`, shape `(latent_dim,)`, in `[-max_latent, max_latent]`.
        """
        return self.max_latent * jnp.tanh(self.mlp(jnp.concatenate([obs, base_action])))


def polyak(target: eqx.Module, online: eqx.Module, tau: Scalar) -> eqx.Module:
    """`target <- (1 - tau) * target + tau * online` on every inexact array leaf (Alg. 4 l. 14).

    The target-network update of every learner (C.1.2 `tau_polyak`, C.1.3 `tau_target`).

    **Arguments:**

    - `target`, `online`: two modules of the same structure.
    - `tau`: the rate in `[0, 1]` (a float, or a traced scalar); `tau = 0` returns `target`'s
      values, `tau = 1` `online`'s.

    **Returns:** a module with `target`'s structure and static fields and the mixed arrays;
    integer and non-array leaves are `target`'s.
    """
    if is_number(tau) and not 0.0 <= tau <= 1.0:
        raise ValueError(f"the Polyak rate tau must lie in [0, 1], got {tau}.")
    t_params, static = eqx.partition(target, eqx.is_inexact_array)
    o_params = eqx.filter(online, eqx.is_inexact_array)
    mixed = jax.tree_util.tree_map(lambda t, o: (1.0 - tau) * t + tau * o, t_params, o_params)
    return eqx.combine(mixed, static)
