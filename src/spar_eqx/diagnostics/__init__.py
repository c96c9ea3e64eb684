r"""Residual-topology diagnostics: which SPAR variant a task calls for, and support checks.

- [`residual_topology`][spar_eqx.diagnostics.residual_topology] and
  [`recommend_variant`][spar_eqx.diagnostics.recommend_variant]: statistics of the residual
  actions $a - \pi_\text{base}(s)$ and the SPAR-MLP / SPAR-PROJ recommendation (Sec. 4.2,
  Fig. 2, Appendix C.2.6), as a [`TopologyReport`][spar_eqx.diagnostics.TopologyReport].
- [`support_distance_ratio`][spar_eqx.diagnostics.support_distance_ratio]: the q95 kNN
  support-distance ratio of Fig. 3.
- [`plot_residual_sizes`][spar_eqx.diagnostics.plot_residual_sizes] (Fig. 4) and
  [`plot_residual_projection`][spar_eqx.diagnostics.plot_residual_projection] (Fig. 2):
  PNG figures; [`random_pair_distances`][spar_eqx.diagnostics.random_pair_distances] gives
  Fig. 4's global distances.

Everything here is NumPy and scikit-learn on host arrays. `spar-eqx diagnose` runs it on a
dataset and a trained (or freshly fitted) anchor; see `docs/diagnostics.md`.
"""

from ._figures import (
    plot_residual_projection as plot_residual_projection,
    plot_residual_sizes as plot_residual_sizes,
)
from ._report import TopologyReport as TopologyReport
from ._sample import random_pair_distances as random_pair_distances
from ._support import support_distance_ratio as support_distance_ratio
from ._topology import (
    recommend_variant as recommend_variant,
    residual_topology as residual_topology,
)
