"""The gate question: does Stage III's value gate help or cost SPAR-MLP points, and how does the
answer depend on the anchor's strength and on the training budget?

For each dataset and each number of updates per stage, one `spar-eqx train --budget quick`
run (its seeds and evaluation episodes, SPAR-MLP) evaluates the BC anchor, SPAR and SPAR
without its gate on the same environment seeds, so the three are paired by seed and episode.
The table gives per cell: the anchor's score (how strong the policy is that the gate falls
back to), SPAR's and the ungated residual's, each as the mean over seeds and episodes with its
95% bootstrap interval, the paired difference "gate - no gate" with its interval and whether
it excludes 0, and the gate's acceptance on dataset states and along SPAR's own episodes.

Usage (from the repository root; a dataset is LABEL=PATH, PATH anything `--dataset` takes):

    python benchmarks/gate.py --out runs/gate --steps 20000 60000 \\
        --dataset embedded=default --dataset medium=runs/medium/hopper/medium-v0 \\
        --json benchmarks/results/gate_hopper.json

Runs already finished in `--out` (`OUT/LABEL-STEPS`) are read, not repeated; extra
`spar-eqx train` flags for every run go after `--` (`-- --seeds 10`).
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _record import spar_eqx, split_extra, write_record


def _cell(interval: dict) -> str:
    return f"{interval['mean']:.1f} [{interval['low']:.1f}, {interval['high']:.1f}]"


def run_dir(out: Path, label: str, steps: int) -> Path:
    return out / f"{label}-{steps}"


def command(path: str, steps: int, out: Path, extra: list[str]) -> list[str]:
    """The `spar-eqx train` command of one cell: the quick budget at `steps` updates per
    stage, evaluated four times per stage (at 20,000 steps, the README's main job)."""
    every = max(steps // 4, 1)
    return [
        "spar-eqx", "train", "--budget", "quick", "--dataset", path, "--out", str(out),
        "--stage1-steps", str(steps), "--stage2-steps", str(steps),
        "--eval-every", str(every), "--quiet", *extra,
    ]  # fmt: skip


def row(label: str, steps: int, folder: Path, cmd: list[str]) -> dict:
    """One cell's numbers from its `results.json`."""
    r = json.loads((folder / "results.json").read_text())
    seconds = folder / "command_seconds.txt"
    return {
        "dataset": label,
        "steps": steps,
        "command": " ".join(cmd),
        "command_seconds": float(seconds.read_text()) if seconds.exists() else None,
        "scores": r["scores"],
        "score_intervals": r["score_intervals"],
        "gate_minus_no_gate": r["paired_differences"]["spar - spar_no_gate"],
        "spar_minus_base": r["paired_differences"]["spar - base"],
        "gate_acceptance_dataset": r["diagnostics"]["gate_acceptance"],
        "gate_acceptance_episodes": r.get("episodes", {}).get("spar", {}).get("gate_acceptance"),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| dataset | updates per stage | BC anchor | SPAR-MLP | no gate | gate - no gate "
        "(paired) | SPAR - anchor (paired) | gate acceptance: dataset / episodes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        i, d, b = r["score_intervals"], r["gate_minus_no_gate"], r["spar_minus_base"]
        verdict = "" if d["excludes_zero"] else " (includes 0)"
        along = r["gate_acceptance_episodes"]
        accept = sum(r["gate_acceptance_dataset"]) / len(r["gate_acceptance_dataset"])
        accept_text = f"{accept:.2f} / " + (f"{sum(along) / len(along):.2f}" if along else "-")
        lines.append(
            f"| {r['dataset']} | {r['steps']:,} | {_cell(i['base'])} | {_cell(i['spar'])} | "
            f"{_cell(i['spar_no_gate'])} | {_cell(d)}{verdict} | {_cell(b)} | {accept_text} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, extra = split_extra(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", action="append", metavar="LABEL=PATH",
        help="a dataset to study (repeatable; default: embedded=default)",
    )  # fmt: skip
    parser.add_argument("--steps", type=int, nargs="+", default=[20_000])
    parser.add_argument("--out", type=Path, default=Path("runs/gate"))
    parser.add_argument("--table", action="store_true", help="only print the finished cells")
    parser.add_argument("--json", help="also write the rows, machine and versions here")
    args = parser.parse_args(ours)
    datasets = []
    for spec in args.dataset or ["embedded=default"]:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            parser.error(f"--dataset takes LABEL=PATH, got {spec!r}")
        datasets.append((label, path))
    rows = []
    for label, path in datasets:
        for steps in args.steps:
            folder = run_dir(args.out, label, steps)
            cmd = command(path, steps, folder, extra)
            if not (folder / "results.json").exists():
                if args.table:
                    continue
                print("$", " ".join(cmd), flush=True)
                started = time.perf_counter()
                subprocess.run([spar_eqx(), *cmd[1:]], check=True)
                (folder / "command_seconds.txt").write_text(
                    f"{time.perf_counter() - started:.1f}\n"
                )
            rows.append(row(label, steps, folder, cmd))
    print(table(rows))
    if args.json:
        write_record(args.json, "benchmarks/gate.py", rows, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
