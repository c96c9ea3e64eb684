"""The README's main job, `spar-eqx train --budget quick`, for SPAR-MLP and SPAR-PROJ, timed.

Runs the command once per variant on the embedded default dataset (each run's whole wall
time is measured around the command: import, data, compile, training and evaluation), then
prints a Markdown table of the D4RL normalised scores of the BC anchor, SPAR and SPAR without
its gate (each the mean over seeds and episodes with its 95% bootstrap interval, and the mean
per seed), the paired differences SPAR - anchor and SPAR - no gate with their intervals, the
gate's acceptance (on dataset states and along SPAR's own episodes), the support-distance
ratio, and the paper's Table 1 numbers for hopper-medium-replay beside them.

Usage, from the repository root:

    python benchmarks/main_job.py --out runs/bench --json benchmarks/results/main_job_cpu.json
    python benchmarks/main_job.py --out runs/bench --table    # only print the table again

Another CPU's code path, on this one: XLA's `--xla_cpu_max_isa` caps the instructions it emits
(AVX2 on an AVX-512 machine, as an older CPU would run), and the record keeps `XLA_FLAGS`:

    XLA_FLAGS=--xla_cpu_max_isa=AVX2 python benchmarks/main_job.py --out runs/avx2 \
        --variants mlp --json benchmarks/results/main_job_cpu_avx2.json

The paper's numbers are D4RL hopper-medium-replay-v2 (Hopper-v2, 1M + 1M steps); ours are the
embedded Hopper-v5 medium-replay-style dataset at the quick budget, so the comparison is of
trends (does SPAR improve on its own BC anchor?), not of absolute scores.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _record import spar_eqx, write_record

BUDGET = ["--budget", "quick"]
VARIANTS = ("mlp", "proj")

# Table 1 of the paper, hopper-medium-replay (normalised scores).
PAPER_HOPPER_MR = {
    "BC anchor (paper's Base)": 42.9,
    "SPAR-MLP (paper)": 101.9,
    "SPAR-PROJ (paper)": 70.4,
    "IQL": 94.7,
    "TD3+BC": 60.9,
    "CQL": 95.0,
    "Diffusion-QL": 101.3,
    "AWAC": 37.2,
}


def run(out: Path, variants: tuple[str, ...] = VARIANTS) -> None:
    for variant in variants:
        target = out / variant
        if (target / "results.json").exists():
            continue
        cmd = ["spar-eqx", "train", "--out", str(target), "--variant", variant, *BUDGET]
        print("$", " ".join(cmd), flush=True)
        started = time.perf_counter()
        subprocess.run([spar_eqx(), *cmd[1:]], check=True)
        (target / "command_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")


def rows(out: Path, variants: tuple[str, ...] = VARIANTS) -> list[dict]:
    """One row per variant: its results.json's scores and diagnostics, and the timings."""
    found = []
    for variant in variants:
        path = out / variant / "results.json"
        if path.exists():
            r = json.loads(path.read_text())
            seconds = out / variant / "command_seconds.txt"
            found.append({
                "variant": variant,
                "command": f"spar-eqx train --out {out / variant} --variant {variant} "
                + " ".join(BUDGET),
                "command_seconds": float(seconds.read_text()) if seconds.exists() else None,
                "train_and_eval_seconds": r["wall_clock_seconds"],
                "evaluation": r.get("evaluation"),
                "scores": r["scores"],
                "score_intervals": r["score_intervals"],
                "paired_differences": r["paired_differences"],
                "gate_acceptance_dataset": r["diagnostics"]["gate_acceptance"],
                "gate_acceptance_episodes": r.get("episodes", {}).get("spar", {}).get(
                    "gate_acceptance"
                ),
                "support_distance_ratio": r.get("support_distance_ratio"),
            })  # fmt: skip
    return found


def _cell(interval: dict) -> str:
    """A mean and its interval: `30.2 [25.1, 36.0]`."""
    return f"{interval['mean']:.1f} [{interval['low']:.1f}, {interval['high']:.1f}]"


def table(found: list[dict]) -> str:
    lines = [
        "| policy | score (ours), 95% interval | per seed | whole command |",
        "| --- | --- | --- | --- |",
    ]
    for row in found:
        v = row["variant"].upper()
        seconds = row["command_seconds"] or row["train_and_eval_seconds"]
        for name, label in (("base", "BC anchor"), ("spar_no_gate", "no gate"), ("spar", "full")):
            if name == "base" and row is not found[0]:
                label = "BC anchor (same seeds, same Stage I)"
            scores = row["scores"][name]
            lines.append(
                f"| SPAR-{v}: {label} | {_cell(row['score_intervals'][name])} | "
                f"{', '.join(f'{s:.1f}' for s in scores)} | {seconds / 60:.1f} min |"
            )
        for pair, d in row["paired_differences"].items():
            verdict = "excludes 0" if d["excludes_zero"] else "includes 0: not resolved"
            lines.append(f"| SPAR-{v}: {pair} (paired) | {_cell(d)} | {verdict} | |")
        episodes = row["gate_acceptance_episodes"]
        along = f", {np.mean(episodes):.2f} along its episodes" if episodes else ""
        accepted = np.mean(row["gate_acceptance_dataset"])
        lines.append(f"| SPAR-{v}: gate acceptance | {accepted:.2f} on dataset states{along} | | |")
        if row["support_distance_ratio"]:
            ratios = ", ".join(
                f"{k} {np.mean(x):.2f}" if x is not None else f"{k} not available"
                for k, x in row["support_distance_ratio"].items()
            )
            lines.append(f"| SPAR-{v}: support-distance ratio | {ratios} | | |")
        if row["evaluation"]:
            e = row["evaluation"]
            lines.append(
                f"| SPAR-{v}: final evaluation | {e['env_steps']:,} env steps in "
                f"{e['seconds']:.0f} s ({e['env_steps_per_s']:,.0f}/s) | | |"
            )
    lines += ["", "| paper, hopper-medium-replay-v2 | score |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in PAPER_HOPPER_MR.items()]
    lines += [
        "",
        f"Machine: {platform.machine()}, {platform.processor() or 'CPU'}, "
        f"Python {platform.python_version()}; "
        f"command: `spar-eqx train --variant V {' '.join(BUDGET)}`.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--table", action="store_true", help="only print the table")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--json", help="also write the rows, machine and versions here")
    args = parser.parse_args(argv)
    if not args.table:
        run(args.out, tuple(args.variants))
    found = rows(args.out, tuple(args.variants))
    print(table(found))
    if args.json:
        xla_flags = os.environ.get("XLA_FLAGS", "")
        write_record(args.json, "benchmarks/main_job.py",
                     [{**row, "xla_flags": xla_flags} for row in found], argv)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
