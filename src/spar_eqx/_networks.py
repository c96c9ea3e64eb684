"""Policy and value networks: one example in, one example out.

Batches come from `jax.vmap`; ensembles from `eqx.filter_vmap` (see
`spar_eqx.CriticEnsemble`). Every network is an MLP with ReLU hidden layers of
`width` units, `depth` hidden layers deep.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

_LOG_STD_MIN = -5.0
_LOG_STD_MAX = 2.0
_TANH_EPS = 1e-6
_LAYER_NORM_EPS = 1e-6  # flax.linen.LayerNorm's default, as in the ReBRAC reference


def _mlp(
    in_size: int, out_size: int | str, width: int, depth: int, key: PRNGKeyArray
) -> eqx.nn.MLP:
    return eqx.nn.MLP(in_size, out_size, width, depth, activation=jax.nn.relu, key=key)


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}.")


class DeterministicPolicy(eqx.Module):
    """`a = max_action * tanh(MLP(s))`: the deterministic BC anchor for locomotion."""

    mlp: eqx.nn.MLP
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)
    max_action: float = eqx.field(static=True)

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        width: int = 256,
        depth: int = 2,
        max_action: float = 1.0,
        *,
        key: PRNGKeyArray,
    ):
        _check_sizes(obs_dim=obs_dim, act_dim=act_dim, width=width, depth=depth)
        self.mlp = _mlp(obs_dim, act_dim, width, depth, key)
        self.obs_dim, self.act_dim, self.max_action = obs_dim, act_dim, float(max_action)

    def __check_init__(self):
        if not self.max_action > 0:
            raise ValueError(f"max_action must be positive, got {self.max_action}.")

    def __call__(self, obs: Float[Array, " obs_dim"]) -> Float[Array, " act_dim"]:
        return self.max_action * jnp.tanh(self.mlp(obs))


class TanhGaussianPolicy(eqx.Module):
    """A Gaussian squashed by tanh: `a = max_action * tanh(u)`, `u ~ N(mu(s), sigma(s)^2)`.

    Used as the stochastic BC anchor (Adroit, AntMaze) and as the SAC actor of
    the dataset generator. `__call__` returns the deterministic mode
    `max_action * tanh(mu(s))`.
    """

    mlp: eqx.nn.MLP
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)
    max_action: float = eqx.field(static=True)

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        width: int = 256,
        depth: int = 2,
        max_action: float = 1.0,
        *,
        key: PRNGKeyArray,
    ):
        _check_sizes(obs_dim=obs_dim, act_dim=act_dim, width=width, depth=depth)
        self.mlp = _mlp(obs_dim, 2 * act_dim, width, depth, key)
        self.obs_dim, self.act_dim, self.max_action = obs_dim, act_dim, float(max_action)

    def __check_init__(self):
        if not self.max_action > 0:
            raise ValueError(f"max_action must be positive, got {self.max_action}.")

    def distribution(
        self, obs: Float[Array, " obs_dim"]
    ) -> tuple[Float[Array, " act_dim"], Float[Array, " act_dim"]]:
        """Mean and log standard deviation of the pre-tanh Gaussian (log std in [-5, 2])."""
        out = self.mlp(obs)
        mean, log_std = out[: self.act_dim], out[self.act_dim :]
        log_std = _LOG_STD_MIN + 0.5 * (_LOG_STD_MAX - _LOG_STD_MIN) * (jnp.tanh(log_std) + 1.0)
        return mean, log_std

    def __call__(self, obs: Float[Array, " obs_dim"]) -> Float[Array, " act_dim"]:
        mean, _ = self.distribution(obs)
        return self.max_action * jnp.tanh(mean)

    def sample(
        self, obs: Float[Array, " obs_dim"], *, key: PRNGKeyArray
    ) -> tuple[Float[Array, " act_dim"], Float[Array, ""]]:
        """A reparameterised sample and its log-density (tanh change of variables included)."""
        mean, log_std = self.distribution(obs)
        noise = jr.normal(key, mean.shape, mean.dtype)
        u = mean + jnp.exp(log_std) * noise
        return self.max_action * jnp.tanh(u), _squashed_log_prob(u, mean, log_std, self.max_action)

    def log_prob(
        self, obs: Float[Array, " obs_dim"], action: Float[Array, " act_dim"]
    ) -> Float[Array, ""]:
        """Log-density of `action`, clipped just inside the bounds so +-max_action is finite."""
        mean, log_std = self.distribution(obs)
        scaled = jnp.clip(action / self.max_action, -1.0 + _TANH_EPS, 1.0 - _TANH_EPS)
        return _squashed_log_prob(jnp.arctanh(scaled), mean, log_std, self.max_action)


def _squashed_log_prob(u, mean, log_std, max_action) -> Float[Array, ""]:
    gauss = -0.5 * (((u - mean) / jnp.exp(log_std)) ** 2 + 2.0 * log_std + jnp.log(2.0 * jnp.pi))
    # log |d tanh(u) / du| = 2 * (log 2 - u - softplus(-2u)), numerically stable.
    log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)) + jnp.log(max_action)
    return jnp.sum(gauss - log_det)


class ValueNetwork(eqx.Module):
    """`V(s)`: a scalar per state."""

    mlp: eqx.nn.MLP
    obs_dim: int = eqx.field(static=True)

    def __init__(self, obs_dim: int, width: int = 256, depth: int = 2, *, key: PRNGKeyArray):
        _check_sizes(obs_dim=obs_dim, width=width, depth=depth)
        self.mlp = _mlp(obs_dim, "scalar", width, depth, key)
        self.obs_dim = obs_dim

    def __call__(self, obs: Float[Array, " obs_dim"]) -> Float[Array, ""]:
        return self.mlp(obs)


class QNetwork(eqx.Module):
    """`Q(s, a)`: a scalar per state-action pair (one member of a `CriticEnsemble`).

    With `layer_norm=True` every hidden layer is `LayerNorm(ReLU(Linear(x)))`, the
    critic of ReBRAC (Tarasov et al. 2023; the order of the CORL / ReBRAC reference
    code: Dense, ReLU, LayerNorm). The linear layers are built from `key` exactly as
    without layer norm, so the two options share their initial weights; each LayerNorm
    starts at unit scale and zero shift.

    **Arguments:**

    - `obs_dim`, `act_dim`: sizes of `s` and `a`.
    - `width`, `depth`: hidden width and number of hidden layers (256 and 2 by default).
    - `layer_norm`: whether to normalise each hidden layer (default False: a plain MLP).
    - `key`: the initialisation key.
    """

    mlp: eqx.nn.MLP
    norms: tuple[eqx.nn.LayerNorm, ...]
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)
    layer_norm: bool = eqx.field(static=True)

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        width: int = 256,
        depth: int = 2,
        *,
        key: PRNGKeyArray,
        layer_norm: bool = False,
    ):
        _check_sizes(obs_dim=obs_dim, act_dim=act_dim, width=width, depth=depth)
        self.mlp = _mlp(obs_dim + act_dim, "scalar", width, depth, key)
        self.layer_norm = bool(layer_norm)
        self.norms = (
            tuple(eqx.nn.LayerNorm(width, eps=_LAYER_NORM_EPS) for _ in range(depth))
            if self.layer_norm
            else ()
        )
        self.obs_dim, self.act_dim = obs_dim, act_dim

    def __call__(
        self, obs: Float[Array, " obs_dim"], action: Float[Array, " act_dim"]
    ) -> Float[Array, ""]:
        x = jnp.concatenate([obs, action])
        if not self.layer_norm:
            return self.mlp(x)
        for linear, norm in zip(self.mlp.layers[:-1], self.norms, strict=True):
            x = norm(jax.nn.relu(linear(x)))
        return self.mlp.layers[-1](x)
