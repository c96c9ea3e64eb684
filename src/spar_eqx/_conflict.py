"""Section 4.3's gradient-conflict metrics: directional damage (DD) and value-step drift (VSD).

Both compare one guidance update `delta_theta` with the fitting loss `L_fit` in the parameter
space that both objectives reach through the chain rule:

- `DD = <grad L_fit(theta), delta_theta>`: positive when the update opposes the fit;
- `VSD = L_fit(theta + delta_theta) - L_fit(theta)`: the fit actually lost in one step.

`gradient_conflict` computes both for any `delta_theta`; `guidance_update` says which
`delta_theta` the Stage II learners measure (the share of the run's optimiser step that the
guidance objective is responsible for).
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PyTree

from ._optim import optimizer_update, trainable


def gradient_conflict(
    fit_loss: Callable[[Any], Float[Array, ""]],
    params: PyTree,
    delta: PyTree,
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""Section 4.3, Table 3: the directional damage and value-step drift of an update.

    $$\mathrm{DD} = \langle \nabla_\theta \mathcal{L}_\text{fit}(\theta), \Delta\theta \rangle,
    \qquad
    \mathrm{VSD} = \mathcal{L}_\text{fit}(\theta + \Delta\theta) - \mathcal{L}_\text{fit}(\theta).$$

    DD is the first-order change of the fit that the update causes (positive: the update
    opposes the fit); VSD is the actual change. For a quadratic fit loss with Hessian $H$,
    $\mathrm{VSD} = \mathrm{DD} + \tfrac12 \Delta\theta^\top H \Delta\theta$ exactly.

    **Arguments:**

    - `fit_loss`: `params -> scalar`, the fitting loss $\mathcal{L}_\text{fit}$ (any random
      draws inside it must be fixed, so that both evaluations see the same loss).
    - `params`: $\theta$, a PyTree (e.g. an `eqx.Module`); its inexact-array leaves are the
      parameters.
    - `delta`: $\Delta\theta$, the update, with the structure of
      `eqx.filter(params, eqx.is_inexact_array)` (what an optax update of those leaves has;
      `None` where `params` has no parameter).

    **Returns:**

    `(dd, vsd)`, two scalars: $\mathrm{DD}$ summed over every leaf, and $\mathrm{VSD}$.
    """
    loss, grads = eqx.filter_value_and_grad(fit_loss)(params)
    products = jax.tree_util.tree_map(lambda g, d: jnp.sum(g * d), grads, delta)
    dd = sum(jax.tree_util.tree_leaves(products), jnp.zeros((), loss.dtype))
    vsd = fit_loss(eqx.apply_updates(params, delta)) - loss
    return dd, vsd


def guidance_update(
    optimizer: optax.GradientTransformation,
    opt_state: optax.OptState,
    params: PyTree,
    grads: PyTree,
    grads_without_guidance: PyTree,
) -> PyTree:
    r"""The guidance step $\Delta\theta$ of Section 4.3: what guidance adds to one optimiser step.

    $$\Delta\theta = U(g;\, s) - U(g - \lambda_g \nabla \mathcal{L}_\text{guide};\, s),$$

    where $U(\cdot\,; s)$ is the run's optimiser update (global-norm clipping, then Adam at
    the run's learning rate, Table 7) from its current state $s$, $g$ the gradient the
    learner trains with, and $g - \lambda_g \nabla \mathcal{L}_\text{guide}$ the same gradient
    without the guidance term (`grads_without_guidance`). So $\Delta\theta$ is "the actual
    parameter update induced by a single step of value guidance" with the real optimiser and
    learning rate: Adam's momentum history cancels out (both updates start from $s$), and
    its second moments scale the guidance gradient as they scale the real step. Under Adam
    this is $\approx -\eta \frac{1-\beta_1}{1-\beta_1^t} \lambda_g \nabla
    \mathcal{L}_\text{guide} / (\sqrt{\hat v} + \epsilon)$: the guidance's share of this step
    (momentum spreads the rest of it over later steps). Neither update is applied.

    **Arguments:**

    - `optimizer`: the run's optimiser (`make_optimizer(learning_rate, grad_clip)`).
    - `opt_state`: its state before this step.
    - `params`: the model the optimiser updates.
    - `grads`, `grads_without_guidance`: gradients with respect to `params` (as
      `eqx.filter_grad` returns them), with and without the guidance term.

    **Returns:**

    $\Delta\theta$, with the structure of `eqx.filter(params, eqx.is_inexact_array)`.
    """
    leaves = trainable(params)
    with_guidance, _ = optimizer_update(optimizer, grads, opt_state, leaves)
    without_guidance, _ = optimizer_update(optimizer, grads_without_guidance, opt_state, leaves)
    return jax.tree_util.tree_map(lambda a, b: a - b, with_guidance, without_guidance)
