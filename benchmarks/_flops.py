"""How fast this machine multiplies matrices, and how many FLOPs a compiled program does: the
yardsticks `throughput.py` and `peers.py` hold an update's speed against."""

import functools
import re
import time

import jax
import jax.numpy as jnp
import jax.random as jr

MATMUL_SIZES = (256, 1024)


@functools.cache
def _matmul_loop(n: int):
    w, _ = jnp.linalg.qr(jr.normal(jr.key(1), (n, n)))  # orthogonal: norms stay put
    steps = max(8, int(2e9 / (2 * n**3)))  # about 2 GFLOP per call or more

    @jax.jit
    def loop(x):
        return jax.lax.fori_loop(0, steps, lambda _, x: x @ w, x)

    x = loop(jr.normal(jr.key(2), (n, n))).block_until_ready()  # compiles
    return loop, x, steps


def matmul_gflops(n: int, seconds: float) -> float:
    """Sustained float32 GFLOP/s of dependent `(n, n) @ (n, n)` products under `jax.jit`."""
    loop, x, steps = _matmul_loop(n)
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        x = loop(x).block_until_ready()
        calls += 1
    return calls * steps * 2 * n**3 / elapsed / 1e9


def program_gflop(compiled) -> float | None:
    """XLA's FLOP count of one pass through a compiled program, in GFLOP; None where it has a
    `lax.cond` (XLA counts both branches, so a periodic step would be counted on every pass).

    A `lax.scan`'s body is counted once, so for a chunk of updates this is one update's FLOPs
    (every run of the vmapped run axis included).

    **Arguments:** `compiled`, a `jax.stages.Compiled`.
    """
    if re.search(r"\bconditional\(", compiled.as_text()):
        return None
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis["flops"]) / 1e9


def op_census(compiled) -> dict[str, int]:
    """How many of each heavy HLO instruction the optimised program holds (every computation):
    `dot`, `fusion`, `copy`, `transpose`, `gather`, `reduce`. Two programs doing the same maths
    differ here when one moves data around more (copies, transposes) or fuses less."""
    text = compiled.as_text()
    kinds = ("dot", "fusion", "copy", "transpose", "gather", "reduce")
    return {k: len(re.findall(rf"\s{k}\(", text)) for k in kinds}
