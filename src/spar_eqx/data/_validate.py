"""Checks shared by the loaders; each raises `DatasetError` naming the source and the problem."""

from collections.abc import Callable

import numpy as np

from ._errors import DatasetError

ACTION_TOLERANCE = 1e-6

Locate = Callable[[int], str]


def row_locator(row: int) -> str:
    return f"row {row}"


def check_lengths(source: str, lengths: dict[str, int]) -> None:
    """All arrays must have the same number of rows."""
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} has {length}" for name, length in lengths.items())
        raise DatasetError(f"{source}: arrays have mismatched lengths: {listed} rows.")


def as_float32(source: str, name: str, array: np.ndarray, locate: Locate) -> np.ndarray:
    """`array` as float32, refusing non-numeric data and NaN or infinite values."""
    if array.dtype.kind not in "biuf":
        raise DatasetError(
            f"{source}: {name} must hold numbers, got dtype {array.dtype} (shape {array.shape})."
        )
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            _raise_first_bad(source, name, array, bad, locate, "a non-finite value")
    with np.errstate(over="ignore"):
        out = array.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        _raise_first_bad(source, name, array, bad, locate, "a value too large for float32,")
    return out


def _raise_first_bad(source, name, array, bad, locate, problem):
    per_row = bad.reshape(len(bad), -1)
    row = int(np.argmax(per_row.any(axis=1)))
    where = locate(row)
    value = array[row]
    if array.ndim > 1:
        column = int(np.argmax(per_row[row]))
        where += f", dimension {column}"
        value = array.reshape(len(array), -1)[row, column]
    raise DatasetError(
        f"{source}: {name} has {problem} {value}, at {where} "
        f"(the first of {int(bad.sum())} bad value(s)); the data must be finite."
    )


def as_flags(source: str, name: str, array: np.ndarray, locate: Locate) -> np.ndarray:
    """`array` as bool, accepting bool or numbers that are exactly 0 or 1."""
    if array.dtype == np.bool_:
        return array
    if array.dtype.kind not in "iuf":
        raise DatasetError(f"{source}: {name} must be boolean (or 0/1), got dtype {array.dtype}.")
    bad = (array != 0) & (array != 1)
    if bad.any():
        row = int(np.argmax(bad))
        raise DatasetError(
            f"{source}: {name} must be boolean (or 0/1), got {array[row]} at {locate(row)}."
        )
    return array != 0


def check_action_bounds(
    source: str,
    actions: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    locate: Locate,
) -> None:
    """Every action within `[low, high]`, to `ACTION_TOLERANCE`; actions on a bound are legal."""
    if actions.size == 0:
        return
    above = actions - high
    below = low - actions
    excess = np.maximum(above, below)
    if not excess.max() > ACTION_TOLERANCE:
        return
    row, column = np.unravel_index(int(np.argmax(excess)), excess.shape)
    row, column = int(row), int(column)
    value = actions[row, column]
    if above[row, column] >= below[row, column]:
        bound = f"upper bound high[{column}] = {high[column]:.6g}"
        side = "above"
    else:
        bound = f"lower bound low[{column}] = {low[column]:.6g}"
        side = "below"
    count = int((excess > ACTION_TOLERANCE).sum())
    raise DatasetError(
        f"{source}: actions leave the action space: the worst value, {value:.6g} at "
        f"{locate(row)}, dimension {column}, is {side} the {bound} "
        f"({count} value(s) out of range; tolerance {ACTION_TOLERANCE:g}; values on the "
        "bound, such as +-1, are legal). Rescale the actions into the action space, or record "
        "the space they were taken in (a Minari dataset's action space, a D4RL file's "
        "action_low and action_high attributes)."
    )


def action_bounds_from(
    source: str, action_bounds, act_dim: int, default: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """`(low, high)` as float32 `(act_dim,)` arrays: explicit bounds if given, else `default`."""
    if action_bounds is None:
        low, high = default
    else:
        low, high = action_bounds
    try:
        low = np.broadcast_to(np.asarray(low, dtype=np.float32), (act_dim,)).copy()
        high = np.broadcast_to(np.asarray(high, dtype=np.float32), (act_dim,)).copy()
    except ValueError as error:
        raise DatasetError(
            f"{source}: action bounds must be scalars or ({act_dim},) arrays: {error}"
        ) from None
    if np.any(np.isnan(low)) or np.any(np.isnan(high)) or np.any(low > high):
        raise DatasetError(
            f"{source}: invalid action bounds low={low}, high={high}; need low <= high."
        )
    return low, high
