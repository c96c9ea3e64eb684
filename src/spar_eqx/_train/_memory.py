"""How much memory a run's arrays take, how much the devices that hold them have, and whether
the one fits in the other."""

import os
from pathlib import Path

import jax
import numpy as np


def tree_bytes(tree) -> int:
    """Bytes of every array leaf of `tree` (arrays or `jax.ShapeDtypeStruct`s alike).

    A typed PRNG key counts as its key data (two `uint32` per threefry key).
    """
    total = 0
    for leaf in jax.tree_util.tree_leaves(tree):
        if not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")):
            continue
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            itemsize = 8
        else:
            itemsize = np.dtype(leaf.dtype).itemsize
        total += int(np.prod(leaf.shape, dtype=np.int64)) * itemsize
    return total


def available_bytes(devices) -> int | None:
    """Memory the `devices` can give a run: the sum of each accelerator's allocator limit,
    or on the CPU the host's available memory (`MemAvailable`); None when unknown."""
    if all(d.platform == "cpu" for d in devices):
        return _host_available()
    total = 0
    for device in devices:
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        if not stats or "bytes_limit" not in stats:
            return None
        total += int(stats["bytes_limit"])
    return total


def _host_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def memory_shortfall(
    state_bytes: list[int], runs: list[int], data_bytes: int, available: int, *, seeds: int,
    grid_points: int,
) -> str | None:  # fmt: skip
    """Why a run cannot fit, or None when it may.

    A chunk holds its input states and its output states at once (the inputs are not
    donated), beside the dataset, so `2 x states + data` of the largest stage is a lower bound
    of the run's peak; above `available`, the run would die out of memory.

    **Arguments:** `state_bytes`, each built stage's states (`tree_bytes`) and `runs`, its
    number of runs; `data_bytes`, the dataset's; `available`, `available_bytes`'s answer;
    `seeds`, `grid_points`, the options behind the run count (for the message).

    **Returns:** None, or a message naming the sizes and how many runs would fit.
    """
    stage = int(np.argmax(state_bytes))
    need = 2 * state_bytes[stage] + data_bytes
    if need <= available:
        return None
    per_run = state_bytes[stage] / runs[stage]
    fits = max(0, int((available - data_bytes) // (2 * per_run)))
    points = f" x {grid_points} grid points" if grid_points > 1 else ""
    where = "this machine" if jax.default_backend() == "cpu" else "the local devices"
    return (
        f"--seeds {seeds}{points} needs at least {need / 1e9:.1f} GB ({runs[stage]} runs of "
        f"{per_run / 1e6:.1f} MB in stage {stage + 1}, held twice while a chunk runs, and "
        f"{data_bytes / 1e9:.2f} GB of data), but {where} has {available / 1e9:.1f} GB "
        f"available; at most about {fits} runs fit. Use fewer seeds or grid points, smaller "
        "networks, or split the seeds over several machines (--num-processes)."
    )
