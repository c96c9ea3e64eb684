"""How much memory a run's arrays take, and how much the devices that hold them have."""

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
