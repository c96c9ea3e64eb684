"""Policy and value networks: one example in, one example out.

Batches come from `jax.vmap`; ensembles from `eqx.filter_vmap` (see
`spar_eqx.CriticEnsemble`). Every network is an MLP with ReLU hidden layers of
`width` units, `depth` hidden layers deep (GELU where a reference, FQL's, uses it).

`AbstractAnchorPolicy` is the protocol of Stage I's anchor `pi_base`: the deterministic and
Gaussian policies here and the flow-matching policy of `spar_eqx._flow` implement it.
"""

import abc
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ._losses import bc_loss, bc_nll_loss

_LOG_STD_MIN = -5.0
_LOG_STD_MAX = 2.0
_TANH_EPS = 1e-6
_LAYER_NORM_EPS = 1e-6  # flax.linen.LayerNorm's default, as in the ReBRAC reference


Activation = Literal["relu", "gelu"]
_ACTIVATIONS = {"relu": jax.nn.relu, "gelu": jax.nn.gelu}


def _mlp(
    in_size: int,
    out_size: int | str,
    width: int,
    depth: int,
    key: PRNGKeyArray,
    activation: Activation = "relu",
) -> eqx.nn.MLP:
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {', '.join(_ACTIVATIONS)}, got {activation!r}."
        )
    return eqx.nn.MLP(in_size, out_size, width, depth, activation=_ACTIVATIONS[activation], key=key)


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}.")


class AbstractAnchorPolicy(eqx.Module):
    """The anchor protocol: Stage I's behaviour-cloning policy `pi_base` (Section 3.1).

    An implementation is a final `eqx.Module` acting on one normalised observation:

    - `__call__(obs)` is what `pi_base(s)` means for Stages II and III: one deterministic
      action in `[-max_action, max_action]` (the anchor is frozen after Stage I, and the
      residual targets `a - pi_base(s)` and the gate's fallback must not change from call to
      call). A stochastic anchor defines it as its mode (Gaussian) or as the sample of a fixed
      noise (flow: the noise `0`, see `FlowPolicy`).
    - `bc_loss(observations, actions, key)` is its pure behaviour-cloning loss on a batch
      (Alg. 1 line 4: squared error, negative log-likelihood, or conditional flow matching),
      unweighted, as Stage I requires.

    **Fields** (abstract): `obs_dim`, `act_dim` and `max_action`, static.
    """

    obs_dim: eqx.AbstractVar[int]
    act_dim: eqx.AbstractVar[int]
    max_action: eqx.AbstractVar[float]

    @abc.abstractmethod
    def __call__(self, obs: Float[Array, " obs_dim"]) -> Float[Array, " act_dim"]:
        """`pi_base(obs)`: one deterministic action for one normalised observation."""

    @abc.abstractmethod
    def bc_loss(
        self,
        observations: Float[Array, "batch obs_dim"],
        actions: Float[Array, "batch act_dim"],
        key: PRNGKeyArray,
    ) -> Float[Array, ""]:
        """The anchor's unweighted behaviour-cloning loss on a batch of data pairs."""


