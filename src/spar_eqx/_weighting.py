"""The unified weighting of Section 3.2.2: normalised advantage, exp/uniform x hard/soft.

Two regimes per axis:
- sensitivity: `"exp"` gives `w_base = exp(A~ / T)`, `"uniform"` gives `w_base = 1`;
- filtering: `"hard"` multiplies by `1{A~ > 0}`, `"soft"` keeps every sample.
"""

from typing import Literal

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._hyper import Scalar, is_number

Sensitivity = Literal["exp", "uniform"]
Filtering = Literal["hard", "soft"]

SENSITIVITIES = ("exp", "uniform")
FILTERINGS = ("hard", "soft")


def _check_modes(sensitivity: str, filtering: str, temperature: Scalar) -> None:
    if sensitivity not in SENSITIVITIES:
        raise ValueError(f"sensitivity must be one of {SENSITIVITIES}, got {sensitivity!r}.")
    if filtering not in FILTERINGS:
        raise ValueError(f"filtering must be one of {FILTERINGS}, got {filtering!r}.")
    if is_number(temperature) and not temperature > 0:
        raise ValueError(f"the temperature T must be positive, got {temperature}.")


def normalized_advantage(
    q: Float[Array, "*batch"],
    q_base: Float[Array, "*batch"],
    sigma: Float[Array, "*batch"],
    eps: float = 1e-6,
) -> Float[Array, "*batch"]:
    """`A~ = (Q_rob(s, a) - Q_rob(s, a_base)) / max(sigma_Q, eps)` (Section 3.2.2, eq. 9).

    `sigma` is guarded from below by `eps`, so a collapsed ensemble (sigma = 0)
    gives a large finite advantage, never a NaN or an infinity.

    **Arguments:**

    - `q`: `Q_rob(s, a)` of the dataset action (or of each candidate `a_k`).
    - `q_base`: `Q_rob(s, a_base)` of the base action, broadcastable against `q`.
    - `sigma`: the ensemble's standard deviation `sigma_Q` at `(s, a_base)`.
    - `eps`: the floor on `sigma`.

    **Returns:** `A~`, the shape of `q`: positive exactly when the action scores above the
    base action.
    """
    return (q - q_base) / jnp.maximum(sigma, eps)


def advantage_weights(
    advantage: Float[Array, "*batch"],
    temperature: Scalar,
    sensitivity: Sensitivity = "exp",
    filtering: Filtering = "hard",
    max_weight: Scalar = 100.0,
) -> Float[Array, "*batch"]:
    """Per-sample weights `w(A~)` for the fitting losses (eq. 7, 8).

    `"exp"` weights are `exp(A~ / T)` capped at `max_weight` (as in IQL/AWR), so
    they are finite and lie in `[0, max_weight]`; `"uniform"` weights are 1.
    `"hard"` filtering zeroes every sample with `A~ <= 0`.

    **Arguments:**

    - `advantage`: `A~` per sample (`normalized_advantage`).
    - `temperature`: `T > 0` (Table 8: 1.0 or 0.3).
    - `sensitivity`: `"exp"` (`w_base = exp(A~ / T)`) or `"uniform"` (`w_base = 1`).
    - `filtering`: `"hard"` (`w = w_base * 1{A~ > 0}`) or `"soft"` (`w = w_base`).
    - `max_weight`: the cap on exponential weights (positive).

    **Returns:** `w(s, a)`, the shape of `advantage`, not normalised over the batch:
    exponential weights lie in `[0, max_weight]`, uniform ones in `{0, 1}`.
    """
    _check_modes(sensitivity, filtering, temperature)
    if is_number(max_weight) and not max_weight > 0:
        raise ValueError(f"max_weight must be positive, got {max_weight}.")
    if sensitivity == "exp":
        # exp(log(max_weight)) can round above max_weight in float32: cap after exp too.
        w = jnp.minimum(
            jnp.exp(jnp.minimum(advantage / temperature, jnp.log(max_weight))), max_weight
        )
    else:
        w = jnp.ones_like(advantage)
    if filtering == "hard":
        w = jnp.where(advantage > 0, w, 0.0)
    return w


def candidate_weights(
    advantage: Float[Array, "*batch candidates"],
    temperature: Scalar,
    sensitivity: Sensitivity = "exp",
    filtering: Filtering = "hard",
) -> Float[Array, "*batch candidates"]:
    """Weights normalised over the last (candidate) axis: `omega_k = w_k / sum_j w_j` (eq. 9).

    Computed as a masked softmax, so large advantages never overflow. Each row
    sums to 1, except a row whose candidates are all filtered out (hard
    filtering, every `A~ <= 0`), which is all zeros: no target, no update.

    **Arguments:**

    - `advantage`: `A~_k` of each candidate, the candidates on the last axis.
    - `temperature`, `sensitivity`, `filtering`: as in `advantage_weights` (no cap is
      needed: the softmax normalises).

    **Returns:** `omega_k`, the shape of `advantage`, non-negative; zero on filtered
    candidates.
    """
    _check_modes(sensitivity, filtering, temperature)
    keep = advantage > 0 if filtering == "hard" else jnp.ones(advantage.shape, bool)
    logits = advantage / temperature if sensitivity == "exp" else jnp.zeros_like(advantage)
    logits = jnp.where(keep, logits, -jnp.inf)
    any_kept = jnp.any(keep, axis=-1, keepdims=True)
    safe = jnp.where(any_kept, logits, 0.0)
    omega = jax.nn.softmax(safe, axis=-1)
    return jnp.where(any_kept & keep, omega, 0.0)
