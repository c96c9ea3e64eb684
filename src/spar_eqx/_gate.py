"""Stage III: the value gate (eq. 12, Algorithm 5)."""

from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ._hyper import Scalar


class GateDecision(NamedTuple):
    """What the gate of eq. (12) chose for one state.

    **Fields:**

    - `action`: the deployed action: the best candidate if accepted, else `base_action`.
    - `accepted`: whether the residual was used.
    - `index`: `k*`, the best candidate (reported whether or not it was accepted).
    - `delta_q`: `Delta Q_{k*} = Q_rob(s, a_{k*}) - Q_rob(s, a_base)`.
    """

    action: Float[Array, " act_dim"]
    accepted: Bool[Array, ""]
    index: Int[Array, ""]
    delta_q: Float[Array, ""]


def gate(
    base_action: Float[Array, " act_dim"],
    candidates: Float[Array, "candidates act_dim"],
    q_base: Float[Array, ""],
    q_candidates: Float[Array, " candidates"],
    eta_abs: Scalar = 1e-4,
    eta_rel: Scalar = 0.01,
    eps: Scalar = 1e-6,
) -> GateDecision:
    """Pick `k* = argmax_k Delta Q_k`; accept iff both thresholds pass, else return `a_base`.

    `Delta Q_k = Q_rob(s, a_k) - Q_rob(s, a_base)`; accept iff
    `Delta Q_{k*} > eta_abs` and `Delta Q_{k*} / (|Q_rob(s, a_base)| + eps) > eta_rel`
    (eq. 12). When it refuses, the returned action *is* `base_action`, bit for
    bit. A NaN score never passes, and a candidate with a NaN score is never
    chosen over one with a finite score; a NaN `q_base` refuses every candidate.

    **Arguments:**

    - `base_action`: `a_base = pi_base(s)`.
    - `candidates`: the candidate actions `a_k = a_base + delta_k`, one per row (`K` rows;
      10 for SPAR-PROJ, C.1.4, and 1 for the deterministic residuals).
    - `q_base`: `Q_rob(s, a_base)`.
    - `q_candidates`: `Q_rob(s, a_k)` of each candidate.
    - `eta_abs`, `eta_rel`, `eps`: the thresholds of eq. (12) (`1e-4`, `0.01`, C.1.4).

    **Returns:** a `GateDecision`.
    """
    delta = q_candidates - q_base
    index = jnp.argmax(jnp.where(jnp.isnan(delta), -jnp.inf, delta))
    best = delta[index]
    accepted = (best > eta_abs) & (best / (jnp.abs(q_base) + eps) > eta_rel)
    action = jnp.where(accepted, candidates[index], base_action)
    return GateDecision(action, accepted, index, best)
