"""Flow matching (Lipman et al. 2023; the generators of the paper's Appendix C.2.4 and of FQL).

A velocity field `v(c, x_t, t)` conditioned on `c` is trained by conditional flow matching on
the straight path `x_t = (1 - t) x_0 + t x_1`, `x_0 ~ N(0, I)`, whose velocity is
`x_1 - x_0`; a sample is `x_0` integrated from `t = 0` to 1 by a fixed number of Euler steps
(FQL's integrator, Park et al. 2025). The loop is a `lax.fori_loop` inside whatever compiled
function calls it: one traced step, not one per Euler step.

Two implementations of SPAR's protocols live here:

- `FlowPolicy`, an `AbstractAnchorPolicy`: a flow over actions conditioned on the state,
  trained by pure (unweighted) flow matching in Stage I;
- `ResidualFlow`, an `AbstractResidualGenerator`: a flow over residuals conditioned on
  `(s, a_base)`, trained by the weighted flow-matching loss in Stage II.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from ._generator import AbstractResidualGenerator, Metrics
from ._networks import AbstractAnchorPolicy, Activation, _check_sizes, _mlp


class VelocityField(eqx.Module):
    """`v(c, x, t)`: an MLP of `[c, x, t]` with a linear head of `x`'s size.

    **Fields:** `mlp`; `cond_dim`, `dim`, static sizes of `c` and `x`.
    """

    mlp: eqx.nn.MLP
    cond_dim: int = eqx.field(static=True)
    dim: int = eqx.field(static=True)

    def __init__(
        self,
        cond_dim: int,
        dim: int,
        width: int,
        depth: int,
        *,
        key: PRNGKeyArray,
        activation: Activation = "relu",
    ):
        """**Arguments:** `cond_dim`, `dim`: sizes of the condition and of the flowing
        variable; `width`, `depth`: the MLP's hidden units and layers; `key` (keyword-only);
        `activation`: `"relu"` or `"gelu"` (FQL's)."""
        _check_sizes(cond_dim=cond_dim, dim=dim, width=width, depth=depth)
        self.mlp = _mlp(cond_dim + dim + 1, dim, width, depth, key, activation)
        self.cond_dim, self.dim = cond_dim, dim

    def __call__(
        self, cond: Float[Array, " cond"], x: Float[Array, " dim"], t: Float[Array, ""]
    ) -> Float[Array, " dim"]:
        """**Arguments:** `cond`, `x` and the time `t` in `[0, 1]`, one example.

        **Returns:** the velocity at `(x, t)`, shape `(dim,)`.
        """
        return self.mlp(jnp.concatenate([cond, x, t[None].astype(x.dtype)]))


def euler(
    field: VelocityField,
    cond: Float[Array, " cond"],
    noise: Float[Array, " dim"],
    steps: int,
) -> Float[Array, " dim"]:
    """`x_1` from `x_0 = noise` by `steps` Euler steps `x <- x + v(c, x, i / steps) / steps`.

    A `lax.fori_loop` with static bounds, so it is traced once and reverse-differentiable.

    **Arguments:** `field`, the velocity field; `cond`, its condition; `noise`, `x_0`;
    `steps`, the static number of steps (FQL's `flow_steps`, 10).

    **Returns:** the integrated `x_1`, shape `(dim,)`, unclipped.
    """

    def step(i, x):
        t = jnp.asarray(i, x.dtype) / steps
        return x + field(cond, x, t) / steps

    return jax.lax.fori_loop(0, steps, step, noise)


def flow_matching_errors(
    field: VelocityField,
    cond: Float[Array, "batch cond"],
    targets: Float[Array, "batch dim"],
    key: PRNGKeyArray,
) -> Float[Array, " batch"]:
    """Per-row conditional flow-matching error `||v(c, x_t, t) - (x_1 - x_0)||^2`.

    `x_1` is the row's target, `x_0 ~ N(0, I)` and `t ~ U[0, 1]` one draw per row, and
    `x_t = (1 - t) x_0 + t x_1` (FQL's `bc_flow_loss` before its mean).

    **Arguments:** `field`; `cond`, the rows' conditions; `targets`, the `x_1`; `key`.

    **Returns:** the squared error summed over `dim`, one per row.
    """
    noise_key, time_key = jr.split(key)
    x0 = jr.normal(noise_key, targets.shape, targets.dtype)
    t = jr.uniform(time_key, (targets.shape[0],), targets.dtype)
    xt = (1.0 - t[:, None]) * x0 + t[:, None] * targets
    predicted = jax.vmap(field)(cond, xt, t)
    return jnp.sum((predicted - (targets - x0)) ** 2, axis=-1)


class FlowPolicy(AbstractAnchorPolicy):
    """A flow-matching BC policy: `a = clip(Euler(v(s, ., .), z))`, `z ~ N(0, I)` (C.2.4).

    As Stage I's anchor (`--base-policy flow`) it is trained by pure conditional flow
    matching on the data (`bc_loss`, no weights), and `pi_base(s)` (`__call__`) is the sample
    of the fixed noise `z = 0`: one deterministic integration per call. Not one fresh sample
    per call, because the residual targets `a - pi_base(s)`, the weights `A~` and the gate's
    fallback all compare against `pi_base(s)` and must see the same action each time (a
    stochastic anchor makes Stage II regress onto moving targets and the gate's `Q(s, a_base)`
    a random variable); not the mean of several samples, because between the modes of a
    multimodal behaviour policy that mean lies off the data's support, which SPAR exists to
    avoid, and it costs several integrations per call. `z = 0` is the prior's mode, the same
    choice as the Gaussian anchor's mode, and the integrated point is a sample of the flow.
    `sample` draws fresh noise for a stochastic action.

    **Fields:** `field`, the `VelocityField` over actions conditioned on the state;
    `obs_dim`, `act_dim`, `max_action`, `steps` (Euler steps), static.
    """

    field: VelocityField
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)
    max_action: float = eqx.field(static=True)
    steps: int = eqx.field(static=True)

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        width: int = 256,
        depth: int = 2,
        max_action: float = 1.0,
        steps: int = 10,
        *,
        key: PRNGKeyArray,
        activation: Activation = "relu",
    ):
        """**Arguments:**

        - `obs_dim`, `act_dim`: sizes of `s` and `a`.
        - `width`, `depth`: the velocity field's hidden units and layers.
        - `max_action`: the action bound (actions are clipped into it after integration).
        - `steps`: Euler steps per action (10, FQL's `flow_steps`).
        - `key` (keyword-only); `activation`, `"relu"` or `"gelu"`.
        """
        _check_sizes(steps=steps)
        self.field = VelocityField(obs_dim, act_dim, width, depth, key=key, activation=activation)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.max_action, self.steps = float(max_action), steps

    def __check_init__(self):
        if not self.max_action > 0:
            raise ValueError(f"max_action must be positive, got {self.max_action}.")

    def from_noise(
        self, obs: Float[Array, " obs_dim"], noise: Float[Array, " act_dim"]
    ) -> Float[Array, " act_dim"]:
        """The action the noise `z` flows to: `clip(Euler(v(s, ., .), z), -m, m)`.

        **Arguments:** `obs`, one normalised observation; `noise`, `z`.

        **Returns:** the action, in `[-max_action, max_action]`.
        """
        action = euler(self.field, obs, noise, self.steps)
        return jnp.clip(action, -self.max_action, self.max_action)

    def __call__(self, obs: Float[Array, " obs_dim"]) -> Float[Array, " act_dim"]:
        """`pi_base(obs)`: the sample of the fixed noise `z = 0` (see the class notes).

        **Arguments:** `obs`, one normalised observation.

        **Returns:** the action, deterministic, in `[-max_action, max_action]`.
        """
        return self.from_noise(obs, jnp.zeros((self.act_dim,), obs.dtype))

    def sample(
        self, obs: Float[Array, " obs_dim"], *, key: PRNGKeyArray
    ) -> Float[Array, " act_dim"]:
        """A fresh sample, from `z ~ N(0, I)` drawn with `key` (keyword-only)."""
        return self.from_noise(obs, jr.normal(key, (self.act_dim,), obs.dtype))

    def bc_loss(
        self,
        observations: Float[Array, "batch obs_dim"],
        actions: Float[Array, "batch act_dim"],
        key: PRNGKeyArray,
    ) -> Float[Array, ""]:
        """Pure conditional flow matching on the data: `E ||v(s, x_t, t) - (a - x_0)||^2`.

        **Arguments:** `observations`, `actions`, a batch of data pairs; `key`, the draws of
        `x_0` and `t`.

        **Returns:** the scalar loss (summed over action dimensions, averaged over rows).
        """
        return jnp.mean(flow_matching_errors(self.field, observations, actions, key))


