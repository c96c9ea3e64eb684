"""Optax plumbing shared by every learner: one place for the optimiser and its update."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array

from ._hyper import Scalar


def make_optimizer(
    learning_rate: Scalar, grad_clip: Scalar | None = None
) -> optax.GradientTransformation:
    """Adam, after global-norm gradient clipping when `grad_clip` is given (Table 7)."""
    adam = optax.adam(learning_rate)
    return adam if grad_clip is None else optax.chain(optax.clip_by_global_norm(grad_clip), adam)


def trainable(model):
    """The inexact-array leaves of `model`: what the optimiser sees."""
    return eqx.filter(model, eqx.is_inexact_array)


def init_opt(optimizer: optax.GradientTransformation, model) -> optax.OptState:
    return optimizer.init(trainable(model))


def initial_state(state_cls: type, optimizers: dict[str, optax.GradientTransformation], **modules):
    """A learner's first state: `state_cls(**modules, <name>_opt=..., step=0)`.

    **Arguments:** `state_cls`, the learner's state class; `optimizers`, `{name: optimiser}`
    for each trained module (its state goes in the field `<name>_opt`); `modules`, every
    module field (target copies included).

    **Returns:** the state, its step an int32 zero.
    """
    opt_states = {f"{name}_opt": init_opt(opt, modules[name]) for name, opt in optimizers.items()}
    return state_cls(**modules, **opt_states, step=jnp.zeros((), jnp.int32))


def optimizer_update(optimizer: optax.GradientTransformation, grads, opt_state, params):
    """`optimizer.update`, allowed optax's own dtype promotion.

    Adam's bias correction computes `decay ** count` (a float to an int32 power), which JAX's
    strict dtype promotion refuses; the promotion is harmless, so it is allowed here only.
    """
    with jax.numpy_dtype_promotion("standard"):
        return optimizer.update(grads, opt_state, params)


def apply_grads(optimizer: optax.GradientTransformation, model, grads, opt_state):
    """One optimiser step on `model`: `(new_model, new_opt_state)`."""
    updates, opt_state = optimizer_update(optimizer, grads, opt_state, trainable(model))
    return eqx.apply_updates(model, updates), opt_state


def ordered_after(tree, value: Array) -> Any:
    """`tree`, made to depend on `value`: whatever reads the result runs after `value` exists.

    An update that reads a network's old parameters (a forward pass of the target critics,
    say) and then overwrites them (their Polyak step) leaves XLA no order between the two, so
    inside a `lax.scan` it copies the parameters every step to be safe; at 10 critics of 256
    units and 8 seeds, 25 MB per update. Passing the parameters the overwrite reads through
    `ordered_after(params, value_read_from_them)` orders the read first, and the copy goes.

    Each inexact array leaf `x` becomes `x - 0 * |sum(value)|`: the same bits whenever `value`
    is finite (`x - (+0.0)` is `x` for every `x`, signed zeros included), and NaN where it is
    not, where the update is already non-finite. XLA does not fold `0 * s` away (it is NaN
    for an infinite `s`), which is what keeps the dependency.

    **Arguments:** `tree`, a PyTree (a module); `value`, an array computed from it.

    **Returns:** `tree` with the same structure, static fields and (finite case) values.
    """
    zero = 0.0 * jnp.abs(jnp.sum(value))
    return jax.tree_util.tree_map(
        lambda x: x - zero.astype(x.dtype) if eqx.is_inexact_array(x) else x, tree
    )
