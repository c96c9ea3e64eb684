"""The paper's Tables 12 and 13 (Appendix C.2.4: is it the generator?) at the quick budget.

Every cell is a policy of one `spar-eqx train --budget quick` run (5 seeds x 10 episodes, 20,000
updates per stage) on one dataset; all runs play the same evaluation episodes (environment seed
`10_000 + 10 s + e`), so any two cells are paired by seed and episode. Six runs cover the seven
cells (two cells are the `base` and `spar` policies of one run):

- `mlp`, `--variant mlp` (the README's main job): Table 12's *MLP base* (`base`) and *SPAR*
  (`spar`);
- `proj`, `--variant proj`: SPAR-PROJ with its CVAE (`spar`), beside the flow generator;
- `det-proj-flow`, `--variant proj --generator flow`: Table 12's *MLP base + flow* (`spar`);
- `flow-proj`, `--base-policy flow --variant proj`: the *flow base* (`base`) and Table 13's
  SPAR-PROJ on it (`spar`);
- `flow-proj-flow`, `--base-policy flow --variant proj --generator flow`: *flow base + flow*
  (`spar`);
- `flow-mlp`, `--base-policy flow --variant mlp`: Table 13's SPAR-MLP on a flow base (`spar`).

The script prints each cell's score (mean over seeds and episodes with its 95% bootstrap
interval, and the per-seed means), then the paired differences that answer the appendix's
questions (does a flow residual or a flow anchor explain SPAR's gain? does SPAR still add to a
flow anchor?), each with its interval and whether it excludes 0.

Usage (from the repository root; runs already finished in `--out` are read, not repeated, so
`--out runs/flow` with `mlp` and `proj` linked to `benchmarks/main_job.py`'s runs reuses them):

    python benchmarks/flow_tables.py --out runs/flow --json benchmarks/results/flow_tables_cpu.json

Extra `spar-eqx train` flags for every run go after `--` (`-- --dataset PATH`).
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _record import spar_eqx, split_extra, write_record

from spar_eqx import Interval, mean_interval, paired_difference

RUNS: dict[str, list[str]] = {
    "mlp": ["--variant", "mlp"],
    "proj": ["--variant", "proj"],
    "det-proj-flow": ["--variant", "proj", "--generator", "flow"],
    "flow-proj": ["--base-policy", "flow", "--variant", "proj"],
    "flow-proj-flow": ["--base-policy", "flow", "--variant", "proj", "--generator", "flow"],
    "flow-mlp": ["--base-policy", "flow", "--variant", "mlp"],
}

# (table, cell, run, policy)
CELLS = [
    ("12", "MLP base", "mlp", "base"),
    ("12", "MLP base + flow", "det-proj-flow", "spar"),
    ("12", "flow base", "flow-proj", "base"),
    ("12", "flow base + flow", "flow-proj-flow", "spar"),
    ("12", "SPAR (SPAR-MLP)", "mlp", "spar"),
    ("13", "SPAR-MLP on a flow base", "flow-mlp", "spar"),
    ("13", "SPAR-PROJ on a flow base", "flow-proj", "spar"),
    ("-", "SPAR-PROJ (CVAE) on the MLP base", "proj", "spar"),
]

# (what it asks, cell minus cell)
QUESTIONS = [
    ("does a flow residual improve the MLP base?", "MLP base + flow", "MLP base"),
    ("flow generator or CVAE, all else SPAR-PROJ?", "MLP base + flow",
     "SPAR-PROJ (CVAE) on the MLP base"),
    ("is the flow base a better anchor?", "flow base", "MLP base"),
    ("does a flow residual improve the flow base?", "flow base + flow", "flow base"),
    ("SPAR against the most expressive generator pair", "SPAR (SPAR-MLP)", "flow base + flow"),
    ("does SPAR-MLP add to a flow base?", "SPAR-MLP on a flow base", "flow base"),
    ("does SPAR-PROJ add to a flow base?", "SPAR-PROJ on a flow base", "flow base"),
    ("does a flow anchor help SPAR-MLP?", "SPAR-MLP on a flow base", "SPAR (SPAR-MLP)"),
    ("does a flow anchor help SPAR-PROJ?", "SPAR-PROJ on a flow base",
     "SPAR-PROJ (CVAE) on the MLP base"),
]  # fmt: skip


def command(run: str, out: Path, extra: list[str]) -> list[str]:
    """The `spar-eqx train` command of one run."""
    return ["spar-eqx", "train", "--budget", "quick", "--out", str(out), *RUNS[run], "--quiet",
            *extra]  # fmt: skip


def episodes(results: dict, policy: str) -> np.ndarray:
    """A run's per-seed, per-episode scores of one policy, `(seeds, episodes)`."""
    return np.asarray(results["episode_scores"][policy], np.float64)