class ResidualFlow(AbstractResidualGenerator):
    """A flow-matching residual generator (`--generator flow`, C.2.4) in place of the CVAE.

    `delta = Euler(v(s, a_base, ., .), z)`, `z ~ N(0, I_act)`: the noise plays the CVAE
    latent's role in SPAR-PROJ's self-imitation (K noises integrated by the EMA target into
    candidate residuals, weighted by the critics, regressed onto with the weights stopped)
    and in SPAR-PLAS's latent policy; the gate's candidates are K integrated noises. Stage
    II's fit is the weighted flow-matching loss
    `recon_weight * E[w ||v(s, a_base, x_t, t) - (delta - x_0)||^2]`: the weight multiplies
    the data term, as in eq. 8, and there is no KL (the prior is fixed by construction).

    **Fields:** `field`, the `VelocityField` over residuals conditioned on `[s, a_base]`;
    `obs_dim`, `act_dim`, `steps` (Euler steps), static.
    """

    field: VelocityField
    obs_dim: int = eqx.field(static=True)
    act_dim: int = eqx.field(static=True)
    steps: int = eqx.field(static=True)

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        width: int = 256,
        depth: int = 3,
        steps: int = 10,
        *,
        key: PRNGKeyArray,
    ):
        """**Arguments:** `obs_dim`, `act_dim`; `width`, `depth`, the velocity field's hidden
        units and layers (the CVAE's, 256 x 3, for matched settings); `steps`, Euler steps
        per residual (10); `key` (keyword-only)."""
        _check_sizes(steps=steps)
        self.field = VelocityField(obs_dim + act_dim, act_dim, width, depth, key=key)
        self.obs_dim, self.act_dim, self.steps = obs_dim, act_dim, steps

    @property
    def noise_dim(self) -> int:
        """The flow's noise is an initial residual: `act_dim`."""
        return self.act_dim

    def generate(
        self,
        obs: Float[Array, " obs_dim"],
        base_action: Float[Array, " act_dim"],
        noise: Float[Array, " act_dim"],
    ) -> Float[Array, " act_dim"]:
        """The residual the noise flows to, `steps` Euler steps from `noise` (unclipped)."""
        return euler(self.field, jnp.concatenate([obs, base_action]), noise, self.steps)

    def generative_part(self) -> VelocityField:
        """The velocity field: the whole generator."""
        return self.field

    def fit_loss(
        self,
        obs: Float[Array, "batch obs_dim"],
        base: Float[Array, "batch act_dim"],
        residual: Float[Array, "batch act_dim"],
        weights: Float[Array, " batch"],
        config: Any,
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, ""], Metrics]:
        """The weighted flow-matching fit of the data residuals (the flow's eq. 8).

        **Arguments:** `obs`, `base`, the batch's states and base actions; `residual`, the
        data residuals `a - a_base`; `weights`, `w(s, a)` (no gradient); `config`, the
        `ResidualConfig` (`recon_weight`); `key`, the draws of `x_0` and `t`.

        **Returns:** `(loss, {"flow_loss": E[w ||v - (delta - x_0)||^2]})`.
        """
        cond = jnp.concatenate([obs, base], axis=-1)
        errors = flow_matching_errors(self.field, cond, residual, key)
        rec = jnp.mean(jax.lax.stop_gradient(weights) * errors)
        return config.recon_weight * rec, {"flow_loss": rec}
