"""`SPARPolicy` latency on one state, and the process's peak memory (Table 11's protocol).

For each variant (SPAR-MLP, SPAR-PROJ; gate on) and each path, a fresh process builds the
deployed policy at the paper's sizes (10 critics, 256 units; the gate scores 10 candidates with
4 critics) on Hopper's shapes (11-d observations, 3-d actions), warms the path up, then times
`--calls` calls on one state each, waiting for each result. `--variants` also takes the flow
rows (`VARIANTS`): `mlp_flow_anchor` and `proj_flow_anchor`, SPAR on a flow anchor (every
`pi_base(s)` an integration of 10 Euler steps, once per call), `proj_flow`, SPAR-PROJ with the
flow residual generator (the gate's candidates are integrated noises), and `fql`, FQL's
deployed one-step policy (one MLP, no integration: the flow it distils is not called). The
paths:

- `compiled`: `deployed.act(observation, key)` with `deployed = policy.compile(observation)`,
  the control-loop path (partitioned and compiled once; the same actions as `act`, bit for bit);
- `act`: `policy.act(observation, key)`, jitted like `eqx.filter_jit` with the policy's PyTree
  partitioned on its first call and remembered (it compiles again for a new shape, where the
  compiled path refuses one).

The policy is built the way a deployment loads a checkpoint: its structure from the learners'
own `init` and `spar_policy` under `eqx.filter_eval_shape` (nothing of Stage I or II is run or
compiled), its arrays filled from NumPy (latency does not depend on the weights' values), the
observation normaliser the identity. The keys are drawn before timing, so a call times the path
alone, not an eager `keys[i]` (about 0.06 ms on a loaded 2-core CPU). Peak memory is the process's
maximum resident set size (`ru_maxrss`), importing JAX and spar_eqx included (`import_mb`).

`--compilation-cache DIR` turns on JAX's persistent compilation cache in `DIR`: from the second
run on, each process loads its executable instead of compiling it, as a controller restarted on
the same machine would (compiling costs about 50-90 MB of peak memory on a CPU, loading little).

Usage (from the repository root):

    python benchmarks/latency.py --json benchmarks/results/latency_cpu.json
    python benchmarks/latency.py --variants proj --paths compiled --calls 3000
    python benchmarks/latency.py --variants mlp mlp_flow_anchor proj_flow fql --paths compiled
    python benchmarks/latency.py --compilation-cache /tmp/spar-jax-cache  # twice: warm cache
"""

import argparse
import json
import resource
import subprocess
import sys
import time

from _record import write_record

OBS, ACT = 11, 3
PATHS = ("compiled", "act")
_FLOW_ANCHOR = {"anchor.base_policy": "flow"}
# variant -> (algorithm, hyperparameter overrides, the deployed policy's name in `policies`).
VARIANTS: dict[str, tuple[str, dict, str]] = {
    "mlp": ("spar", {"residual.variant": "mlp"}, "spar"),
    "proj": ("spar", {"residual.variant": "proj"}, "spar"),
    "mlp_flow_anchor": ("spar", {**_FLOW_ANCHOR, "residual.variant": "mlp"}, "spar"),
    "proj_flow_anchor": ("spar", {**_FLOW_ANCHOR, "residual.variant": "proj"}, "spar"),
    "proj_flow": ("spar", {"residual.variant": "proj", "residual.generator": "flow"}, "spar"),
    "fql": ("fql", {}, "fql"),
}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_policy(variant: str, obs_dim: int = OBS, act_dim: int = ACT):
    """The deployed policy of `variant` (`VARIANTS`: a `SPARPolicy`, or FQL's one-step policy),
    as from a checkpoint, for `obs_dim`-d observations and `act_dim`-d actions (Hopper's by
    default)."""
    import equinox as eqx
    import jax
    import jax.random as jr
    import numpy as np

    from spar_eqx import ALGORITHMS
    from spar_eqx._hyper import replace
    from spar_eqx.data import ObservationNormalizer

    name, overrides, deployed_name = VARIANTS[variant]
    algo = ALGORITHMS[name]
    learners = algo.build(replace(algo.config(), overrides), obs_dim, act_dim)

    def deployed(*keys):
        state = None
        for learner, key in zip(learners, keys, strict=True):
            state = learner.init(key, state)
        normalizer = ObservationNormalizer.identity(obs_dim)
        return learners[-1].policies(state, normalizer)[deployed_name]

    key = jr.wrap_key_data(np.zeros(2, np.uint32))
    skeleton = eqx.filter_eval_shape(deployed, *[key] * len(learners))
    rng = np.random.default_rng(0)

    def fill(x):  # uniform in +-1/sqrt(fan-in), the scale of Equinox's default initialisation
        if not isinstance(x, jax.ShapeDtypeStruct):
            return x
        bound = 1.0 / np.sqrt(x.shape[-1]) if x.shape else 1.0
        return jax.device_put(rng.uniform(-bound, bound, x.shape).astype(x.dtype))

    policy = jax.tree_util.tree_map(fill, skeleton)
    zeros, ones = np.zeros(obs_dim, np.float32), np.ones(obs_dim, np.float32)
    identity = ObservationNormalizer(jax.device_put(zeros), jax.device_put(ones))
    return eqx.tree_at(lambda p: p.normalizer, policy, identity)


def measure(variant: str, path: str, calls: int, warmup: int, cache: str | None = None) -> dict:
    import jax
    import jax.random as jr
    import numpy as np

    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

    import spar_eqx  # noqa: F401  (what importing the library costs, before anything runs)

    import_mb = _peak_mb()
    policy = build_policy(variant)
    observation = jax.device_put(np.ones(OBS, np.float32))
    key_data = np.random.default_rng(1).integers(0, 2**32, (warmup + calls, 2), dtype=np.uint32)
    keys = [jr.wrap_key_data(k) for k in key_data]
    if path == "compiled":
        act = policy.compile(observation).act
    else:
        act = policy.act
    for key in keys[:warmup]:
        jax.block_until_ready(act(observation, key))
    times = np.empty(calls)
    for i, key in enumerate(keys[warmup:]):
        started = time.perf_counter()
        jax.block_until_ready(act(observation, key))
        times[i] = time.perf_counter() - started
    return {
        "variant": variant,
        "path": path,
        "median_ms": float(np.median(times) * 1e3),
        "p99_ms": float(np.percentile(times, 99) * 1e3),
        "peak_mb": float(_peak_mb()),
        "import_mb": float(import_mb),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["mlp", "proj"], choices=VARIANTS)
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--json", help="also write the rows, machine and versions here")
    parser.add_argument("--compilation-cache", metavar="DIR", help="JAX's persistent cache")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: VARIANT PATH here
    args = parser.parse_args(argv)
    if args.one:
        row = measure(*args.one, args.calls, args.warmup, args.compilation_cache)
        print(json.dumps(row))
        return 0
    rows = []
    print(
        f"{'variant':<18}{'path':<10}{'median ms':>11}{'p99 ms':>9}{'peak MB':>9}{'import MB':>11}"
    )
    for variant in args.variants:
        for path in args.paths:
            cmd = [sys.executable, __file__, "--one", variant, path, "--calls", str(args.calls)]
            cmd += ["--warmup", str(args.warmup)]
            if args.compilation_cache:
                cmd += ["--compilation-cache", args.compilation_cache]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{variant:<18}{path:<10}{row['median_ms']:>11.3f}{row['p99_ms']:>9.3f}"
                f"{row['peak_mb']:>9.0f}{row['import_mb']:>11.0f}"
            )
    if args.json:
        write_record(args.json, "benchmarks/latency.py", rows, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
