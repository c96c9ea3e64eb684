"""The main job on the embedded default dataset, for SPAR-MLP and SPAR-PROJ, and a results table.

Runs `spar-eqx train` (the README's budget) once per variant, then prints a Markdown table of the
per-seed D4RL normalised scores (mean +- std over seeds) of the BC anchor, SPAR and SPAR without
its gate, beside the paper's Table 1 numbers for hopper-medium-replay and those of its peers.

Usage, from the repository root:

    python benchmarks/main_job.py --out runs/bench            # both variants, 3 seeds
    python benchmarks/main_job.py --out runs/bench --table    # only print the table again

The paper's numbers are D4RL hopper-medium-replay-v2 (Hopper-v2, 1M + 1M steps); ours are the
embedded Hopper-v5 medium-replay-style dataset with the README's much shorter budget, so the
comparison is of trends (does SPAR improve on its own BC anchor?), not of absolute scores.
"""

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

BUDGET = [
    "--seeds", "3", "--stage1-steps", "8000", "--stage2-steps", "4000",
    "--hidden", "128", "--residual-hidden", "128",
    "--eval-episodes", "5", "--eval-every", "2000", "--checkpoint-every", "2000",
]  # fmt: skip
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


def run(out: Path) -> None:
    for variant in VARIANTS:
        target = out / variant
        if (target / "results.json").exists():
            continue
        cmd = ["spar-eqx", "train", "--out", str(target), "--variant", variant, *BUDGET]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


def _cell(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.1f} ± {values.std():.1f}"


def table(out: Path) -> str:
    lines = [
        "| policy | score (ours) | per seed | wall clock |",
        "| --- | --- | --- | --- |",
    ]
    for variant in VARIANTS:
        path = out / variant / "results.json"
        if not path.exists():
            continue
        r = json.loads(path.read_text())
        minutes = r["wall_clock_seconds"] / 60
        for name, label in (("base", "BC anchor"), ("spar_no_gate", "no gate"), ("spar", "full")):
            if name == "base" and variant != VARIANTS[0]:
                label = "BC anchor (same seeds, same Stage I)"
            scores = r["scores"][name]
            lines.append(
                f"| SPAR-{variant.upper()}: {label} | {_cell(scores)} | "
                f"{', '.join(f'{s:.1f}' for s in scores)} | {minutes:.1f} min |"
            )
        acc = np.mean(r["diagnostics"]["gate_acceptance"])
        lines.append(f"| SPAR-{variant.upper()}: gate acceptance | {acc:.3f} | | |")
    lines += ["", "| paper, hopper-medium-replay-v2 | score |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in PAPER_HOPPER_MR.items()]
    lines += [
        "",
        f"Machine: {platform.machine()}, {platform.processor() or 'CPU'}, "
        f"Python {platform.python_version()}; "
        f"command: `spar-eqx train --variant V {' '.join(BUDGET)}`.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--table", action="store_true", help="only print the table")
    args = parser.parse_args()
    if not args.table:
        run(args.out)
    print(table(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
