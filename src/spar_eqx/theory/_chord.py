"""Proposition 3.3(ii): how far a chord between two manifold points strays from the manifold."""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from ._checks import as_floats, check, finite_at_least, is_traced, show


@jax.jit
def _deviation(
    curvature: Float[Array, ""], chord_length: Float[Array, ""], alpha: Float[Array, ""]
) -> Float[Array, ""]:
    u = alpha * (1 - alpha) * chord_length**2
    too_long = curvature * chord_length > 2
    inside = jnp.where(too_long, 1.0, 1 - curvature**2 * u)
    return jnp.where(too_long, jnp.inf, curvature * u / (1 + jnp.sqrt(inside)))


def chord_point_deviation_bound(
    curvature: Real[ArrayLike, ""],
    chord_length: Real[ArrayLike, ""],
    alpha: Real[ArrayLike, ""],
) -> Float[Array, ""]:
    r"""A bound on $d(x_\alpha, \mathcal{M})$ at the chord point $x_\alpha = (1-\alpha)x+\alpha y$.

    With $\tau = 1/\kappa$ and $c = \|y - x\|_2$ it returns
    $$\tau - \sqrt{\tau^2 - \alpha(1-\alpha)c^2}
      = \frac{\kappa\,\alpha(1-\alpha)\,c^2}{1 + \sqrt{1 - \kappa^2\alpha(1-\alpha)c^2}},$$
    computed in the second (cancellation-free) form, so $\kappa = 0$ gives 0.

    **Guarantee.** If $\mathcal{M} \subset \mathbb{R}^n$ is a closed set whose *reach* is at least
    $1/\kappa$, $x, y \in \mathcal{M}$ and $\kappa c \le 2$, then $d(x_\alpha, \mathcal{M})$ is at
    most this value for every $\alpha \in [0, 1]$, with equality on circles and spheres of radius
    $1/\kappa$. (Proof: let $p$ be a point of $\mathcal{M}$ nearest to $x_\alpha$, at distance $\rho
    \le c/2 \le \tau$ (the claim is trivial if $\rho = \tau$), and $n$ the unit vector from $p$ to
    $x_\alpha$. The open ball of radius $\tau$ centred at $o = p + \tau n$ holds no point of
    $\mathcal{M}$ (Federer's tangent-ball property of the reach), so $\|o - x\|, \|o - y\| \ge
    \tau$, and $(\tau - \rho)^2 = \|o - x_\alpha\|^2 = (1-\alpha)\|o-x\|^2 + \alpha\|o-y\|^2 -
    \alpha(1-\alpha)c^2 \ge \tau^2 - \alpha(1-\alpha)c^2$.) A bound on the curvature alone is *not*
    enough: two turns of a flat spiral are close in space but far along the curve, and the chord
    between them leaves the curve by about $c/2$. See `docs/theory.md`.

    **Arguments:**

    - `curvature`: $\kappa \ge 0$, an upper bound on $1/\mathrm{reach}(\mathcal{M})$ (which also
      bounds the curvature of a $C^2$ manifold).
    - `chord_length`: $c = \|y - x\|_2 \ge 0$.
    - `alpha`: the position $\alpha \in [0, 1]$ on the chord.

    **Returns:**

    The bound. Chords with $\kappa c > 2$ are refused: a `ValueError` when the inputs are concrete;
    under `jax.jit`/`jax.vmap` the value is `inf` (a true but vacuous bound). Negative or NaN inputs
    are refused in both cases (`eqx.error_if` when traced).
    """
    curvature, chord_length, alpha = as_floats(curvature, chord_length, alpha)
    curvature = check(
        curvature,
        finite_at_least(0.0),
        lambda: f"`curvature` must be a finite number >= 0, got {show(curvature)}.",
    )
    chord_length = check(
        chord_length,
        finite_at_least(0.0),
        lambda: f"`chord_length` must be a finite number >= 0, got {show(chord_length)}.",
    )
    alpha = check(
        alpha,
        lambda v, xp: ~((v >= 0) & (v <= 1)),
        lambda: f"`alpha` must lie in [0, 1], got {show(alpha)}.",
    )
    if not is_traced(curvature, chord_length) and bool(np.any(curvature * chord_length > 2)):
        raise ValueError(
            f"No chord deviation bound exists for curvature * chord_length = "
            f"{show(curvature * chord_length)} > 2 (curvature={show(curvature)}, "
            f"chord_length={show(chord_length)}): the chord is longer than the diameter "
            "2/curvature of the comparison circle. Use chords with curvature * chord_length <= 2, "
            "e.g. split the chord."
        )
    return _deviation(curvature, chord_length, alpha)


