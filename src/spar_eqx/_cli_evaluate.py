"""`spar-eqx evaluate`: re-evaluate a finished run (or a grid point, or one exported policy
file) in its environment, optionally under changed value-gate settings (`--gate`), without
retraining.
"""

import argparse
import dataclasses
import json
import os
from pathlib import Path

from ._cli_train import print_summary
from ._errors import UserError


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir",
        metavar="RUN",
        type=Path,
        help="folder of a finished `spar-eqx train` run, or a policy file (`spar-eqx export`)",
    )
    parser.add_argument("--episodes", type=int, default=None, metavar="N", help="episodes per seed")
    parser.add_argument(
        "--seed", type=int, default=10_000, metavar="N", help="first evaluation env seed"
    )
    parser.add_argument(
        "--gate", action="append", default=[], metavar="NAME=VALUE",
        help="evaluate a SPAR run with one of its value gate's settings changed, without "
        f"retraining ({', '.join(GATE_SETTINGS)}); repeat it to change several",
    )  # fmt: skip
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH",
        help="where to write the evaluation (default: RUN/evaluation.json)",
    )  # fmt: skip


# The gate settings `evaluate --gate` may change: eq. (12)'s thresholds, Q_rob's weight and the
# candidates K. The gate's critic subset is not among them: it picks which trained members
# score, which is a choice made for training (Table 7).
GATE_SETTINGS = ("eta_abs", "eta_rel", "eps", "lambda_u", "num_candidates")


def parse_gate(items: list[str]) -> dict[str, float | int]:
    """`--gate NAME=VALUE` items as `{NAME: value}`; `UserError` on a bad item."""
    settings: dict[str, float | int] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in GATE_SETTINGS:
            raise UserError(
                f"--gate {item!r}: expected NAME=VALUE with NAME one of "
                f"{', '.join(GATE_SETTINGS)}, e.g. --gate eta_rel=0.05."
            )
        try:
            value = int(text) if name == "num_candidates" else float(text)
        except ValueError:
            kind = "a whole number" if name == "num_candidates" else "a number"
            raise UserError(f"--gate {item!r}: {name} must be {kind}, got {text!r}.") from None
        if name in settings:
            raise UserError(f"--gate sets {name} twice; give each setting once.")
        settings[name] = value
    return settings


def regate(trainer, settings: dict[str, float | int], run_dir: Path) -> dict:
    """Rebuild a loaded run's learners with its value gate's `settings` changed (`parse_gate`'s
    output); the trained networks stay as they are.

    **Returns:** every setting of the gate now in use. Raises `UserError` for a run without a
    gate or a value the gate refuses, before anything changes.
    """
    if "gate" not in {f.name for f in dataclasses.fields(trainer.hyperparameters)}:
        raise UserError(
            f"--gate changes SPAR's value gate, and {run_dir} is a {trainer.config.algo} run, "
            "which has none."
        )
    try:
        trainer.override({f"gate.{name}": value for name, value in settings.items()})
    except ValueError as error:
        raise UserError(f"--gate: {error}") from None
    return dataclasses.asdict(trainer.hyperparameters.gate)


def run_evaluate(args: argparse.Namespace) -> int:
    from ._train import load_trained
    from ._train._checkpoint import atomic_write

    if args.episodes is not None and args.episodes < 1:
        raise UserError(f"--episodes must be at least 1, got {args.episodes}")
    if not 0 <= args.seed < 2**31 - 10**7:
        raise UserError(
            f"--seed must lie in [0, {2**31 - 10**7}) (environment seeds are 32-bit and each "
            f"seed's episodes count up from it), got {args.seed}."
        )
    settings = parse_gate(args.gate)
    if args.run_dir.is_file():
        return _evaluate_policy_file(args, settings)
    target = args.json or args.run_dir / "evaluation.json"
    if target.is_dir():
        where = f"--json {target}" if args.json else str(target)
        raise UserError(
            f"{where} is a folder, so the evaluation cannot be written there; give --json "
            "the path of a file to write."
        )
    folder = target.parent
    writable = target if target.exists() else folder
    if folder.is_dir() and not os.access(writable, os.W_OK):
        raise UserError(
            f"{writable} is not writable, so the evaluation could not be saved; make it "
            "writable, or give --json a path that is."
        )
    if args.json is not None and not folder.is_dir():
        raise UserError(f"--json {target}: the folder {folder} does not exist; create it first.")
    try:
        trainer, states = load_trained(args.run_dir)
    except (ValueError, FileNotFoundError) as error:
        raise UserError(str(error)) from error
    regated = {}
    if settings:
        regated = {"gate": regate(trainer, settings, args.run_dir), "gate_overrides": settings}
        changed = ", ".join(f"{name}={value:g}" for name, value in settings.items())
        print(f"re-gated without retraining: {changed}")
    record, _ = trainer.final_record(states, seed=args.seed, episodes=args.episodes)
    results = {
        "run": str(args.run_dir),
        "algo": trainer.config.algo,
        "seed": args.seed,
        "episodes_per_seed": args.episodes or trainer.config.eval_episodes,
        **regated,
        **record,
    }
    print_summary(results)
    try:
        atomic_write(target, json.dumps(results, indent=2))
    except OSError as error:
        raise UserError(
            f"could not write {target} ({error.strerror}); the results are printed above."
        ) from None
    return 0


def _evaluate_policy_file(args: argparse.Namespace, settings: dict) -> int:
    """`spar-eqx evaluate FILE` for a policy file (`spar-eqx export`): its episodes in the
    environment it was trained for, printed, and written to `--json` when given."""
    from ._deploy import load_policy, policy_header
    from ._environments import Environment
    from ._evaluation import evaluate
    from ._train._checkpoint import atomic_write

    if settings:
        raise UserError(
            "--gate re-evaluates a run folder under other gate settings; a policy file holds "
            "its gate fixed. Give the run folder instead."
        )
    if args.json is not None and (args.json.is_dir() or not args.json.parent.is_dir()):
        raise UserError(f"--json {args.json}: give the path of a file in an existing folder.")
    try:
        header = policy_header(args.run_dir)
    except ValueError as error:  # PolicyFileError
        if "not a spar_eqx policy file" not in str(error):
            raise UserError(str(error)) from None  # a damaged policy file, named as such
        raise UserError(
            f"{args.run_dir} is not a folder, nor a policy file; give the --out folder of a "
            "`spar-eqx train` run, or a file `spar-eqx export` wrote."
        ) from None
    try:
        policy = load_policy(args.run_dir)
    except ValueError as error:
        raise UserError(str(error)) from None
    reference = header.get("reference")
    episodes = args.episodes or 10
    described = header.get("environment")
    result = evaluate(
        policy,
        header["env_id"] if described is None else Environment.from_description(described),
        episodes,
        args.seed,
        reference=None if reference is None else tuple(reference),
        max_episode_steps=header["config"].get("eval_max_episode_steps"),
    )
    score = "" if result.scores is None else f", mean score {result.mean_score:.1f}"
    print(
        f"{args.run_dir}: {header['label']} policy {header['policy']!r} (seed "
        f"{header['seed']}) on {header['env_id']}, {episodes} episodes from env seed "
        f"{args.seed}: mean return {result.mean_return:.1f}{score}"
    )
    if args.json is not None:
        record = {
            "policy_file": str(args.run_dir),
            "env_id": header["env_id"],
            "seed": args.seed,
            "episodes": episodes,
            "returns": result.returns.tolist(),
            "scores": None if result.scores is None else result.scores.tolist(),
        }
        atomic_write(args.json, json.dumps(record, indent=2))
    return 0
