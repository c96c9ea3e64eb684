"""The `spar-eqx` command: `train`, `evaluate` and `collect`."""

import argparse
import sys


class UserError(Exception):
    """A problem with what the user asked for: printed as one message, exit code 2."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spar-eqx",
        description="SPAR (Support-Preserving Action Rectification) for offline RL.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    from . import _cli_train
    from .data import _collect

    train = sub.add_parser("train", help="train SPAR (Stages I-III) and evaluate it")
    _cli_train.add_train_arguments(train)
    train.set_defaults(run=_cli_train.run_train)

    evaluate = sub.add_parser("evaluate", help="re-evaluate a finished run")
    _cli_train.add_evaluate_arguments(evaluate)
    evaluate.set_defaults(run=_cli_train.run_evaluate)

    collect = sub.add_parser(
        "collect", help="generate a D4RL-style Minari dataset with an online SAC (D4RL recipe)"
    )
    _collect.add_arguments(collect)
    collect.set_defaults(run=_collect.run_from_args)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ._train import TrainingError

    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UserError as error:
        print(f"spar-eqx {args.command}: error: {error}", file=sys.stderr)
        return 2
    except TrainingError as error:
        print(f"spar-eqx {args.command}: training stopped: {error}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"spar-eqx {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