def chord_deviation_bound(
    curvature: Real[ArrayLike, ""], chord_length: Real[ArrayLike, ""]
) -> Float[Array, ""]:
    r"""A true bound on $\sup_\alpha d(x_\alpha, \mathcal{M})$ for a chord of length $c$.

    Returns the sagitta of a circle of radius $R = 1/\kappa$ over a chord of length $c$,

    $$R - \sqrt{R^2 - c^2/4} = \frac{\kappa c^2}{4\left(1 + \sqrt{1 - \kappa^2 c^2 / 4}\right)}
      = \frac{\kappa}{8}c^2 + \frac{\kappa^3}{128}c^4 + \dots,$$

    which is [`spar_eqx.theory.chord_point_deviation_bound`][] at the midpoint $\alpha = 1/2$, its
    maximum.
    This replaces the paper's eq. (11)/(36), $\frac{\kappa}{8}c^2$
    ([`spar_eqx.theory.paper_chord_bound`][]), which is only the leading term and is exceeded by
    every chord of every circle.

    **Guarantee.** For a closed set $\mathcal{M}$ with reach $\ge 1/\kappa$ (for a $C^2$ manifold
    this implies curvature $\le \kappa$), points $x, y \in \mathcal{M}$ with $\|y-x\|_2 = c$ and
    $\kappa c \le 2$: $\sup_\alpha d(x_\alpha, \mathcal{M}) \le$ the returned value, with equality
    on circles and spheres of radius $1/\kappa$.

    **Arguments:**

    - `curvature`: $\kappa \ge 0$, an upper bound on $1/\mathrm{reach}(\mathcal{M})$.
    - `chord_length`: $c \ge 0$.

    **Returns:**

    The bound. $\kappa = 0$ gives 0. Chords with $\kappa c > 2$ (where no bound of this kind holds)
    raise a `ValueError` when the inputs are concrete and give `inf` under `jax.jit`/`jax.vmap`.
    """
    return chord_point_deviation_bound(curvature, chord_length, 0.5)


def paper_chord_bound(
    curvature: Real[ArrayLike, ""], chord_length: Real[ArrayLike, ""]
) -> Float[Array, ""]:
    r"""The paper's chord bound $\frac{\kappa}{8}\|y - x\|_2^2$, eq. (11)/(32)/(36), *as stated*.

    **This is not an upper bound.** On a circle of radius $1/\kappa$ the true deviation (the
    sagitta) is $\frac{\kappa c^2}{8} \cdot \frac{2}{1 + \sqrt{1 - \kappa^2c^2/4}}$, larger for
    every $c > 0$: by a relative amount $\approx \kappa^2 c^2 / 16$ for small $\kappa c$, 7.2% at
    $\kappa c = 1$ and 100% at $\kappa c = 2$. It is the leading term of
    [`spar_eqx.theory.chord_deviation_bound`][] as $\kappa c \to 0$. Kept for comparisons with the
    paper.

    **Arguments:**

    - `curvature`: $\kappa \ge 0$.
    - `chord_length`: $c \ge 0$.

    **Returns:**

    $\kappa c^2 / 8$.
    """
    curvature, chord_length = as_floats(curvature, chord_length)
    curvature = check(
        curvature,
        finite_at_least(0.0),
        lambda: f"`curvature` must be a finite number >= 0, got {show(curvature)}.",
    )
    chord_length = check(
        chord_length,
        finite_at_least(0.0),
        lambda: f"`chord_length` must be a finite number >= 0, got {show(chord_length)}.",
    )
    return _paper(curvature, chord_length)


@jax.jit
def _paper(curvature: Float[Array, ""], chord_length: Float[Array, ""]) -> Float[Array, ""]:
    return curvature * chord_length**2 / 8
