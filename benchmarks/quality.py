"""Score SPAR and the baselines on one or more datasets at one budget, all through `spar-eqx train`.

Each algorithm runs as its own `spar-eqx train` process (seeds vmapped inside it); the script
then writes a Markdown table per dataset: each policy's D4RL-normalised score as the mean with
its 95% bootstrap interval over seeds and their evaluation episodes, the per-seed scores and
each run's wall time; then the paired difference of SPAR (the first `spar-*` run's gated policy)
minus every other policy, with its 95% interval and whether it excludes 0 (every run plays the
same evaluation episodes, seed `s`'s episode `e` with environment seed `10_000 + s * episodes +
e`, so policies are paired by seed and episode). With several datasets, a last table gives each
policy's interquartile mean across datasets with its stratified bootstrap interval (rliable's
aggregate). With `--json PATH`, the same as JSON with the machine and versions.

Usage (from the repository root):

    python benchmarks/quality.py --dataset runs/heldout/hopper/medium-replay-v0 \\
        --out runs/quality --steps 30000 --seeds 2 --algos bc iql td3bc rebrac spar-mlp

`spar-mlp` / `spar-proj` run SPAR with that Stage II variant and `--steps` updates in each of
its two stages. With one dataset the runs go to `--out/ALGO`; with several, to
`--out/DATASET/ALGO` (the dataset's path or id with `/` as `_`). Runs already finished in
`--out` are read, not repeated (delete a folder to redo it). Extra `spar-eqx train` flags for
every run go after `--`.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from _record import spar_eqx, split_extra, write_record

from spar_eqx import Interval, mean_interval, paired_difference, stratified_interval


def _command(algo: str, args, dataset: str, out: Path, extra: list[str]) -> list[str]:
    cmd = ["spar-eqx", "train", "--dataset", dataset, "--out", str(out)]
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


class Row(NamedTuple):
    """One policy of one run: its name in the tables, per-seed scores, and each seed's
    episode scores (one row per seed; the per-seed scores as one column where a run's
    results.json predates per-episode scores)."""

    name: str
    scores: list[float]
    episodes: np.ndarray
    minutes: float


def _rows(results: dict, minutes: float) -> list[Row]:
    rows = []
    per_episode = results.get("episode_scores") or {}
    for policy, scores in results["scores"].items():
        # A run of several policies (SPAR's base/spar/spar_no_gate, FQL's one-step and flow
        # policies) names each; a run of one policy is named by its algorithm.
        several = len(results["scores"]) > 1
        name = f"{results['label']}: {policy}" if several else results["label"]
        episodes = per_episode.get(policy, [[s] for s in scores])
        rows.append(Row(name, scores, np.asarray(episodes, np.float64), minutes))
    return rows


def _reference(rows: list[Row]) -> Row | None:
    """The row every other is compared with: the first SPAR run's gated policy."""
    return next((r for r in rows if r.name.endswith(": spar")), None)


def _differences(rows: list[Row]) -> list[tuple[str, Interval | None]]:
    """`(name, SPAR minus it)` for every other row; None where the two were not evaluated on
    the same seeds and episodes, so cannot be paired."""
    spar = _reference(rows)
    if spar is None:
        return []
    out = []
    for row in rows:
        if row is spar:
            continue
        paired = row.episodes.shape == spar.episodes.shape
        out.append((row.name, paired_difference(spar.episodes, row.episodes) if paired else None))
    return out


def _interval_cell(i: Interval, sign: str = "") -> str:
    return f"{i.estimate:{sign}.1f} [{i.low:{sign}.1f}, {i.high:{sign}.1f}]"


