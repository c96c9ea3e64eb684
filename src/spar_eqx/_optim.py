"""Optax plumbing shared by every learner: one place for the optimiser and its update."""

import equinox as eqx
import jax
import optax

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
