"""`SPARPolicy.act` latency on one state, and the process's peak memory (Table 11's protocol).

For each variant (SPAR-MLP, SPAR-PROJ; gate on), a fresh process builds the deployed policy at
the paper's sizes (10 critics, 256 units; the gate scores 10 candidates with 4 critics) on
Hopper's shapes (11-d observations, 3-d actions), warms `act` up, then times `--calls` calls of
`act(observation, key)` on one state each, waiting for each result. Latency does not depend on
the weights' values, so the networks are freshly initialised. Peak memory is the process's
maximum resident set size (`ru_maxrss`), which includes importing JAX and spar_eqx.

Usage (from the repository root):

    python benchmarks/latency.py --json benchmarks/results/latency_cpu.json
"""

import argparse
import json
import resource
import subprocess
import sys
import time

from _record import write_record

OBS, ACT = 11, 3


def measure(variant: str, calls: int, warmup: int) -> dict:
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    from spar_eqx import ALGORITHMS
    from spar_eqx._hyper import replace
    from spar_eqx.data import ObservationNormalizer

    algo = ALGORITHMS["spar"]
    config = replace(algo.config(), {"residual.variant": variant})
    anchor, rectifier = algo.build(config, OBS, ACT)
    key_a, key_r = jr.split(jr.key(0))
    stage1 = anchor.init(key_a)
    stage2 = rectifier.init(key_r, stage1)
    identity = ObservationNormalizer(jnp.zeros(OBS, jnp.float32), jnp.ones(OBS, jnp.float32))
    policy = rectifier.spar_policy(stage2, identity)
    observation = jnp.ones((OBS,), jnp.float32)
    keys = jr.split(jr.key(1), warmup + calls)
    for i in range(warmup):
        jax.block_until_ready(policy.act(observation, keys[i]))
    times = np.empty(calls)
    for i in range(calls):
        started = time.perf_counter()
        jax.block_until_ready(policy.act(observation, keys[warmup + i]))
        times[i] = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "variant": variant,
        "median_ms": float(np.median(times) * 1e3),
        "p99_ms": float(np.percentile(times, 99) * 1e3),
        "peak_mb": float(peak_mb),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["mlp", "proj"])
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--json", help="also write the rows, machine and versions here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure in this process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.calls, args.warmup)))
        return 0
    rows = []
    print(f"{'variant':<8}{'median ms':>11}{'p99 ms':>9}{'peak MB':>9}")
    for variant in args.variants:
        cmd = [sys.executable, __file__, "--one", variant, "--calls", str(args.calls)]
        cmd += ["--warmup", str(args.warmup)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        rows.append(row)
        print(f"{variant:<8}{row['median_ms']:>11.3f}{row['p99_ms']:>9.3f}{row['peak_mb']:>9.0f}")
    if args.json:
        write_record(args.json, "benchmarks/latency.py", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