class DeterministicPolicy(AbstractAnchorPolicy):
    """`a = max_action * tanh(MLP(s))`: the deterministic BC anchor `pi_base` (Alg. 1 line 4).

    SPAR's Stage I anchor on MuJoCo locomotion (C.1.2), and the actor of the BC, TD3+BC and
    ReBRAC baselines. Every action lies in `[-max_action, max_action]` by construction.
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
        """**Arguments:**

        - `obs_dim`, `act_dim`: sizes of `s` and `a` (positive integers).
        - `width`, `depth`: hidden units per layer and number of hidden layers (256 and 2,
          Table 7).
        - `max_action`: the action bound `m > 0` (1.0 for the normalised action spaces of
          Table 7).
        - `key`: the initialisation key (keyword-only); the same key gives the same weights.

        Raises `ValueError` for a non-positive size or bound.
        """
        _check_sizes(obs_dim=obs_dim, act_dim=act_dim, width=width, depth=depth)
        self.mlp = _mlp(obs_dim, act_dim, width, depth, key)
        self.obs_dim, self.act_dim, self.max_action = obs_dim, act_dim, float(max_action)

    def __check_init__(self):
        if not self.max_action > 0:
            raise ValueError(f"max_action must be positive, got {self.max_action}.")

    def __call__(self, obs: Float[Array, " obs_dim"]) -> Float[Array, " act_dim"]:
        """**Arguments:** `obs`, one observation (normalised, as the policy was trained on).

        **Returns:** the action `max_action * tanh(MLP(obs))`, in `[-max_action, max_action]`.
        """
        return self.max_action * jnp.tanh(self.mlp(obs))

    def bc_loss(
        self,
        observations: Float[Array, "batch obs_dim"],
        actions: Float[Array, "batch act_dim"],
        key: PRNGKeyArray,
    ) -> Float[Array, ""]:
        """Deterministic BC, `E ||pi(s) - a||^2` (Alg. 1 line 4; `spar_eqx.bc_loss`).

        **Arguments:** `observations`, `actions`, a batch of data pairs; `key`, unused.

        **Returns:** the scalar loss.
        """
        del key
        return bc_loss(jax.vmap(self)(observations), actions)


class TanhGaussianPolicy(AbstractAnchorPolicy):
    """A Gaussian squashed by tanh: `a = max_action * tanh(u)`, `u ~ N(mu(s), sigma(s)^2)`.

    Used as the stochastic BC anchor of Stage I on Adroit and AntMaze (C.1.2, trained by
    maximum likelihood), as IQL's actor, and as the SAC actor of the dataset generator.
    `__call__` returns the deterministic mode `max_action * tanh(mu(s))`. The log standard
    deviation is squashed into `[-5, 2]`, so `sigma(s)` is always positive and finite.
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
        """**Arguments:**

        - `obs_dim`, `act_dim`: sizes of `s` and `a` (positive integers).
        - `width`, `depth`: hidden units per layer and number of hidden layers (256 and 2,
          Table 7).
        - `max_action`: the action bound `m > 0` (1.0 for the normalised action spaces of
          Table 7).
        - `key`: the initialisation key (keyword-only); the same key gives the same weights.

        Raises `ValueError` for a non-positive size or bound.
        """
        _check_sizes(obs_dim=obs_dim, act_dim=act_dim, width=width, depth=depth)
        self.mlp = _mlp(obs_dim, 2 * act_dim, width, depth, key)
        self.obs_dim, self.act_dim, self.max_action = obs_dim, act_dim, float(max_action)

    def __check_init__(self):
        if not self.max_action > 0:
            raise ValueError(f"max_action must be positive, got {self.max_action}.")

    def distribution(
        self, obs: Float[Array, " obs_dim"]
    ) -> tuple[Float[Array, " act_dim"], Float[Array, " act_dim"]]:
        """Mean and log standard deviation of the pre-tanh Gaussian (log std in [-5, 2]).

        **Arguments:** `obs`, one observation.

        **Returns:** `(mu(s), log sigma(s))`, each of shape `(act_dim,)`.
        """
        out = self.mlp(obs)
        mean, log_std = out[: self.act_dim], out[self.act_dim :]
        log_std = _LOG_STD_MIN + 0.5 * (_LOG_STD_MAX - _LOG_STD_MIN) * (jnp.tanh(log_std) + 1.0)
        return mean, log_std

    def __call__(self, obs: Float[Array, " obs_dim"]) -> Float[Array, " act_dim"]:
        """**Arguments:** `obs`, one observation.

        **Returns:** the mode `max_action * tanh(mu(s))`, the action deployed at evaluation.
        """
        mean, _ = self.distribution(obs)
        return self.max_action * jnp.tanh(mean)

    def sample(
        self, obs: Float[Array, " obs_dim"], *, key: PRNGKeyArray
    ) -> tuple[Float[Array, " act_dim"], Float[Array, ""]]:
        """A reparameterised sample and its log-density (tanh change of variables included).

        **Arguments:** `obs`, one observation; `key`, the noise key (keyword-only).

        **Returns:** `(a, log pi(a | s))`: `a = max_action * tanh(mu + sigma * eps)` with
        `eps ~ N(0, I)`, differentiable in the parameters, and its log-density under the
        squashed distribution (a scalar).
        """
        mean, log_std = self.distribution(obs)
        noise = jr.normal(key, mean.shape, mean.dtype)
        u = mean + jnp.exp(log_std) * noise
        return self.max_action * jnp.tanh(u), _squashed_log_prob(u, mean, log_std, self.max_action)

    def log_prob(
        self, obs: Float[Array, " obs_dim"], action: Float[Array, " act_dim"]
    ) -> Float[Array, ""]:
        """Log-density of `action`, clipped just inside the bounds so +-max_action is finite.

        **Arguments:** `obs`, one observation; `action`, an action in
        `[-max_action, max_action]` (a dataset action for behaviour cloning).

        **Returns:** `log pi(action | obs)`, a finite scalar: the maximum-likelihood BC loss
        of Stage I's Gaussian anchor is its negative mean (`spar_eqx.bc_nll_loss`).
        """
        mean, log_std = self.distribution(obs)
        scaled = jnp.clip(action / self.max_action, -1.0 + _TANH_EPS, 1.0 - _TANH_EPS)
        return _squashed_log_prob(jnp.arctanh(scaled), mean, log_std, self.max_action)

    def bc_loss(
        self,
        observations: Float[Array, "batch obs_dim"],
        actions: Float[Array, "batch act_dim"],
        key: PRNGKeyArray,
    ) -> Float[Array, ""]:
        """Maximum-likelihood BC, `-E log pi(a | s)` (C.1.2; `spar_eqx.bc_nll_loss`).

        **Arguments:** `observations`, `actions`, a batch of data pairs; `key`, unused.

        **Returns:** the scalar loss.
        """
        del key
        return bc_nll_loss(jax.vmap(self.log_prob)(observations, actions))


