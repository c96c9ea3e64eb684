"""Input checks and deterministic subsampling shared by the diagnostics."""

import numpy as np
from jaxtyping import ArrayLike, Float, Real


def as_rows(x: ArrayLike, name: str, *, min_rows: int = 1) -> np.ndarray:
    """`x` as a finite float64 `(n, d)` NumPy array, or a `ValueError` naming `name`."""
    array = np.asarray(x)
    if array.ndim != 2 or array.shape[1] < 1:
        raise ValueError(f"`{name}` must be a 2-d array (rows, act_dim), got shape {array.shape}.")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"`{name}` must hold real numbers, got dtype {array.dtype}.")
    array = array.astype(np.float64)
    if array.shape[0] < min_rows:
        raise ValueError(f"`{name}` needs at least {min_rows} rows, got {array.shape[0]}.")
    bad = ~np.isfinite(array)
    if bad.any():
        row = int(np.argwhere(bad)[0, 0])
        raise ValueError(f"`{name}` must be finite; row {row} is {array[row]}.")
    return array


def subsample(n: int, size: int, seed: np.random.SeedSequence) -> np.ndarray:
    """Sorted row indices: all `n` rows when `n <= size`, else `size` drawn without replacement.

    The same `seed` (a `SeedSequence`) and `n` give the same indices.
    """
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def random_pair_distances(
    actions: Real[ArrayLike, "n act_dim"], *, num_pairs: int = 100_000, seed: int = 0
) -> Float[np.ndarray, " num_pairs"]:
    r"""Distances $\|a_i - a_j\|_2$ between random pairs of distinct dataset actions (Fig. 4).

    The global action-space distances that Fig. 4 draws in black against the residual sizes.
    Pairs `(i, j)` are drawn uniformly with `i != j` from a generator seeded by `seed`, so the
    same actions and seed give the same distances.

    **Arguments:**

    - `actions`: dataset actions, `(n, act_dim)` with $n \ge 2$, finite.
    - `num_pairs`: how many pairs, at least 1.
    - `seed`: the seed of the pair draw.

    **Returns:**

    A float64 array of `num_pairs` distances.
    """
    a = as_rows(actions, "actions", min_rows=2)
    if num_pairs < 1:
        raise ValueError(f"`num_pairs` must be at least 1, got {num_pairs}.")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4]))
    n = a.shape[0]
    i = rng.integers(0, n, num_pairs)
    j = (i + rng.integers(1, n, num_pairs)) % n  # uniform over the other n - 1 rows
    return np.linalg.norm(a[i] - a[j], axis=1)
