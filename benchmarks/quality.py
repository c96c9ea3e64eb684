"""Score SPAR and the baselines on one dataset at one budget, all through `spar-eqx train`.

Each algorithm runs as its own `spar-eqx train` process (seeds vmapped inside it); the script
then writes a Markdown table of per-seed D4RL-normalised scores, mean and std over seeds, and
each run's wall time, and, with `--json PATH`, the same as JSON with the machine and versions.

Usage (from the repository root):

    python benchmarks/quality.py --dataset runs/heldout/hopper/medium-replay-v0 \\
        --out runs/quality --steps 30000 --seeds 2 --algos bc iql td3bc rebrac spar-mlp

`spar-mlp` / `spar-proj` run SPAR with that Stage II variant and `--steps` updates in each of
its two stages. Runs already finished in `--out` are read, not repeated (delete a folder to
redo it). Extra `spar-eqx train` flags for every run go after `--`.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _record import write_record


def _command(algo: str, args, out: Path, extra: list[str]) -> list[str]:
    cmd = ["spar-eqx", "train", "--dataset", args.dataset, "--out", str(out)]
    cmd += ["--seeds", str(args.seeds), "--eval-episodes", str(args.eval_episodes), "--quiet"]
    cmd += ["--log-every", str(args.log_every), "--checkpoint-every", str(args.log_every * 10)]
    if algo.startswith("spar"):
        variant = algo.split("-", 1)[1] if "-" in algo else "mlp"
        steps = str(args.steps)
        cmd += ["--algo", "spar", "--variant", variant, "--stage1-steps", steps]
        cmd += ["--stage2-steps", steps]
    else:
        cmd += ["--algo", algo, "--steps", str(args.steps)]
    return cmd + extra


def _row(algo: str, results: dict, minutes: float) -> list[tuple[str, list[float], float]]:
    rows = []
    for policy, scores in results["scores"].items():
        name = f"{results['label']}: {policy}" if algo.startswith("spar") else results["label"]
        rows.append((name, scores, minutes))
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=30_000, help="updates (per stage for SPAR)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--log-every", type=int, default=1000)
    parser.add_argument("--algos", nargs="+", default=["bc", "iql", "td3bc", "rebrac", "spar-mlp"])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    table, records = [], []
    for algo in args.algos:
        out = args.out / algo
        cmd = _command(algo, args, out, extra)
        if not (out / "results.json").exists():
            print("$", " ".join(cmd), flush=True)
            started = time.perf_counter()
            subprocess.run(cmd, check=True)
            minutes = (time.perf_counter() - started) / 60
            (out / "wall_minutes.txt").write_text(f"{minutes:.2f}\n")
            (out / "command.txt").write_text(" ".join(cmd) + "\n")
        minutes = float((out / "wall_minutes.txt").read_text())
        if (out / "command.txt").exists():  # the command that made it, not today's options
            cmd = (out / "command.txt").read_text().split()
        results = json.loads((out / "results.json").read_text())
        table += _row(algo, results, minutes)
        records.append({"algo": algo, "command": " ".join(cmd), "minutes": minutes,
                        "scores": results["scores"]})  # fmt: skip

    lines = [
        f"| algorithm: policy | score (mean ± std, {args.seeds} seeds) | per seed | wall time |",
        "| --- | --- | --- | --- |",
    ]
    for name, scores, minutes in table:
        s = np.asarray(scores)
        per_seed = ", ".join(f"{v:.1f}" for v in s)
        cells = f"{s.mean():.1f} ± {s.std():.1f} | {per_seed} | {minutes:.1f} min"
        lines.append(f"| {name} | {cells} |")
    text = "\n".join(lines)
    print(text)
    if args.json:
        write_record(args.json, "benchmarks/quality.py", records, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
