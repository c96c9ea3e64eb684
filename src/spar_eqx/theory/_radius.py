"""Eq. (3): the residual radius, an empirical quantile of residual norms."""

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, Real

from ._checks import as_floats, check, is_traced, show


@jax.jit
def _kth_smallest(norms: Float[Array, " n"], k: Int[ArrayLike, ""]) -> Float[Array, ""]:
    return jnp.sort(norms)[k - 1]


def residual_radius(norms: Real[ArrayLike, " n"], rho: Real[ArrayLike, ""]) -> Float[Array, ""]:
    r"""The residual radius $\delta_\rho$ of eq. (3): the empirical $(1-\rho)$-quantile of norms.

    $$\delta_\rho = \inf\{\delta > 0 : \Pr(\|a - \pi_\text{base}(s)\|_2 \le \delta) \ge 1 - \rho\}$$
    under the empirical distribution of `norms`: the smallest sample value $v$ whose empirical CDF
    $\#\{i : \text{norms}_i \le v\}/n$ is at least $1 - \rho$, i.e. the $k$-th smallest norm with
    $k = \lceil n(1-\rho) \rceil$. Not interpolated (NumPy's `method="inverted_cdf"`).

    **Guarantee.** At least a fraction $1 - \rho$ of the norms are $\le \delta_\rho$, and every
    smaller sample value has less than that fraction below it. $\delta_\rho$ is one of the norms,
    non-increasing in $\rho$, and invariant to the order of the norms.

    When $\rho$ is concrete, it is read as the shortest decimal that rounds to the given float
    (`0.3` means $3/10$, not the binary $0.29999\ldots$) and $k$ is computed in exact rational
    arithmetic, so $n = 10$, $\rho = 0.3$ gives the 7th value. When $\rho$ is traced (inside
    `jax.jit`/`jax.vmap`) $k$ is computed in floating point with a slack of $2n\epsilon$ that makes
    exact ties agree; it can differ by one rank only when $n(1-\rho)$ is within that slack of an
    integer without being one.

    **Arguments:**

    - `norms`: the $n \ge 1$ residual norms $\|a_i - \pi_\text{base}(s_i)\|_2$; finite and $\ge 0$.
    - `rho`: the tail mass $\rho \in (0, 1)$ (the paper uses 0.05).

    **Returns:**

    $\delta_\rho$, a scalar. Bad input raises `ValueError` when concrete, `eqx.error_if` when
    traced.
    """
    (norms,) = as_floats(norms)
    n = norms.shape[0]
    if n == 0:
        raise ValueError("`residual_radius` got no norms (n=0); give at least one residual norm.")
    norms = check(
        norms,
        lambda v, xp: ~((v >= 0) & xp.isfinite(v)),
        lambda: f"`norms` must be finite and >= 0 (they are Euclidean norms), got {show(norms)}.",
    )
    if is_traced(rho):
        (rho,) = as_floats(rho)
        rho = check(
            rho,
            lambda v, xp: ~((v > 0) & (v < 1)),
            "`rho` must lie in the open interval (0, 1); e.g. rho=0.05 for the 95% quantile.",
        )
        # n (1 - rho) is off by at most ~n eps in floating point: absorb that, so that exact ties
        # (rho = 0.3, n = 10) give the decimal answer; only ranks within rounding of a tie move
        slack = 2 * n * jnp.finfo(rho.dtype).eps
        k = jnp.clip(jnp.ceil(n * (1 - rho) - slack).astype(jnp.int32), 1, n)
    else:
        value = np.asarray(rho)
        if not (np.issubdtype(value.dtype, np.floating) and 0 < value < 1):
            raise ValueError(
                f"`rho` must be a float in the open interval (0, 1), got {rho!r}; e.g. rho=0.05 "
                "for the 95% quantile."
            )
        # rho as the shortest decimal that rounds to it (0.3 means 3/10, not 0.29999...), then the
        # smallest k with k / n >= 1 - rho, in exact rational arithmetic
        decimal = Fraction(np.format_float_positional(value, unique=True))
        k = math.ceil(n * (1 - decimal))
    if is_traced(norms, k):
        return _kth_smallest(norms, k)
    return jnp.asarray(np.sort(norms)[k - 1])


def residual_radius_from(
    actions: Real[ArrayLike, "n act_dim"],
    base_actions: Real[ArrayLike, "n act_dim"],
    rho: Real[ArrayLike, ""],
) -> Float[Array, ""]:
    r"""$\delta_\rho$ of eq. (3) from dataset actions and the base policy's actions at their states.

    **Arguments:**

    - `actions`: dataset actions $a_i$, one per row.
    - `base_actions`: $\pi_\text{base}(s_i)$ for the same rows.
    - `rho`: the tail mass $\rho \in (0, 1)$.

    **Returns:**

    [`spar_eqx.theory.residual_radius`][] of the norms $\|a_i - \pi_\text{base}(s_i)\|_2$.
    """
    actions, base_actions = as_floats(actions, base_actions)
    xp = jnp if is_traced(actions, base_actions) else np
    norms = xp.sqrt(xp.sum((actions - base_actions) ** 2, axis=-1))
    return residual_radius(norms, rho)
