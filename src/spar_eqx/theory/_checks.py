"""Input checks shared by the theory functions.

Bad input is refused at the boundary: with a `ValueError` when the values are concrete (checked in
NumPy, no dispatch cost), and with `eqx.error_if` when they are traced (under `jax.jit` / `jax.vmap`
/ `jax.grad`). Nothing is clipped or replaced by NaN.
"""

from collections.abc import Callable
from types import ModuleType
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike


def is_traced(*xs: object) -> bool:
    """True when any argument is a JAX tracer (so its value is unknown in Python)."""
    return any(isinstance(x, jax.core.Tracer) for x in xs)


def as_floats(*xs: ArrayLike) -> tuple[Any, ...]:
    """Give the inputs one common floating dtype (ints become floats).

    Concrete inputs become NumPy arrays (cheap to check; `jax.jit` converts them on the call),
    traced ones stay JAX arrays.
    """
    xp = jnp if is_traced(*xs) else np
    arrays = [xp.asarray(x) for x in xs]
    arrays = [a if xp.issubdtype(a.dtype, xp.inexact) else a.astype(float) for a in arrays]
    with jax.numpy_dtype_promotion("standard"):
        dtype = jnp.result_type(*arrays)
    return tuple(a.astype(dtype) for a in arrays)


def show(x: ArrayLike) -> str:
    """A short description of a value for an error message (tracers have no value to show)."""
    if is_traced(x):
        return "a traced value"
    value = np.asarray(x)
    return repr(value.item()) if value.ndim == 0 else np.array2string(value, threshold=8)


def check(x: Any, bad: Callable[[Any, ModuleType], Any], message: str | Callable[[], str]) -> Any:
    """Refuse the array `x` when `bad(x, xp)` holds anywhere (`xp` is `numpy` or `jax.numpy`).

    Concrete `x`: raise `ValueError(message)` now. Traced `x`: return `eqx.error_if(x, ...,
    message)`, which raises when the compiled program runs (use the returned value, or the check is
    optimised away). `message` may be a function, called only when it is needed.
    """
    text = message if isinstance(message, str) else None
    if is_traced(x):
        return eqx.error_if(x, jnp.any(bad(x, jnp)), text or message())  # type: ignore[operator]
    if bool(np.any(bad(np.asarray(x), np))):
        raise ValueError(text or message())  # type: ignore[operator]
    return x


def finite_at_least(bound: float, *, strict: bool = False) -> Callable[[Any, ModuleType], Any]:
    """A `bad` predicate for `check`: not finite, or below `bound` (at or below when `strict`)."""
    if strict:
        return lambda v, xp: ~(v > bound) | ~xp.isfinite(v)
    return lambda v, xp: ~(v >= bound) | ~xp.isfinite(v)
