"""Residual topology (Sections 3.2 and 4.2, Fig. 2, Appendix C.2.6): SPAR-MLP or SPAR-PROJ?"""

import math

import numpy as np
from jaxtyping import ArrayLike, Real
from sklearn.cluster import HDBSCAN
from sklearn.neighbors import NearestNeighbors

from ..theory import residual_radius
from ._report import TopologyReport
from ._sample import as_rows, random_pair_distances, subsample

# HDBSCAN's `min_samples` (the neighbourhood that smooths its density estimate) is
# min(_MIN_SAMPLES, min_cluster_size): large enough that a flat or heavy-tailed single mode
# is not split by sampling noise, small enough that two modes a few standard deviations
# apart still separate with a few thousand points.
_MIN_SAMPLES = 50


def _check_fraction(name: str, value: float, *, closed: bool = False) -> float:
    value = float(value)
    if not (0 < value < 1 or (closed and value == 1)):
        interval = "(0, 1]" if closed else "(0, 1)"
        raise ValueError(f"`{name}` must lie in {interval}, got {value}.")
    return value


def _covariance(x: np.ndarray) -> np.ndarray:
    """The `(d, d)` covariance of the rows of `x` (divided by n; `np.cov` is far slower here)."""
    centred = x - x.mean(axis=0)
    return centred.T @ centred / x.shape[0]


def _nearest_other(points: np.ndarray) -> tuple[NearestNeighbors, np.ndarray]:
    """A fitted neighbour index and each point's distance to its nearest other point."""
    # A k-d tree in a few dimensions, exact brute force above (where trees stop pruning).
    algorithm = "kd_tree" if points.shape[1] <= 8 else "brute"
    index = NearestNeighbors(n_neighbors=1, algorithm=algorithm).fit(points)
    return index, index.kneighbors()[0][:, 0]  # without X: each row's nearest *other* row


def _tail_ratio(distances: np.ndarray) -> float:
    return float(np.quantile(distances, 0.99) / np.median(distances))


def _decide(
    num_clusters: int,
    largest: float,
    noise: float,
    mean_gap: float,
    tail_ratio: float,
    tail_excess: float,
    *,
    min_cluster_share: float,
    max_mean_gap: float,
    max_tail_excess: float,
) -> tuple[str, str]:
    fired = []
    if num_clusters >= 2:
        fired.append(
            f"HDBSCAN splits the residuals into {num_clusters} density clusters of at least "
            f"{min_cluster_share:.0%} each (largest {largest:.0%}, noise {noise:.0%})"
        )
    if mean_gap > max_mean_gap:
        fired.append(
            f"the mean residual lies outside the residuals' support (mean gap {mean_gap:.2f} > "
            f"{max_mean_gap:g}), so a regression's mean would fall between modes"
        )
    if tail_excess > max_tail_excess:
        fired.append(
            f"the nearest-neighbour tail is heavy (q99/median {tail_ratio:.1f}, "
            f"{tail_excess:.1f} x a Gaussian's > {max_tail_excess:g}): sparse, isolated residuals"
        )
    if fired:
        return "proj", "; ".join(fired)
    return "mlp", (
        f"one density cluster, the mean inside the support (mean gap {mean_gap:.2f} <= "
        f"{max_mean_gap:g}) and a Gaussian-like nearest-neighbour tail ({tail_excess:.1f} x a "
        f"Gaussian's <= {max_tail_excess:g}): compact, unimodal residuals"
    )


