"""Fig. 3: how far a policy's actions lie from the dataset's action support."""

import numpy as np
from jaxtyping import ArrayLike, Real
from sklearn.neighbors import NearestNeighbors

from ._sample import as_rows, subsample


def support_distance_ratio(
    policy_actions: Real[ArrayLike, "m act_dim"],
    dataset_actions: Real[ArrayLike, "n act_dim"],
    *,
    quantile: float = 0.95,
    max_points: int = 10_000,
    seed: int = 0,
) -> float:
    r"""The q95 kNN support-distance ratio of Fig. 3: a policy's distance to the dataset's
    actions, in units of the dataset's own boundary.

    $$\frac{Q_q\big(\min_j \|\hat a_i - a_j\|_2\big)}{Q_q\big(\min_{j \ne k} \|a_k - a_j\|_2\big)}$$

    The numerator is the `quantile` $q$ of each policy action's distance to its nearest
    dataset action; the denominator, the dataset's q-boundary, is the same quantile of each
    dataset action's distance to its nearest *other* dataset action (leave-one-out). Both are
    computed in the original action space (the paper's PCA plot is for looking only). Above
    `max_points` rows, each side is a deterministic subsample (`seed`).

    **Guarantees.** A policy whose actions are dataset actions (or draws from the dataset's
    distribution) scores about 1 or below, 0 when they are in the dataset subsample itself; a
    policy displaced by an offset much larger than the boundary scores about
    offset / boundary. The ratio does not change when both inputs are rescaled or translated
    together, and the same inputs and `seed` give the same value.

    **Arguments:**

    - `policy_actions`: the policy's actions at dataset states, `(m, act_dim)`, finite.
    - `dataset_actions`: the dataset's actions, `(n, act_dim)` with $n \ge 2$, finite.
    - `quantile`: $q \in (0, 1]$; the paper uses 0.95.
    - `max_points`: the most rows of each input used, at least 2.
    - `seed`: the subsampling seed.

    **Returns:**

    The ratio, a float $\ge 0$. Raises `ValueError` for bad input, and when the dataset's
    boundary is 0 (more than a fraction $1 - q$ of its actions repeat another exactly), where
    the ratio is undefined.
    """
    policy = as_rows(policy_actions, "policy_actions")
    data = as_rows(dataset_actions, "dataset_actions", min_rows=2)
    if policy.shape[1] != data.shape[1]:
        raise ValueError(
            f"`policy_actions` has {policy.shape[1]}-d actions but `dataset_actions` "
            f"{data.shape[1]}-d ones; pass actions of the same space."
        )
    if not 0 < quantile <= 1:
        raise ValueError(f"`quantile` must lie in (0, 1], got {quantile}.")
    if not (isinstance(max_points, int) and max_points >= 2):
        raise ValueError(f"`max_points` must be an integer >= 2, got {max_points!r}.")
    data = data[subsample(data.shape[0], max_points, np.random.SeedSequence([seed, 11]))]
    policy = policy[subsample(policy.shape[0], max_points, np.random.SeedSequence([seed, 12]))]
    index = NearestNeighbors(n_neighbors=1).fit(data)
    own = index.kneighbors()[0][:, 0]  # without X: each row's nearest *other* row
    boundary = float(np.quantile(own, quantile))
    if boundary == 0:
        raise ValueError(
            f"the dataset's q{quantile:g} boundary is 0: more than {1 - quantile:.0%} of "
            "`dataset_actions` repeat another action exactly, so no distance can be measured "
            "in its units; deduplicate the actions or lower `quantile`."
        )
    distances = index.kneighbors(policy, n_neighbors=1)[0][:, 0]
    return float(np.quantile(distances, quantile)) / boundary
