"""Proposition 3.3(i): the target of latent self-imitation is a convex combination."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._checks import check, show


def weighted_squared_loss(
    x: Float[Array, " dim"], points: Float[Array, "k dim"], weights: Float[Array, " k"]
) -> Float[Array, ""]:
    r"""The latent self-imitation loss for one state, paper eq. (10) / (33).

    $$\mathcal{L}(x) = \sum_{k=1}^K w_k \, \|x - x_k\|_2^2 .$$

    **Arguments:**

    - `x`: the candidate output $x$ (for SPAR-PROJ, the student's residual $\Delta a$).
    - `points`: the $K$ targets $x_k$ (decoded residuals $\Delta a_k$), one per row.
    - `weights`: the weights $w_k$ (not checked here; any real weights are accepted).

    **Returns:**

    The scalar loss.
    """
    squared_distances = jnp.sum((x[None, :] - points) ** 2, axis=-1)
    return jnp.sum(weights * squared_distances)


def convex_combination_minimizer(
    points: Float[Array, "k dim"], weights: Float[Array, " k"], *, atol: float = 1e-5
) -> Float[Array, " dim"]:
    r"""The minimiser of [`spar_eqx.theory.weighted_squared_loss`][]: Proposition 3.3(i), eq. (34).

    For weights on the simplex ($w_k \ge 0$, $\sum_k w_k = 1$) the loss is $\mathcal{L}(x) =
    \mathcal{L}(x^*) + \|x - x^*\|_2^2$ with $x^* = \sum_k w_k x_k$, so $x^*$ is the unique
    minimiser and it lies in the convex hull of the targets.

    **Arguments:**

    - `points`: the $K$ targets $x_k$, one per row.
    - `weights`: the weights $w_k$; they must be non-negative and sum to 1 within `atol + K *
      eps(dtype)`. Checked with a `ValueError` when concrete, with `eqx.error_if` under `jax.jit`.
    - `atol`: the tolerance on $|\sum_k w_k - 1|$.

    **Returns:**

    $x^* = \sum_k w_k x_k$.
    """
    k = weights.shape[0]
    if k == 0:
        raise ValueError("`convex_combination_minimizer` got no points (k=0); give at least one.")
    tolerance = atol + k * float(jnp.finfo(weights.dtype).eps)
    weights = check(
        weights,
        lambda w, xp: ~(w >= 0),
        lambda: (
            f"`weights` must be non-negative (on the probability simplex), got {show(weights)}; "
            "normalise non-negative scores, e.g. with `jax.nn.softmax`."
        ),
    )
    weights = check(
        weights,
        lambda w, xp: ~(xp.abs(xp.sum(w) - 1) <= tolerance),
        lambda: (
            f"`weights` must sum to 1 within {tolerance:.2e}, got weights summing to "
            f"{show(weights.sum())}; divide them by their sum first."
        ),
    )
    return _combine(points, weights)


@jax.jit
def _combine(points: Float[Array, "k dim"], weights: Float[Array, " k"]) -> Float[Array, " dim"]:
    return weights @ points
