"""Lemma 3.2, eq. (6)/(24)-(31): the localisation bias of restricting the search to a ball."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from ._checks import as_floats, check, finite_at_least, show


def localisation_bound(
    lipschitz: Real[ArrayLike, ""],
    distance_to_best: Real[ArrayLike, ""],
    radius: Real[ArrayLike, ""],
) -> Float[Array, ""]:
    r"""The localisation bound of Lemma 3.2, eq. (6)/(24).

    $$L \cdot \big[\|a^\mu - a_\text{base}\|_2 - \delta_\rho\big]_+ .$$

    **Guarantee.** For every $L$-Lipschitz $Q(s, \cdot)$ (Euclidean norm) and every point $a^\mu$
    (the lemma takes the best in-support action, but the argument uses only Lipschitz continuity),
    $\varepsilon_\text{loc} = Q(s, a^\mu) - \max_{\|a - a_\text{base}\|_2 \le \delta_\rho} Q(s, a)$
    is at most this value, because the radial projection $\tilde a$ of eq. (26)
    ([`spar_eqx.theory.radial_projection`][]) is in the ball and $\|a^\mu - \tilde a\|_2$ equals the
    bracket. The bound is attained by the linear $Q(a) = L\,u^\top a$ with $u$ along $a^\mu -
    a_\text{base}$.

    **Arguments:**

    - `lipschitz`: $L \ge 0$.
    - `distance_to_best`: $\|a^\mu - a_\text{base}\|_2 \ge 0$.
    - `radius`: $\delta_\rho \ge 0$.

    **Returns:**

    The bound, $\ge 0$.
    """
    names = ("lipschitz", "distance_to_best", "radius")
    values = as_floats(lipschitz, distance_to_best, radius)
    checked = [
        check(
            value,
            finite_at_least(0.0),
            lambda name=name, value=value: (
                f"`{name}` must be a finite number >= 0, got {show(value)}."
            ),
        )
        for name, value in zip(names, values, strict=True)
    ]
    return _bound(*checked)


@jax.jit
def _bound(
    lipschitz: Float[Array, ""], distance_to_best: Float[Array, ""], radius: Float[Array, ""]
) -> Float[Array, ""]:
    return lipschitz * jnp.maximum(distance_to_best - radius, 0)


def radial_projection(
    a_mu: Float[Array, " dim"], a_base: Float[Array, " dim"], radius: Real[ArrayLike, ""]
) -> Float[Array, " dim"]:
    r"""The radial projection of eq. (26) onto the ball $\|a - a_\text{base}\|_2 \le \delta_\rho$.

    The point of the ball on the segment from $a_\text{base}$ to $a^\mu$ closest to $a^\mu$.

    $\tilde a = a_\text{base} + \delta_\rho \frac{a^\mu - a_\text{base}}{\|a^\mu -
    a_\text{base}\|_2}$ when $a^\mu$ is outside the ball, and $a^\mu$ itself otherwise. (It is also
    the Euclidean projection onto the ball.)

    **Arguments:**

    - `a_mu`: the point $a^\mu$ to project.
    - `a_base`: the centre $a_\text{base} = \pi_\text{base}(s)$.
    - `radius`: $\delta_\rho \ge 0$.

    **Returns:**

    $\tilde a$, with $\|\tilde a - a_\text{base}\|_2 = \min(\|a^\mu - a_\text{base}\|_2,
    \delta_\rho)$.
    """
    a_mu, a_base, radius = as_floats(a_mu, a_base, radius)
    radius = check(
        radius,
        finite_at_least(0.0),
        lambda: f"`radius` must be a finite number >= 0, got {show(radius)}.",
    )
    return _project(a_mu, a_base, radius)


@jax.jit
def _project(
    a_mu: Float[Array, " dim"], a_base: Float[Array, " dim"], radius: Float[Array, ""]
) -> Float[Array, " dim"]:
    offset = a_mu - a_base
    distance = jnp.sqrt(jnp.sum(offset**2))
    outside = distance > radius
    scale = jnp.where(outside, radius / jnp.where(outside, distance, 1), 1)
    return a_base + scale * offset


def localisation_gap(
    q_fn: Callable[[Float[Array, " dim"]], Float[Array, ""]],
    a_mu: Float[Array, " dim"],
    a_base: Float[Array, " dim"],
    radius: Real[ArrayLike, ""],
    *,
    key: PRNGKeyArray,
    num_samples: int = 4096,
) -> Float[Array, ""]:
    r"""A conservative estimate of the localisation gap $\varepsilon_\text{loc}$ of eq. (28).

    $$\varepsilon_\text{loc} = Q(a^\mu) - \max_{\|a - a_\text{base}\|_2 \le \delta_\rho} Q(a)$$
    for a test function $Q$.

    The maximum over the ball is estimated from `num_samples` points drawn uniformly in the ball,
    plus $a_\text{base}$ and the radial projection $\tilde a$ of eq. (26). Each candidate lies in
    the ball, so the estimated maximum is at most the true one and the returned gap is **at least**
    the true $\varepsilon_\text{loc}$: checking `localisation_gap(...) <= localisation_bound(...)`
    is therefore a check of the bound itself, not of an optimistic estimate. The gap can be negative
    (when the ball holds a better point than $a^\mu$).

    **Arguments:**

    - `q_fn`: $Q(s, \cdot)$ for a fixed state: one action of shape `(dim,)` to a scalar; batched
      with `jax.vmap`.
    - `a_mu`: the comparison action $a^\mu$.
    - `a_base`: the ball's centre $a_\text{base}$.
    - `radius`: $\delta_\rho \ge 0$.
    - `key`: a PRNG key for the samples (keyword-only).
    - `num_samples`: how many uniform samples in the ball.

    **Returns:**

    The estimated gap (a scalar).
    """
    if num_samples < 0:
        raise ValueError(f"`num_samples` must be >= 0, got {num_samples}.")
    a_mu, a_base, radius = as_floats(a_mu, a_base, radius)
    radius = check(
        radius,
        finite_at_least(0.0),
        lambda: f"`radius` must be a finite number >= 0, got {show(radius)}.",
    )
    a_mu, a_base, radius = jnp.asarray(a_mu), jnp.asarray(a_base), jnp.asarray(radius)
    dim = a_mu.shape[0]
    direction_key, radius_key = jr.split(key)
    directions = jr.normal(direction_key, (num_samples, dim), dtype=a_mu.dtype)
    directions = directions / jnp.linalg.norm(directions, axis=-1, keepdims=True)
    radii = radius * jr.uniform(radius_key, (num_samples, 1), dtype=a_mu.dtype) ** (1 / dim)
    samples = a_base[None, :] + radii * directions
    projected = radial_projection(a_mu, a_base, radius)
    candidates = jnp.concatenate([samples, a_base[None, :], projected[None, :]], axis=0)
    best_in_ball = jnp.max(jax.vmap(q_fn)(candidates))
    return q_fn(a_mu) - best_in_ball
