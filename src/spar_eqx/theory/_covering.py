"""Theorem 3.1, eq. (21)-(23): covering numbers of the global and residual search spaces."""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from ._checks import as_floats, check, finite_at_least, show

_exp = jax.jit(jnp.exp)


def _check_dim(dim: int) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
        raise ValueError(f"`dim` must be an integer >= 1 (the action dimension), got {dim!r}.")


def log_covering_number_bound(
    diameter: Real[ArrayLike, ""], radius: Real[ArrayLike, ""], dim: int
) -> Float[Array, ""]:
    r"""$d \log(1 + D/r)$: the log of [`spar_eqx.theory.covering_number_bound`][], without overflow.

    **Arguments:**

    - `diameter`: $D \ge 0$.
    - `radius`: $r > 0$.
    - `dim`: $d \ge 1$.

    **Returns:**

    $d \log(1 + D/r)$.
    """
    _check_dim(dim)
    diameter, radius = as_floats(diameter, radius)
    diameter = check(
        diameter,
        finite_at_least(0.0),
        lambda: f"`diameter` must be a finite number >= 0, got {show(diameter)}.",
    )
    radius = check(
        radius,
        finite_at_least(0.0, strict=True),
        lambda: (
            f"`radius` must be a finite number > 0, got {show(radius)}; a cover at radius 0 "
            "needs infinitely many balls."
        ),
    )
    return _log_cover(diameter, radius, float(dim))


@jax.jit
def _log_cover(
    diameter: Float[Array, ""], radius: Float[Array, ""], dim: Float[Array, ""]
) -> Float[Array, ""]:
    return dim * jnp.log1p(diameter / radius)


def covering_number_bound(
    diameter: Real[ArrayLike, ""], radius: Real[ArrayLike, ""], dim: int
) -> Float[Array, ""]:
    r"""The covering-number bound $(1 + D/r)^d$ of eq. (21)-(22).

    **Guarantee.** Every bounded set $K \subset \mathbb{R}^d$ of diameter $D$ (convex or not) can be
    covered by at most $(1 + D/r)^d$ closed balls of radius $r$ centred in $K$; in particular any
    set of centres in $K$ that are pairwise more than $r$ apart (such as the output of
    [`spar_eqx.theory.greedy_cover`][]) has at most that many points. (The balls of radius $r/2$
    around such centres are disjoint and lie in $K + B(0, r/2)$, a set of diameter $\le D + r$,
    whose volume is at most that of a ball of diameter $D + r$ by the isodiametric inequality.) This
    is the paper's constant; the bound quoted from Vershynin, $(1 + 2/\varepsilon)^n$ for the unit
    ball, is the special case $D = 2$.

    With $r = \epsilon/(2L)$ it gives eq. (21) for $D = D_\mathcal{A}$ and eq. (22) for the residual
    ball, $D = 2\delta_\rho$.

    **Arguments:**

    - `diameter`: $D \ge 0$.
    - `radius`: $r > 0$.
    - `dim`: the ambient dimension $d \ge 1$.

    **Returns:**

    $(1 + D/r)^d$; it overflows to `inf` in float32 beyond about $10^{38}$, use
    [`spar_eqx.theory.log_covering_number_bound`][] there.
    """
    return _exp(log_covering_number_bound(diameter, radius, dim))


def log_efficiency_ratio(
    action_diameter: Real[ArrayLike, ""],
    residual_radius: Real[ArrayLike, ""],
    lipschitz: Real[ArrayLike, ""],
    epsilon: Real[ArrayLike, ""],
    dim: int,
) -> Float[Array, ""]:
    r"""The logarithm of [`spar_eqx.theory.efficiency_ratio`][] (no overflow).

    **Arguments:** as for [`spar_eqx.theory.efficiency_ratio`][].

    **Returns:**

    $d \log\frac{D_\mathcal{A}}{2\delta_\rho} + \log\log(1 + 2LD_\mathcal{A}/\epsilon)
      - \log\log(1 + 4L\delta_\rho/\epsilon)$.
    """
    _check_dim(dim)
    names = ("action_diameter", "residual_radius", "lipschitz", "epsilon")
    values = as_floats(action_diameter, residual_radius, lipschitz, epsilon)
    checked = [
        check(
            value,
            finite_at_least(0.0, strict=True),
            lambda name=name, value=value: (
                f"`{name}` must be a finite number > 0, got {show(value)}."
            ),
        )
        for name, value in zip(names, values, strict=True)
    ]
    return _log_ratio(*checked, float(dim))


