"""The paper's analytical results as small, checked functions.

- Proposition 3.3(i):
  [`convex_combination_minimizer`][spar_eqx.theory.convex_combination_minimizer].
- Proposition 3.3(ii): [`chord_deviation_bound`][spar_eqx.theory.chord_deviation_bound] (a true
  bound) and [`paper_chord_bound`][spar_eqx.theory.paper_chord_bound] (the paper's leading-order
  term).
- Theorem 3.1, eq. (21)-(23): covering numbers and the efficiency ratio.
- Eq. (3): the residual radius.
- Lemma 3.2: the localisation bound.

See `docs/theory.md` for what holds, what was checked, and where the paper's constants fail.
"""

from ._chord import (
    chord_deviation_bound as chord_deviation_bound,
    chord_point_deviation_bound as chord_point_deviation_bound,
    paper_chord_bound as paper_chord_bound,
)
from ._convex import (
    convex_combination_minimizer as convex_combination_minimizer,
    weighted_squared_loss as weighted_squared_loss,
)
from ._covering import (
    covering_number_bound as covering_number_bound,
    efficiency_ratio as efficiency_ratio,
    greedy_cover as greedy_cover,
    log_covering_number_bound as log_covering_number_bound,
    log_efficiency_ratio as log_efficiency_ratio,
)
from ._localisation import (
    localisation_bound as localisation_bound,
    localisation_gap as localisation_gap,
    radial_projection as radial_projection,
)
from ._radius import (
    residual_radius as residual_radius,
    residual_radius_from as residual_radius_from,
)
