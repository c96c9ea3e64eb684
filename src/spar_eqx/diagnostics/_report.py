"""The report of the residual topology diagnostic (Sec. 4.2, Appendix C.2.6)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class TopologyReport:
    r"""The statistics of [`spar_eqx.diagnostics.residual_topology`][] and its recommendation.

    Distances marked *standardised* are in units of `residual_rms`, the root-mean-square
    distance of the residuals from their mean, so they do not change when the residuals are
    rescaled.

    **Fields:**

    - `recommendation`: `"mlp"` (SPAR-MLP) or `"proj"` (SPAR-PROJ); `reason`: one line naming
      the statistic(s) that decided.
    - `num_residuals`, `act_dim`: the input's shape; `sample_size`: the distinct residuals of
      the subsample the neighbour and cluster statistics use; `seed`: the subsampling seed.
    - `rho`, `delta_rho`: eq. (3)'s tail mass and residual radius (action units).
    - `action_diameter`: the `diameter_quantile`-quantile of distances between random pairs of
      dataset actions (Fig. 4's effective global distance; action units);
      `radius_ratio = delta_rho / action_diameter`.
    - `residual_rms`: the unit of the standardised distances (action units).
    - `top_eigenvalue_share`: the largest eigenvalue of the residual covariance over the sum
      (1: residuals on a line; `1/act_dim`: isotropic); `participation_ratio`:
      $(\sum\lambda)^2 / \sum\lambda^2$, the effective number of directions, in
      `[1, act_dim]`.
    - `duplicate_fraction`: the share of subsampled residuals that repeat another exactly.
    - `nn_median`, `nn_q95`, `nn_q99`: quantiles of each residual's standardised distance to its
      nearest other residual; `nn_tail_ratio = nn_q99 / nn_median`; `gaussian_tail_ratio`: the
      same ratio for as many draws from a Gaussian with the residuals' covariance;
      `tail_excess = nn_tail_ratio / gaussian_tail_ratio`.
    - `mean_gap`: the standardised distance from the mean residual to the nearest residual,
      over `nn_q95`: above 1, the mean lies outside the residuals' q95 support boundary.
    - `num_clusters`: HDBSCAN's density clusters (1 when it finds no split);
      `noise_fraction`: the share of points it leaves out of every cluster (0 with no split);
      `largest_cluster_share`: the largest cluster's share of all points (1 with no split);
      `min_cluster_size`: the smallest cluster HDBSCAN may form.
    - `min_cluster_share`, `max_mean_gap`, `max_tail_excess`: the thresholds of the rule.
    """

    recommendation: str
    reason: str
    num_residuals: int
    act_dim: int
    sample_size: int
    seed: int
    rho: float
    delta_rho: float
    action_diameter: float
    radius_ratio: float
    residual_rms: float
    top_eigenvalue_share: float
    participation_ratio: float
    duplicate_fraction: float
    nn_median: float
    nn_q95: float
    nn_q99: float
    nn_tail_ratio: float
    gaussian_tail_ratio: float
    tail_excess: float
    mean_gap: float
    num_clusters: int
    noise_fraction: float
    largest_cluster_share: float
    min_cluster_size: int
    min_cluster_share: float
    max_mean_gap: float
    max_tail_excess: float

    def to_dict(self) -> dict[str, str | int | float]:
        """Every field as a plain Python `str`, `int` or `float` (ready for `json.dumps`).

        **Returns:** a dict with one key per field, `"recommendation"` and `"reason"` first.
        """
        out: dict[str, str | int | float] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = value if isinstance(value, str) else field.type(value)
        return out

    def summary(self) -> str:
        """The report as a few human-readable lines, the recommendation last."""
        return "\n".join(
            [
                f"residuals: {self.num_residuals} x {self.act_dim}; neighbour and cluster "
                f"statistics on {self.sample_size} distinct residuals (seed {self.seed})",
                f"residual radius delta_{self.rho:g} (eq. 3): {self.delta_rho:.4g}; action "
                f"diameter (q95 pairwise): {self.action_diameter:.4g}; ratio "
                f"{self.radius_ratio:.3f}",
                f"covariance spectrum: top eigenvalue share {self.top_eigenvalue_share:.2f}, "
                f"participation ratio {self.participation_ratio:.2f} of {self.act_dim}",
                f"nearest neighbours (units of the residual rms {self.residual_rms:.4g}): "
                f"median {self.nn_median:.3g}, q95 {self.nn_q95:.3g}, q99 {self.nn_q99:.3g}; "
                f"tail ratio {self.nn_tail_ratio:.2f} = {self.tail_excess:.2f} x a Gaussian's "
                f"({self.gaussian_tail_ratio:.2f})",
                f"mean gap: {self.mean_gap:.2f} (mean residual to nearest residual, over q95)",
                f"density clusters (HDBSCAN, min size {self.min_cluster_size}): "
                f"{self.num_clusters}, largest {self.largest_cluster_share:.0%}, noise "
                f"{self.noise_fraction:.0%}",
                f"recommendation: {self.recommendation} — {self.reason}",
            ]
        )