@jax.jit
def _log_ratio(
    diameter: Float[Array, ""],
    radius: Float[Array, ""],
    lipschitz: Float[Array, ""],
    epsilon: Float[Array, ""],
    dim: Float[Array, ""],
) -> Float[Array, ""]:
    volume = dim * (jnp.log(diameter) - jnp.log(2 * radius))
    log_factor = jnp.log(jnp.log1p(2 * lipschitz * diameter / epsilon)) - jnp.log(
        jnp.log1p(4 * lipschitz * radius / epsilon)
    )
    return volume + log_factor


def efficiency_ratio(
    action_diameter: Real[ArrayLike, ""],
    residual_radius: Real[ArrayLike, ""],
    lipschitz: Real[ArrayLike, ""],
    epsilon: Real[ArrayLike, ""],
    dim: int,
) -> Float[Array, ""]:
    r"""The global-versus-residual sample-complexity ratio of eq. (23), without its constants.

    $$\frac{N_\text{global}}{N_\text{spar}} = \Theta\!\left(
      \left(\frac{D_\mathcal{A}}{2\delta_\rho}\right)^d
      \frac{\log(1 + 2LD_\mathcal{A}/\epsilon)}{\log(1 + 4L\delta_\rho/\epsilon)}\right);$$

    this function returns the expression inside $\Theta(\cdot)$. It is the ratio of the two
    sample counts $\mathcal{N}\log\mathcal{N}$ of Theorem 3.1 with the covering bounds (21)-(22)
    replaced by their leading terms: the exact ratio of the bounds differs from it by the factor
    $\left(\frac{1 + \epsilon/(2LD_\mathcal{A})}{1 + \epsilon/(4L\delta_\rho)}\right)^d$, which
    tends to 1 as $\epsilon \to 0$ for fixed $d$ but not uniformly in $d$, and the
    $\log(2/\beta)$ term of the sample count is dropped. It is $\ge 1$ exactly when
    $D_\mathcal{A} \ge 2\delta_\rho$.

    **Arguments:**

    - `action_diameter`: $D_\mathcal{A} > 0$.
    - `residual_radius`: $\delta_\rho > 0$ (see [`spar_eqx.theory.residual_radius`][]).
    - `lipschitz`: $L > 0$, the Lipschitz constant of $Q(s, \cdot)$.
    - `epsilon`: the optimality tolerance $\epsilon > 0$.
    - `dim`: the action dimension $d \ge 1$.

    **Returns:**

    The ratio; use [`spar_eqx.theory.log_efficiency_ratio`][] when it may overflow.
    """
    return _exp(log_efficiency_ratio(action_diameter, residual_radius, lipschitz, epsilon, dim))


def greedy_cover(
    points: Float[Array, "n dim"], radius: Real[ArrayLike, ""]
) -> Float[Array, "m dim"]:
    r"""Greedy $r$-cover of a finite point set, with centres taken from the points themselves.

    Points are visited in order; a point becomes a centre when it is more than `radius` from every
    centre chosen so far. So every point is within `radius` of some centre, and the centres are
    pairwise more than `radius` apart, which caps their number at
    `covering_number_bound(diameter(points), radius, dim)` (see
    [`spar_eqx.theory.covering_number_bound`][]).

    Runs eagerly in NumPy, with distances computed in float64 from the given values: the output size
    depends on the data, so it cannot be traced by `jax.jit`. Cost $O(nm)$ for $m$ centres.

    **Arguments:**

    - `points`: $n \ge 1$ finite points in $\mathbb{R}^d$, one per row.
    - `radius`: $r > 0$.

    **Returns:**

    The $m$ centres: rows of `points` (same dtype, bit for bit), in their original order.
    """
    original = np.asarray(points)
    array = original.astype(np.float64)
    r = float(np.asarray(radius))
    if array.shape[0] == 0:
        raise ValueError("`greedy_cover` got no points (n=0); give at least one.")
    if not np.all(np.isfinite(array)):
        raise ValueError("`points` must be finite; got NaN or inf entries. Remove them first.")
    if not (r > 0 and np.isfinite(r)):
        raise ValueError(f"`radius` must be a finite number > 0, got {r!r}.")
    covered = np.zeros(array.shape[0], dtype=bool)
    centres = []
    while not covered.all():
        index = int(np.argmin(covered))  # the first point not yet covered
        centres.append(index)
        distances = np.sqrt(np.sum((array - array[index]) ** 2, axis=-1))
        covered |= distances <= r
    return jnp.asarray(original[np.asarray(centres)])
