"""The one statistic the speed benchmarks report about a ratio of two programs' speeds."""

import numpy as np


def median_interval(
    ratios: list[float], level: float = 0.95, resamples: int = 10_000
) -> tuple[float, float, float]:
    """The median of per-round ratios and a percentile-bootstrap interval around it.

    Rounds are the unit: each resample draws as many rounds as were run, with replacement,
    and takes their median. The resampling key is fixed, so the same ratios always give the
    same interval.

    **Arguments:** `ratios`, one ratio per timed round (at least one); `level`, the interval's
    coverage; `resamples`, how many bootstrap medians.

    **Returns:** `(median, low, high)`.
    """
    values = np.asarray(ratios, dtype=float)
    if values.size == 0:
        raise ValueError("median_interval needs at least one ratio")
    rng = np.random.default_rng(0)
    draws = rng.choice(values, size=(resamples, values.size), replace=True)
    medians = np.median(draws, axis=1)
    tail = (1.0 - level) / 2
    low, high = np.quantile(medians, [tail, 1.0 - tail])
    return float(np.median(values)), float(low), float(high)
