"""One trained SPAR run evaluated under several value-gate settings, without retraining.

The gate (Stage III, eq. 12) is a rule on the trained critics, so each setting here is only
an evaluation: the run is loaded once, then for each setting the learners are rebuilt with it
(`Trainer.override`, what `spar-eqx evaluate --gate` does) and the final evaluation runs with
the same environment seeds. Per setting it prints and records SPAR's score (mean with its 95%
bootstrap interval over seeds and episodes, and per seed), the paired difference from the
first setting's SPAR (the same seeds and episodes, so paired by episode) with its interval,
the gate's acceptance on dataset states and along SPAR's own episodes, and, once, the
anchor's and the ungated residual's scores, which no gate setting changes.

Usage (from the repository root; RUN is a finished `spar-eqx train` folder, e.g. the README's
main job):

    python benchmarks/regate.py runs/main --json benchmarks/results/regate_main_job.json
    python benchmarks/regate.py runs/main --settings "" "eta_rel=0" "lambda_u=0,eta_rel=0"

A setting is comma-separated `NAME=VALUE` pairs of `spar-eqx evaluate --gate` (the empty
string is the run's own gate). Rows: `{"setting", "gate", "spar_scores", "spar_mean",
"spar_interval", "minus_first", "acceptance_dataset", "acceptance_episodes"}` (`minus_first`:
`{"mean", "low", "high", "excludes_zero"}`), then `{"setting": "reference", "base_scores",
"no_gate_scores", "base_interval", "no_gate_interval"}`.
"""

import argparse
import sys

import numpy as np
from _record import write_record

from spar_eqx import mean_interval, paired_difference
from spar_eqx._cli_evaluate import parse_gate, regate
from spar_eqx._train import load_trained

DEFAULT_SETTINGS = (
    "",
    "eta_rel=0",
    "eta_abs=0,eta_rel=0",
    "lambda_u=0",
    "lambda_u=2",
    "eta_abs=-1e9,eta_rel=-1e9",
)


def _episodes(record: dict, policy: str) -> np.ndarray:
    """A policy's episode scores, one row per seed (its per-seed scores, as one column, in a
    record from before episode scores were kept)."""
    rows = record.get("episode_scores", {}).get(policy)
    return np.asarray(rows if rows is not None else [[s] for s in record["scores"][policy]])


def _cell(i: dict) -> str:
    return f"{i['mean']:.1f} [{i['low']:.1f}, {i['high']:.1f}]"


def setting_row(setting: str, gate: dict, record: dict, first: np.ndarray | None) -> dict:
    """One setting's row: SPAR's scores with their interval, its paired difference from the
    first setting's SPAR episodes `first` (None for the first itself) and the acceptances."""
    spar = _episodes(record, "spar")
    scores = np.asarray(record["scores"]["spar"])
    minus = None
    if first is not None:
        d = paired_difference(spar, first)
        minus = {**d.record(), "excludes_zero": d.excludes_zero}
    return {
        "setting": setting or "the run's own",
        "gate": gate,
        "spar_scores": scores.tolist(),
        "spar_mean": float(scores.mean()),
        "spar_interval": mean_interval(spar).record(),
        "minus_first": minus,
        "acceptance_dataset": float(np.mean(record["diagnostics"]["gate_acceptance"])),
        "acceptance_episodes": float(np.mean(record["episodes"]["spar"]["gate_acceptance"])),
    }


def setting_line(label: str, row: dict) -> str:
    score = _cell(row["spar_interval"])
    d = row["minus_first"]
    minus = "(first)" if d is None else f"{d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]"
    if d is not None:
        minus += " *" if d["excludes_zero"] else ""
    data, along = row["acceptance_dataset"], row["acceptance_episodes"]
    return f"{label:<28}{score:>22}{minus:>26}{data:>16.0%}{along:>10.0%}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="folder of a finished SPAR run")
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS))
    parser.add_argument("--episodes", type=int, default=None, help="episodes per seed")
    parser.add_argument("--seed", type=int, default=10_000, help="first evaluation env seed")
    parser.add_argument("--json", help="also write the rows, machine and versions here")
    args = parser.parse_args(argv)
    trainer, states = load_trained(args.run)
    rows, reference, first = [], None, None
    print(
        f"{'gate setting':<28}{'SPAR score [95%]':>22}{'minus the first [95%]':>26}"
        f"{'accepted: data':>16}{'episodes':>10}"
    )
    for setting in args.settings:
        gate = regate(trainer, parse_gate([s for s in setting.split(",") if s]), args.run)
        record, _ = trainer.final_record(states, seed=args.seed, episodes=args.episodes)
        rows.append(setting_row(setting, gate, record, first))
        first = _episodes(record, "spar") if first is None else first
        print(setting_line(setting or "(the run's own)", rows[-1]))
        if reference is None:
            base, free = _episodes(record, "base"), _episodes(record, "spar_no_gate")
            reference = {
                "setting": "reference",
                "base_scores": record["scores"]["base"],
                "no_gate_scores": record["scores"]["spar_no_gate"],
                "base_interval": mean_interval(base).record(),
                "no_gate_interval": mean_interval(free).record(),
            }
    print("* the paired difference excludes 0 (95%); scores: mean [95% bootstrap interval]")
    assert reference is not None  # --settings takes one or more
    print(f"anchor {_cell(reference['base_interval'])}; no gate "
          f"{_cell(reference['no_gate_interval'])}")  # fmt: skip
    rows.append(reference)
    if args.json:
        write_record(args.json, "benchmarks/regate.py", rows, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
