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

With `--stage1-from FOLDER`, each run takes the finished first stage of a run in FOLDER with
the same anchor (its own name first, e.g. `runs/flow`'s) instead of training one
(`spar-eqx train --stage1-from`): a table of Stage II variants then costs their Stage II only,
and every cell of one anchor sits on the same anchor.

Extra `spar-eqx train` flags for every run go after `--` (`-- --dataset PATH`). A run may have
other budgets than the rest (`-- --stage2-steps 2000` for the two flow-residual runs, whose Stage
II costs 8x the CVAE's): every cell shows its updates per stage, read from its run's
`config.json`, and a question whose two policies were trained for different budgets is printed
with its difference but marked as not comparable, never as a finding (a base policy compares
with a rectified one of another run when their Stage I budgets agree).
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

# Each run's anchor (`--base-policy`): runs of one anchor can share a first stage.
ANCHOR = {r: "flow" if "--base-policy" in flags else "deterministic" for r, flags in RUNS.items()}

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
    ("flow generator or CVAE, on a flow base?", "flow base + flow", "SPAR-PROJ on a flow base"),
    ("SPAR against the most expressive generator pair", "SPAR (SPAR-MLP)", "flow base + flow"),
    ("does SPAR-MLP add to a flow base?", "SPAR-MLP on a flow base", "flow base"),
    ("does SPAR-PROJ add to a flow base?", "SPAR-PROJ on a flow base", "flow base"),
    ("does a flow anchor help SPAR-MLP?", "SPAR-MLP on a flow base", "SPAR (SPAR-MLP)"),
    ("does a flow anchor help SPAR-PROJ?", "SPAR-PROJ on a flow base",
     "SPAR-PROJ (CVAE) on the MLP base"),
]  # fmt: skip


QUICK_STEPS = 20_000  # the quick budget's updates per stage
STEP_FLAGS = ("--stage1-steps", "--stage2-steps")


def command(run: str, out: Path, extra: list[str]) -> list[str]:
    """The `spar-eqx train` command of one run."""
    return ["spar-eqx", "train", "--budget", "quick", "--out", str(out), *RUNS[run], "--quiet",
            *extra]  # fmt: skip


def first_stage_source(run: str, folder: Path) -> Path | None:
    """The run in `folder` whose finished first stage `run` can take: `run` itself, else the
    first of `RUNS` with the same anchor; None when `folder` holds none."""
    for other in sorted(RUNS, key=lambda r: r != run):
        if ANCHOR[other] == ANCHOR[run] and (folder / other / "checkpoints/stage1.eqx").exists():
            return folder / other
    return None


def recorded_command(run: str, out: Path, extra: list[str], steps: tuple[int, ...]) -> list[str]:
    """The command that trained a run, its budget flags read from its config (so a run read
    from `--out` is recorded with its own budget, not this invocation's)."""
    kept, i = [], 0
    while i < len(extra):
        if extra[i] in STEP_FLAGS:
            i += 2
            continue
        kept.append(extra[i])
        i += 1
    flags = [[flag, str(n)] for flag, n in zip(STEP_FLAGS, steps, strict=False) if n != QUICK_STEPS]
    return command(run, out, kept + [part for pair in flags for part in pair])


def episodes(results: dict, policy: str) -> np.ndarray:
    """A run's per-seed, per-episode scores of one policy, `(seeds, episodes)`."""
    return np.asarray(results["episode_scores"][policy], np.float64)


def budget(config: dict, policy: str) -> tuple[int, ...]:
    """The updates per stage that trained a run's `policy`: Stage I's for `base`, both
    stages' for a rectified policy."""
    steps = tuple(int(s) for s in config["steps"])
    return steps[:1] if policy == "base" else steps


def comparable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether two policies' budgets let a difference between them be read as a finding: the
    stages both went through had the same updates (a base against a rectified policy shares
    only Stage I)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _budget(steps: tuple[int, ...]) -> str:
    return " + ".join(f"{s:,}" for s in steps)


def resolved(difference: Interval, episodes: np.ndarray) -> bool:
    """Whether a paired difference is a finding: its interval excludes 0 and it rests on two
    seeds or more (one seed's episodes say nothing of how another seed would do)."""
    return difference.excludes_zero and episodes.shape[0] >= 2


def _cell(i: Interval, sign: str = "") -> str:
    return f"{i.estimate:{sign}.1f} [{i.low:{sign}.1f}, {i.high:{sign}.1f}]"


def verdict(a: str, b: str, scores: dict[str, np.ndarray], budgets: dict) -> str:
    """What the paired difference `a - b` says: `yes` only when the two budgets are
    `comparable` and the difference is `resolved`."""
    if not comparable(budgets[a], budgets[b]):
        return f"not comparable: {_budget(budgets[a])} vs {_budget(budgets[b])} updates"
    found = resolved(paired_difference(scores[a], scores[b]), scores[a])
    return "yes" if found else "no: not resolved"


def tables(scores: dict[str, np.ndarray], budgets: dict[str, tuple[int, ...]]) -> str:
    """The cells' scores and budgets (updates per stage), then the paired differences of
    `QUESTIONS` (cells not run are skipped)."""
    lines = ["| table | cell | updates per stage | score, mean [95% interval] | per seed |",
             "| --- " * 5 + "|"]  # fmt: skip
    for table, cell, run, policy in CELLS:
        if cell in scores:
            per_seed = ", ".join(f"{v:.1f}" for v in scores[cell].mean(axis=1))
            lines.append(f"| {table} | {cell} (`{run}`: `{policy}`) | {_budget(budgets[cell])} | "
                         f"{_cell(mean_interval(scores[cell]))} | {per_seed} |")  # fmt: skip
    lines += ["", "| question | paired difference | [95% interval] | excludes 0 |",
              "| --- | --- | --- | --- |"]  # fmt: skip
    for question, a, b in QUESTIONS:
        if a in scores and b in scores:
            d = paired_difference(scores[a], scores[b])
            words = verdict(a, b, scores, budgets)
            lines.append(f"| {question} | {a} - {b} | {_cell(d, '+')} | {words} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, extra = split_extra(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/flow"))
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--table", action="store_true", help="only print the finished cells")
    parser.add_argument("--json", help="also write the cells, machine and versions here")
    parser.add_argument("--stage1-from", type=Path, metavar="FOLDER",
                        help="take each run's first stage from the run of the same anchor in "
                        "FOLDER (e.g. runs/flow) instead of training it")  # fmt: skip
    args = parser.parse_args(ours)

    records, scores, budgets = [], {}, {}
    for run in args.runs:
        folder = args.out / run
        cmd = command(run, folder, extra)
        if not (folder / "results.json").exists():
            if args.table:
                continue
            if args.stage1_from is not None:
                source = first_stage_source(run, args.stage1_from)
                if source is None:
                    parser.error(f"{args.stage1_from} holds no finished first stage with "
                                 f"{run}'s anchor ({ANCHOR[run]})")  # fmt: skip
                cmd += ["--stage1-from", str(source)]
            print("$", " ".join(cmd), flush=True)
            started = time.perf_counter()
            subprocess.run([spar_eqx(), *cmd[1:]], check=True)
            (folder / "command_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
        results = json.loads((folder / "results.json").read_text())
        config = json.loads((folder / "config.json").read_text())
        for _, cell, cell_run, policy in CELLS:
            if cell_run == run:
                scores[cell], budgets[cell] = episodes(results, policy), budget(config, policy)
        cmd = recorded_command(run, folder, extra, tuple(config["steps"]))
        if results.get("first_stage_from"):  # `spar-eqx train` records where it took Stage I
            cmd += ["--stage1-from", results["first_stage_from"]]
        records.append({"run": run, "command": " ".join(cmd), "config": config,
                        "scores": results["scores"],
                        "score_intervals": results["score_intervals"]})  # fmt: skip
    print(tables(scores, budgets))
    if args.json:
        cells = {cell: {"run": run, "policy": policy, "updates_per_stage": list(budgets[cell]),
                        "episodes": scores[cell].tolist(),
                        "interval": mean_interval(scores[cell]).record()}
                 for _, cell, run, policy in CELLS if cell in scores}  # fmt: skip
        differences = {}
        for _, a, b in QUESTIONS:
            if a in scores and b in scores:
                d = paired_difference(scores[a], scores[b])
                differences[f"{a} - {b}"] = {
                    **d.record(), "excludes_zero": resolved(d, scores[a]),
                    "comparable": comparable(budgets[a], budgets[b]),
                    "verdict": verdict(a, b, scores, budgets)}  # fmt: skip
        record = {"runs": records, "cells": cells, "paired_differences": differences}
        write_record(args.json, "benchmarks/flow_tables.py", record, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
