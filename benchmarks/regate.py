"""One trained SPAR run evaluated under several value-gate settings, without retraining.

The gate (Stage III, eq. 12) is a rule on the trained critics, so each setting here is only
an evaluation: the run is loaded once, then for each setting the learners are rebuilt with it
(`Trainer.override`, what `spar-eqx evaluate --gate` does) and the final evaluation runs with
the same environment seeds. Per setting it prints and records SPAR's score (mean and per
seed), the gate's acceptance on dataset states and along SPAR's own episodes, and, once, the
anchor's and the ungated residual's scores, which no gate setting changes.

Usage (from the repository root; RUN is a finished `spar-eqx train` folder, e.g. the README's
main job):

    python benchmarks/regate.py runs/main --json benchmarks/results/regate_main_job.json
    python benchmarks/regate.py runs/main --settings "" "eta_rel=0" "lambda_u=0,eta_rel=0"

A setting is comma-separated `NAME=VALUE` pairs of `spar-eqx evaluate --gate` (the empty
string is the run's own gate). Rows: `{"setting", "gate", "spar_scores", "spar_mean",
"acceptance_dataset", "acceptance_episodes"}`, then `{"setting": "reference", "base_scores",
"no_gate_scores"}`.
"""

import argparse
import sys

import numpy as np
from _record import write_record

from spar_eqx._cli_train import parse_gate, regate
from spar_eqx._train import load_trained

DEFAULT_SETTINGS = (
    "",
    "eta_rel=0",
    "eta_abs=0,eta_rel=0",
    "lambda_u=0",
    "lambda_u=2",
    "eta_abs=-1e9,eta_rel=-1e9",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="folder of a finished SPAR run")
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS))
    parser.add_argument("--episodes", type=int, default=None, help="episodes per seed")
    parser.add_argument("--seed", type=int, default=10_000, help="first evaluation env seed")
    parser.add_argument("--json", help="also write the rows, machine and versions here")
    args = parser.parse_args(argv)
    trainer, states = load_trained(args.run)
    rows, reference = [], None
    print(f"{'gate setting':<28}{'SPAR score':>18}{'accepted: data':>16}{'episodes':>10}")
    for setting in args.settings:
        gate = regate(trainer, parse_gate([s for s in setting.split(",") if s]), args.run)
        record, _ = trainer.final_record(states, seed=args.seed, episodes=args.episodes)
        spar = np.asarray(record["scores"]["spar"])
        data = float(np.mean(record["diagnostics"]["gate_acceptance"]))
        along = float(np.mean(record["episodes"]["spar"]["gate_acceptance"]))
        rows.append(
            {
                "setting": setting or "the run's own",
                "gate": gate,
                "spar_scores": spar.tolist(),
                "spar_mean": float(spar.mean()),
                "acceptance_dataset": data,
                "acceptance_episodes": along,
            }
        )
        score = f"{spar.mean():.1f} +- {spar.std():.1f}"
        label = setting or "(the run's own)"
        print(f"{label:<28}{score:>18}{data:>16.0%}{along:>10.0%}")
        reference = reference or {
            "setting": "reference",
            "base_scores": record["scores"]["base"],
            "no_gate_scores": record["scores"]["spar_no_gate"],
        }
    base, free = np.asarray(reference["base_scores"]), np.asarray(reference["no_gate_scores"])
    print(f"anchor {base.mean():.1f} +- {base.std():.1f}; ", end="")
    print(f"no gate {free.mean():.1f} +- {free.std():.1f}")
    rows.append(reference)
    if args.json:
        write_record(args.json, "benchmarks/regate.py", rows, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
