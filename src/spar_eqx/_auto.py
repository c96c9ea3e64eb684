"""`--variant auto`: diagnose the anchors Stage I has just trained, choose Stage II's variant.

The paper picks SPAR-MLP or SPAR-PROJ per task by looking at plots of the residual actions
`a - pi_base(s)` (Sec. 4.2); `spar_eqx.diagnostics.recommend_variant` makes that choice from
their statistics. Every run (seed, grid point, process) diagnoses its own anchor, and the
majority decides, because the runs are trained together and must share one variant (ties go
to SPAR-MLP, the paper's default for locomotion).
"""

from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float

from .data._transitions import spread_rows

# Dataset rows the anchors are diagnosed on (an even spread over the dataset).
_ROWS = 20_000


def anchor_residuals(
    policies, observations: Float[Array, "m obs_dim"], actions: Float[np.ndarray, "m act_dim"]
) -> Float[np.ndarray, "runs m act_dim"]:
    """Each run's residuals `a - pi_base(s)` on the given rows.

    **Arguments:** `policies`, the anchors stacked over runs; `observations`, normalised
    dataset observations; `actions`, the dataset's actions on the same rows.

    **Returns:** float64 residuals, one `(m, act_dim)` block per run.
    """
    base = eqx.filter_vmap(lambda p: jax.vmap(p)(observations))(policies)
    return np.asarray(actions, np.float64)[None] - np.asarray(base, np.float64)


def choose_variant(
    policies, observations: Float[Array, "n obs_dim"], actions: Float[Array, "n act_dim"], gather
) -> dict[str, Any]:
    """The variant the runs' anchors call for, with each run's report.

    **Arguments:** `policies`, the anchors stacked over runs; `observations`, `actions`, the
    normalised dataset (diagnosed on an even spread of at most 20,000 rows); `gather`, which
    concatenates per-run values over processes (the identity in one process).

    **Returns:** `{"variant", "reason", "votes": {"mlp": n, "proj": m}, "runs": [...]}`,
    where each of this process's runs has its `TopologyReport.to_dict()`. Every process
    reaches the same `variant`.
    """
    # Imported here: scikit-learn costs ~90 MB, which `import spar_eqx` should not pay.
    from .diagnostics import recommend_variant

    rows = spread_rows(observations.shape[0], _ROWS)
    act = np.asarray(actions, np.float64)[rows]
    residuals = anchor_residuals(policies, observations[rows], act)
    reports = [recommend_variant(r, act, seed=0) for r in residuals]
    votes = gather(np.asarray([r.recommendation == "proj" for r in reports], np.float64))
    proj, total = int(np.sum(votes)), len(votes)
    variant = "proj" if proj > total - proj else "mlp"
    if 2 * proj == total:
        reason = f"a tie ({proj} of {total} runs each) goes to mlp, the paper's default"
    else:
        # This process's first run that voted with the majority gives the reason (another
        # process may hold all of them: then the count alone).
        agreeing = [r.reason for r in reports if r.recommendation == variant]
        reason = agreeing[0] if agreeing else "the other processes' runs"
        if total > 1:
            reason = f"{max(proj, total - proj)} of {total} runs: {reason}"
    return {
        "variant": variant,
        "reason": reason,
        "votes": {"mlp": total - proj, "proj": proj},
        "runs": [report.to_dict() for report in reports],
    }