def table(rows: list[Row]) -> list[str]:
    """The Markdown table of one dataset's scores, then its paired differences."""
    seeds = {len(r.scores) for r in rows}
    episodes = {r.episodes.shape[1] for r in rows}
    counts = f"{'/'.join(map(str, sorted(seeds)))} seeds x {'/'.join(map(str, sorted(episodes)))}"
    lines = [
        f"| algorithm: policy | score, mean [95% interval] ({counts} episodes) | per seed "
        "| wall time |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        per_seed = ", ".join(f"{v:.1f}" for v in row.scores)
        lines.append(
            f"| {row.name} | {_interval_cell(mean_interval(row.episodes))} | {per_seed} "
            f"| {row.minutes:.1f} min |"
        )
    differences = _differences(rows)
    if differences:
        spar = _reference(rows)
        assert spar is not None
        lines += ["", f"| paired difference | {spar.name} minus it [95% interval] | "
                  "excludes 0 |", "| --- | --- | --- |"]  # fmt: skip
        for name, d in differences:
            if d is None:
                lines.append(f"| {name} | not paired: other seeds or episodes | |")
                continue
            verdict = ("yes: SPAR higher" if d.estimate > 0 else "yes: SPAR lower") if (
                d.excludes_zero) else "no: not resolved"  # fmt: skip
            lines.append(f"| {name} | {_interval_cell(d, '+')} | {verdict} |")
    return lines


def aggregate(per_dataset: dict[str, list[Row]]) -> list[str]:
    """Each policy's interquartile mean over datasets and seeds, with its stratified bootstrap
    interval (rliable's aggregate), for the policies run on every dataset with equal seeds."""
    names = [r.name for r in next(iter(per_dataset.values()))]
    lines = [
        f"| algorithm: policy | IQM over {len(per_dataset)} datasets [95% stratified "
        "bootstrap interval] |",
        "| --- | --- |",
    ]
    for name in names:
        columns = [[r.scores for r in rows if r.name == name] for rows in per_dataset.values()]
        if any(len(c) != 1 for c in columns) or len({len(c[0]) for c in columns}) != 1:
            lines.append(f"| {name} | not run on every dataset with the same seeds |")
            continue
        scores = np.asarray([c[0] for c in columns], np.float64).T  # (seeds, datasets)
        lines.append(f"| {name} | {_interval_cell(stratified_interval(scores))} |")
    return lines


def _record(algo: str, cmd: list[str], minutes: float, results: dict, rows: list[Row]) -> dict:
    return {
        "algo": algo,
        "command": " ".join(cmd),
        "minutes": minutes,
        "scores": results["scores"],
        "episode_scores": {r.name: r.episodes.tolist() for r in rows},
        "intervals": {r.name: mean_interval(r.episodes).record() for r in rows},
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, extra = split_extra(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, nargs="+", help="one or more datasets")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=30_000, help="updates (per stage for SPAR)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--log-every", type=int, default=1000)
    parser.add_argument("--algos", nargs="+", default=["bc", "iql", "td3bc", "rebrac", "spar-mlp"])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    per_dataset: dict[str, list[Row]] = {}
    records = []
    for dataset in args.dataset:
        folder = args.out
        if len(args.dataset) > 1:
            folder = args.out / dataset.strip("/").replace("/", "_")
        rows = []
        for algo in args.algos:
            out = folder / algo
            cmd = _command(algo, args, dataset, out, extra)
            if not (out / "results.json").exists():
                print("$", " ".join(cmd), flush=True)
                started = time.perf_counter()
                subprocess.run([spar_eqx(), *cmd[1:]], check=True)
                minutes = (time.perf_counter() - started) / 60
                (out / "wall_minutes.txt").write_text(f"{minutes:.2f}\n")
                (out / "command.txt").write_text(" ".join(cmd) + "\n")
            minutes = float((out / "wall_minutes.txt").read_text())
            if (out / "command.txt").exists():  # the command that made it, not today's options
                cmd = (out / "command.txt").read_text().split()
            results = json.loads((out / "results.json").read_text())
            new = _rows(results, minutes)
            rows += new
            records.append({"dataset": dataset, **_record(algo, cmd, minutes, results, new)})
        per_dataset[dataset] = rows
        spar = _reference(rows)
        if spar is not None:  # SPAR's run keeps its paired differences with every other row
            record = next(r for r in records if r["dataset"] == dataset and spar.name in
                          r["intervals"])  # fmt: skip
            record["paired_differences"] = {
                f"{spar.name} - {name}": None if d is None else
                {**d.record(), "excludes_zero": d.excludes_zero}
                for name, d in _differences(rows)
            }  # fmt: skip

    text = []
    for dataset, rows in per_dataset.items():
        text += [f"{dataset}:", "", *table(rows), ""]
    if len(per_dataset) > 1:
        text += aggregate(per_dataset)
    print("\n".join(text).rstrip())
    if args.json:
        write_record(args.json, "benchmarks/quality.py", records, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
