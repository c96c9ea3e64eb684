"""The losses of SPAR's three stages, as pure functions of arrays.

Every function reduces over a leading batch axis with a mean, so callers vmap
the networks and hand the results here.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._hyper import Scalar


def expectile_loss(diff: Float[Array, " batch"], expectile: Scalar) -> Float[Array, ""]:
    """`E[|tau - 1{u < 0}| u^2]` with `u = target - prediction` (Stage I, Alg. 1 line 7).

    `expectile = 0.5` is half the mean squared error; larger values weigh
    under-estimates more.

    **Arguments:** `diff`, `u = target - prediction` per row; `expectile`, `tau` in
    `(0, 1)` (0.5, or 0.9 on AntMaze, Table 8).

    **Returns:** the scalar loss, `>= 0`; its minimiser over a constant prediction is the
    `tau`-expectile of the targets.
    """
    weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return jnp.mean(weight * diff**2)


def bc_loss(
    predicted: Float[Array, "batch act_dim"], actions: Float[Array, "batch act_dim"]
) -> Float[Array, ""]:
    """Deterministic behaviour cloning `E ||pi(s) - a||^2` (Alg. 1 line 4).

    **Arguments:** `predicted`, `pi(s)` per row; `actions`, the dataset actions.

    **Returns:** the squared error summed over action dimensions, averaged over rows.
    """
    return jnp.mean(jnp.sum((predicted - actions) ** 2, axis=-1))


def bc_nll_loss(log_probs: Float[Array, " batch"]) -> Float[Array, ""]:
    """Stochastic behaviour cloning: the mean negative log-likelihood of the data actions.

    Stage I's loss for the Gaussian anchor (Adroit, AntMaze; C.1.2).

    **Arguments:** `log_probs`, `log pi(a | s)` of each dataset pair.

    **Returns:** `-mean(log_probs)`.
    """
    return -jnp.mean(log_probs)


def weighted_reconstruction(
    predicted: Float[Array, "batch act_dim"],
    target: Float[Array, "batch act_dim"],
    weights: Float[Array, " batch"],
) -> Float[Array, ""]:
    """`E[w * ||pred - target||^2]` (eq. 7, 8). The weights carry no gradient.

    **Arguments:** `predicted`, the residual model's output per row; `target`, the dataset
    residual `a - a_base`; `weights`, `w(s, a)` per row (`advantage_weights`).

    **Returns:** the weighted squared error, summed over action dimensions and averaged
    over rows (not divided by the weights' sum, so hard-filtered rows just drop out).
    """
    weights = jax.lax.stop_gradient(weights)
    return jnp.mean(weights * jnp.sum((predicted - target) ** 2, axis=-1))


def gaussian_kl(
    mean: Float[Array, "batch latent"], log_std: Float[Array, "batch latent"]
) -> Float[Array, ""]:
    """`E KL(N(mean, exp(log_std)^2) || N(0, I))`, summed over latent dims (eq. 8).

    Never weighted: the KL is a global latent regulariser (Section 3.2.3).

    **Arguments:** `mean`, `log_std`, the encoder's Gaussian per row.

    **Returns:** the KL to the prior, summed over latent dimensions and averaged over rows;
    `>= 0`, and 0 exactly at `mean = 0`, `log_std = 0`.
    """
    var = jnp.exp(2.0 * log_std)
    kl = 0.5 * jnp.sum(mean**2 + var - 1.0 - 2.0 * log_std, axis=-1)
    return jnp.mean(kl)


def value_guidance(q_values: Float[Array, " batch"]) -> Float[Array, ""]:
    """`-E[Q_rob(s, a_synth)]`: minimising it ascends the critic (eq. 7, Alg. 3 line 16).

    **Arguments:** `q_values`, `Q_rob(s, a_synth)` per row (differentiable in the residual).

    **Returns:** `-mean(q_values)`; the caller multiplies it by `lambda_g`.
    """
    return -jnp.mean(q_values)


def latent_self_imitation(
    predicted: Float[Array, "batch candidates act_dim"],
    targets: Float[Array, "batch candidates act_dim"],
    omega: Float[Array, "batch candidates"],
) -> Float[Array, ""]:
    """`E_s sum_k omega_k ||decoder(s, a_base, z_k) - delta_k||^2` (eq. 10).

    Gradients are stopped on the targets `delta_k` and the weights `omega_k`, so only
    `predicted` is pulled. Read literally, each `predicted[k]` is pulled towards its own
    `delta_k` (the minimiser per latent is `delta_k`, not a combination): with
    `targets = convex_targets(targets, omega)` broadcast over the candidates, every latent is
    pulled towards the omega-weighted combination that Proposition 3.3(i) describes.

    **Arguments:**

    - `predicted`: the online decoder at each candidate latent, `decoder(s, a_base, z_k)`.
    - `targets`: `delta_k`, the target decoder's residuals (or their convex combination).
    - `omega`: the candidate weights `omega_k` of eq. (9) (`candidate_weights`).

    **Returns:** the scalar loss of eq. (10), averaged over states.
    """
    targets = jax.lax.stop_gradient(targets)
    omega = jax.lax.stop_gradient(omega)
    return jnp.mean(jnp.sum(omega * jnp.sum((predicted - targets) ** 2, axis=-1), axis=-1))


def convex_targets(
    targets: Float[Array, "batch candidates act_dim"], omega: Float[Array, "batch candidates"]
) -> Float[Array, "batch act_dim"]:
    """`sum_k omega_k delta_k` per state: the minimiser of Proposition 3.3(i), without gradient.

    A state whose weights are all zero (every candidate filtered out) gets zeros; its loss
    weight is zero anyway.

    **Arguments:** `targets`, the candidate residuals `delta_k` per state; `omega`, their
    weights (each row sums to 1 or is all zeros).

    **Returns:** `sum_k omega_k delta_k` per state, shape `(batch, act_dim)`, stop-gradiented.
    """
    combined = jnp.sum(omega[..., None] * targets, axis=-2)
    return jax.lax.stop_gradient(combined)
