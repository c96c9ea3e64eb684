"""Pool the Stage I / reference ratios of several `throughput.py --json` files.

One run's rounds on a shared machine spread by about ±10%, so one run's median moves by a
few points from run to run. This pools the per-round ratios of every file given (each round
is two chunks run back to back, so pooling rounds from different runs keeps them paired) and
prints, per reference and seed count, the pooled median with a 95% percentile-bootstrap
interval, and each file's own median beside it.

Usage (from the repository root):

    python benchmarks/ratios.py benchmarks/results/throughput_stage1_cpu.json \
        benchmarks/results/throughput_stage1_const_cpu.json

With `--json PATH`, writes rows `{"name": "stage1/reference", "seeds", "rounds", "median",
"low", "high", "files": [...]}`.
"""

import argparse
import json
import sys
from collections import defaultdict

from _record import write_record
from _stats import median_interval


def pooled(paths: list[str]) -> list[dict]:
    """One row per (ratio name, seed count) found in the files, in first-seen order."""
    rounds: dict[tuple[str, int], list[float]] = defaultdict(list)
    medians: dict[tuple[str, int], list[float]] = defaultdict(list)
    for path in paths:
        with open(path) as f:
            record = json.load(f)
        for row in record["results"]:
            if "round_ratios" in row:
                key = (row["name"], row["seeds"])
                rounds[key] += row["round_ratios"]
                medians[key].append(row["ratio"])
    rows = []
    for (name, seeds), ratios in rounds.items():
        median, low, high = median_interval(ratios)
        rows.append({"name": name, "seeds": seeds, "rounds": len(ratios), "median": median,
                     "low": low, "high": high, "files": medians[(name, seeds)]})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="throughput.py --json files")
    parser.add_argument("--json", help="also write the pooled rows here")
    args = parser.parse_args(argv)
    rows = pooled(args.files)
    if not rows:
        print("no Stage I / reference ratios in these files", file=sys.stderr)
        return 1
    print(f"{'ratio':<24}{'seeds':>6}{'rounds':>8}{'median':>8}{'95% interval':>15}  per file")
    for r in rows:
        per_file = ", ".join(f"{m:.2f}" for m in r["files"])
        print(
            f"{r['name']:<24}{r['seeds']:>6}{r['rounds']:>8}{r['median']:>8.3f}"
            f"{r['low']:>8.3f}-{r['high']:.3f}  {per_file}"
        )
    if args.json:
        write_record(args.json, "benchmarks/ratios.py", rows, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