def resolved(difference: Interval, episodes: np.ndarray) -> bool:
    """Whether a paired difference is a finding: its interval excludes 0 and it rests on two
    seeds or more (one seed's episodes say nothing of how another seed would do)."""
    return difference.excludes_zero and episodes.shape[0] >= 2


def _cell(i: Interval, sign: str = "") -> str:
    return f"{i.estimate:{sign}.1f} [{i.low:{sign}.1f}, {i.high:{sign}.1f}]"


def tables(scores: dict[str, np.ndarray]) -> str:
    """The cells' scores, then the paired differences of `QUESTIONS` (cells not run are
    skipped)."""
    lines = ["| table | cell | score, mean [95% interval] | per seed |", "| --- " * 4 + "|"]
    for table, cell, run, policy in CELLS:
        if cell in scores:
            per_seed = ", ".join(f"{v:.1f}" for v in scores[cell].mean(axis=1))
            lines.append(f"| {table} | {cell} (`{run}`: `{policy}`) | "
                         f"{_cell(mean_interval(scores[cell]))} | {per_seed} |")  # fmt: skip
    lines += ["", "| question | paired difference | [95% interval] | excludes 0 |",
              "| --- | --- | --- | --- |"]  # fmt: skip
    for question, a, b in QUESTIONS:
        if a in scores and b in scores:
            d = paired_difference(scores[a], scores[b])
            verdict = "yes" if resolved(d, scores[a]) else "no: not resolved"
            lines.append(f"| {question} | {a} - {b} | {_cell(d, '+')} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, extra = split_extra(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/flow"))
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--table", action="store_true", help="only print the finished cells")
    parser.add_argument("--json", help="also write the cells, machine and versions here")
    args = parser.parse_args(ours)

    records, scores = [], {}
    for run in args.runs:
        folder = args.out / run
        cmd = command(run, folder, extra)
        if not (folder / "results.json").exists():
            if args.table:
                continue
            print("$", " ".join(cmd), flush=True)
            started = time.perf_counter()
            subprocess.run([spar_eqx(), *cmd[1:]], check=True)
            (folder / "command_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
        results = json.loads((folder / "results.json").read_text())
        for _, cell, cell_run, policy in CELLS:
            if cell_run == run:
                scores[cell] = episodes(results, policy)
        records.append({"run": run, "command": " ".join(cmd),
                        "config": json.loads((folder / "config.json").read_text()),
                        "scores": results["scores"],
                        "score_intervals": results["score_intervals"]})  # fmt: skip
    print(tables(scores))
    if args.json:
        cells = {cell: {"run": run, "policy": policy, "episodes": scores[cell].tolist(),
                        "interval": mean_interval(scores[cell]).record()}
                 for _, cell, run, policy in CELLS if cell in scores}  # fmt: skip
        differences = {}
        for _, a, b in QUESTIONS:
            if a in scores and b in scores:
                d = paired_difference(scores[a], scores[b])
                differences[f"{a} - {b}"] = {**d.record(), "excludes_zero": resolved(d, scores[a])}
        record = {"runs": records, "cells": cells, "paired_differences": differences}
        write_record(args.json, "benchmarks/flow_tables.py", record, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