def _squashed_log_prob(u, mean, log_std, max_action) -> Float[Array, ""]:
    gauss = -0.5 * (((u - mean) / jnp.exp(log_std)) ** 2 + 2.0 * log_std + jnp.log(2.0 * jnp.pi))
    # log |d tanh(u) / du| = 2 * (log 2 - u - softplus(-2u)), numerically stable.
    log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)) + jnp.log(max_action)
    return jnp.sum(gauss - log_det)


class ValueNetwork(eqx.Module):
    """`V(s)`: a scalar per state, Stage I's (and IQL's) expectile value network (Section 3.1)."""

    mlp: eqx.nn.MLP
    obs_dim: int = eqx.field(static=True)

    def __init__(self, obs_dim: int, width: int = 256, depth: int = 2, *, key: PRNGKeyArray):
        """**Arguments:**

        - `obs_dim`: size of `s`.
        - `width`, `depth`: hidden units per layer and number of hidden layers (256 and 2).
        - `key`: the initialisation key (keyword-only).
        """
        _check_sizes(obs_dim=obs_dim, width=width, depth=depth)
        self.mlp = _mlp(obs_dim, "scalar", width, depth, key)
        self.obs_dim = obs_dim

    def __call__(self, obs: Float[Array, " obs_dim"]) -> Float[Array, ""]:
        """**Arguments:** `obs`, one observation. **Returns:** `V(obs)`, a scalar."""
        return self.mlp(obs)


class QNetwork(eqx.Module):
    """`Q(s, a)`: a scalar per state-action pair, one member `Q_i` of the ensemble of eq. (1).

    With `layer_norm=True` every hidden layer is `LayerNorm(ReLU(Linear(x)))`, the
    critic of ReBRAC (Tarasov et al. 2023; the order of the CORL / ReBRAC reference
    code: Dense, ReLU, LayerNorm). The linear layers are built from `key` exactly as
    without layer norm, so the two options share their initial weights; each LayerNorm
    starts at unit scale and zero shift.

    **Arguments:**

    - `obs_dim`, `act_dim`: sizes of `s` and `a`.
    - `width`, `depth`: hidden width and number of hidden layers (256 and 2 by default).
    - `layer_norm`: whether to normalise each hidden layer (default False: a plain MLP).
    - `activation`: `"relu"` (default) or `"gelu"` (FQL's critics: Dense, GELU, LayerNorm).
    - `key`: the initialisation key.
    """

    mlp: eqx.nn.MLP
    norms: tuple[eqx.nn.LayerNorm, ...]
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)
    layer_norm: bool = eqx.field(static=True)
    activation: Activation = eqx.field(static=True, default="relu")

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        width: int = 256,
        depth: int = 2,
        *,
        key: PRNGKeyArray,
        layer_norm: bool = False,
        activation: Activation = "relu",
    ):
        _check_sizes(obs_dim=obs_dim, act_dim=act_dim, width=width, depth=depth)
        self.mlp = _mlp(obs_dim + act_dim, "scalar", width, depth, key, activation)
        self.layer_norm = bool(layer_norm)
        self.activation = activation
        self.norms = (
            tuple(eqx.nn.LayerNorm(width, eps=_LAYER_NORM_EPS) for _ in range(depth))
            if self.layer_norm
            else ()
        )
        self.obs_dim, self.act_dim = obs_dim, act_dim

    def __call__(
        self, obs: Float[Array, " obs_dim"], action: Float[Array, " act_dim"]
    ) -> Float[Array, ""]:
        """**Arguments:** `obs` and `action`, one state-action pair.

        **Returns:** `Q(obs, action)`, a scalar (the MLP of `[obs, action]`).
        """
        x = jnp.concatenate([obs, action])
        if not self.layer_norm:
            return self.mlp(x)
        for linear, norm in zip(self.mlp.layers[:-1], self.norms, strict=True):
            x = norm(_ACTIVATIONS[self.activation](linear(x)))
        return self.mlp.layers[-1](x)