def residual_topology(
    residuals: Real[ArrayLike, "n act_dim"],
    actions: Real[ArrayLike, "n act_dim"],
    *,
    rho: float = 0.05,
    seed: int = 0,
    max_points: int = 4000,
    min_cluster_share: float = 0.05,
    max_mean_gap: float = 1.0,
    max_tail_excess: float = 3.0,
    diameter_quantile: float = 0.95,
) -> TopologyReport:
    r"""The topology of the residual actions $\Delta a = a - \pi_\text{base}(s)$ (Sec. 4.2, C.2.6),
    and the variant it calls for: SPAR-MLP for compact unimodal residuals, SPAR-PROJ otherwise.

    The paper chooses the variant per task from t-SNE plots of $\Delta a$ (Fig. 2) and names
    the statistics that make the choice automatic (Appendix C.2.6): covariance-spectrum
    concentration, nearest-neighbour tail distances, and density clustering that leaves the
    number of clusters open. This function computes them in residual space (plots are only
    for looking).

    **Statistics.** $\delta_\rho$ (eq. 3, [`spar_eqx.theory.residual_radius`][]) on every
    residual; the action diameter from 100,000 random pairs of dataset actions (Fig. 4); the
    covariance spectrum on every residual. The rest uses the distinct rows of a
    deterministic subsample of at most `max_points` residuals, standardised by one scalar
    (centred on the mean of all residuals, divided by their root-mean-square distance from
    it, which keeps the geometry and removes the scale): nearest-neighbour distances
    (`sklearn.neighbors.NearestNeighbors`), the same tail ratio for a Gaussian sample with
    the residuals' covariance (its reference value, which depends on the dimension and the
    sample size), the mean gap, and `sklearn.cluster.HDBSCAN` with
    `min_cluster_size = ceil(min_cluster_share * sample_size)`.

    **Decision rule.** `"proj"` when any of these holds, and the reason names each that does:

    1. *fragmented*: HDBSCAN splits the residuals into at least two density clusters (each
       holds at least `min_cluster_share` of the points when it forms);
    2. *mean off-support*: `mean_gap > max_mean_gap` (default 1), the mean residual is farther
       from every residual than 95% of residuals are from their nearest neighbour. SPAR-MLP's
       weighted MSE regresses to a conditional mean; when even the marginal mean falls
       outside the support (two modes, a ring), that mean is an off-support action;
    3. *sparse*: `tail_excess > max_tail_excess` (default 3), isolated residuals far from
       every other one, beyond what a Gaussian of the same covariance and sample size shows.
       The margin leaves heavy-tailed single modes to SPAR-MLP: in the tests, Student-t
       residuals (3 degrees of freedom, 6 dimensions) stay below 3 and Cauchy ones exceed it.

    Otherwise `"mlp"`: one dense cluster whose mean lies in the support, with a Gaussian-like
    tail. Ties go to `"proj"`, the paper's robust default (it represents unimodal residuals
    too, at a small cost on medium-replay tasks). The residual radius, the action diameter
    and the spectrum are reported but do not decide: the rule uses only ratios of distances
    within the standardised residuals, so it is unchanged when the residuals are rescaled.

    **Guarantees.** The same inputs and `seed` give the same report. Rescaling the residuals
    by a constant $c > 0$ rescales `delta_rho`, `radius_ratio` and `residual_rms` by $c$ and
    leaves every other statistic, and the recommendation, unchanged (up to floating-point
    rounding). Runs in seconds on two CPU cores for any `n`: only $\delta_\rho$, the
    covariance and the action diameter touch all rows.

    **Limits.** It sees the marginal distribution of $\Delta a$ over states, not
    $p(\Delta a \mid s)$, and with a few thousand points in 20+ dimensions two broad modes
    a few standard deviations apart can look like one.

    **Arguments:**

    - `residuals`: $\Delta a_i = a_i - \pi_\text{base}(s_i)$, one row per dataset transition;
      finite, at least 10 distinct rows.
    - `actions`: the dataset actions $a_i$ (for the action diameter); finite, the same shape.
    - `rho`: eq. (3)'s tail mass in (0, 1); the paper uses 0.05.
    - `seed`: the seed of every subsample and of the Gaussian reference.
    - `max_points`: the subsample size for the neighbour and cluster statistics ($\ge 20$).
    - `min_cluster_share`: the smallest share of points a density cluster may hold, in
      (0, 0.5].
    - `max_mean_gap`, `max_tail_excess`: the thresholds of rules 2 and 3, positive.
    - `diameter_quantile`: the quantile of pairwise action distances taken as the diameter,
      in (0, 1] (1: the largest sampled distance).

    **Returns:**

    A [`spar_eqx.diagnostics.TopologyReport`][]. Bad input (shapes, non-finite values, fewer
    than 10 distinct residuals, identical actions, parameters out of range) raises
    `ValueError`.
    """
    r = as_rows(residuals, "residuals", min_rows=10)
    a = as_rows(actions, "actions")
    if a.shape != r.shape:
        raise ValueError(
            f"`residuals` {r.shape} and `actions` {a.shape} must have the same shape: one "
            "residual a - pi_base(s) per dataset action."
        )
    if not (isinstance(max_points, int) and max_points >= 20):
        raise ValueError(f"`max_points` must be an integer >= 20, got {max_points!r}.")
    if not 0 < min_cluster_share <= 0.5:
        raise ValueError(f"`min_cluster_share` must lie in (0, 0.5], got {min_cluster_share}.")
    if not (max_mean_gap > 0 and max_tail_excess > 0):
        raise ValueError(
            f"`max_mean_gap` and `max_tail_excess` must be positive, got {max_mean_gap} and "
            f"{max_tail_excess}."
        )
    rho = _check_fraction("rho", rho)
    diameter_quantile = _check_fraction("diameter_quantile", diameter_quantile, closed=True)
    n, act_dim = r.shape

    # Eq. (3) and Fig. 4's scales, in action units.
    delta_rho = float(residual_radius(np.linalg.norm(r, axis=1), rho))
    diameter = float(
        np.quantile(random_pair_distances(a, seed=seed), diameter_quantile, method="higher")
    )
    if diameter == 0:
        raise ValueError(
            "every sampled pair of `actions` is identical, so the action diameter is 0; "
            "the dataset has a single action and no residual topology to diagnose."
        )

    # The covariance spectrum, on every residual.
    mean = r.mean(axis=0)
    eigenvalues = np.clip(np.linalg.eigvalsh(_covariance(r)), 0, None)
    total = float(eigenvalues.sum())

    # Standardise one distinct-row subsample by a single scalar.
    sample = r[subsample(n, max_points, np.random.SeedSequence([seed, 1]))]
    distinct = np.unique(sample, axis=0)
    if distinct.shape[0] < 10:
        raise ValueError(
            f"the residuals have only {distinct.shape[0]} distinct rows in a sample of "
            f"{sample.shape[0]}; at least 10 are needed to measure their topology (is the "
            "anchor reproducing every dataset action exactly?)."
        )
    rms = math.sqrt(total)  # = sqrt(mean ||r - mean||^2)
    z = (distinct - mean) / rms
    m = z.shape[0]

    index, nn = _nearest_other(z)
    nn_median, nn_q95, nn_q99 = (float(np.quantile(nn, q)) for q in (0.5, 0.95, 0.99))
    tail_ratio = _tail_ratio(nn)
    mean_gap = float(index.kneighbors(np.zeros((1, act_dim)), n_neighbors=1)[0][0, 0] / nn_q95)

    # The tail ratio of a Gaussian with the same covariance and sample size.
    values, vectors = np.linalg.eigh(_covariance(z))
    factor = vectors * np.sqrt(np.clip(values, 0, None))
    gaussian = np.random.default_rng(np.random.SeedSequence([seed, 2])).standard_normal(z.shape)
    gaussian_tail = _tail_ratio(_nearest_other(gaussian @ factor.T)[1])

    min_cluster_size = max(2, math.ceil(min_cluster_share * m))
    clusterer = HDBSCAN(
        min_cluster_size=min_cluster_size,
        min_samples=min(_MIN_SAMPLES, min_cluster_size),
        copy=True,
    )
    labels = clusterer.fit(z).labels_
    found = int(labels.max()) + 1
    if found >= 2:
        num_clusters = found
        noise = float(np.mean(labels < 0))
        largest = float(np.bincount(labels[labels >= 0]).max() / m)
    else:  # no split: the whole sample is one cluster
        num_clusters, noise, largest = 1, 0.0, 1.0

    recommendation, reason = _decide(
        num_clusters,
        largest,
        noise,
        mean_gap,
        tail_ratio,
        tail_ratio / gaussian_tail,
        min_cluster_share=min_cluster_share,
        max_mean_gap=max_mean_gap,
        max_tail_excess=max_tail_excess,
    )
    return TopologyReport(
        recommendation=recommendation,
        reason=reason,
        num_residuals=n,
        act_dim=act_dim,
        sample_size=m,
        seed=seed,
        rho=rho,
        delta_rho=delta_rho,
        action_diameter=diameter,
        radius_ratio=delta_rho / diameter,
        residual_rms=rms,
        top_eigenvalue_share=float(eigenvalues.max() / total),
        participation_ratio=float(total**2 / np.sum(eigenvalues**2)),
        duplicate_fraction=1.0 - m / sample.shape[0],
        nn_median=nn_median,
        nn_q95=nn_q95,
        nn_q99=nn_q99,
        nn_tail_ratio=tail_ratio,
        gaussian_tail_ratio=gaussian_tail,
        tail_excess=tail_ratio / gaussian_tail,
        mean_gap=mean_gap,
        num_clusters=num_clusters,
        noise_fraction=noise,
        largest_cluster_share=largest,
        min_cluster_size=min_cluster_size,
        min_cluster_share=float(min_cluster_share),
        max_mean_gap=float(max_mean_gap),
        max_tail_excess=float(max_tail_excess),
    )


def recommend_variant(
    residuals: Real[ArrayLike, "n act_dim"],
    actions: Real[ArrayLike, "n act_dim"],
    *,
    seed: int = 0,
) -> TopologyReport:
    r"""SPAR-MLP or SPAR-PROJ for a task, from its residuals (Sec. 4.2): the entry point for an
    automatic `--variant`.

    [`spar_eqx.diagnostics.residual_topology`][] with its default thresholds; pure and fast
    (the neighbour and cluster statistics use at most 4,000 residuals).

    **Arguments:**

    - `residuals`: $a_i - \pi_\text{base}(s_i)$ on dataset transitions.
    - `actions`: the dataset actions $a_i$.
    - `seed`: the subsampling seed.

    **Returns:**

    The `TopologyReport`; `report.recommendation` is `"mlp"` or `"proj"`, and `report.reason`
    says why.
    """
    return residual_topology(residuals, actions, seed=seed)
