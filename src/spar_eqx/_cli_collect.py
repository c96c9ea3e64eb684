"""`spar-eqx collect`: its options, and running `spar_eqx.data.collect` from them."""

import argparse
from pathlib import Path

from ._errors import UserError
from .data._collect import (
    DEFAULT_MAX_TRAIN_STEPS,
    DEFAULT_STEPS,
    LEVELS,
    CollectError,
    collect,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `collect` options to `parser` (the `spar-eqx collect` subcommand).

    **Arguments:** `parser`, the subcommand's `argparse` parser (modified in place).
    """
    parser.add_argument(
        "--env", required=True, metavar="ENV_ID", help="gymnasium id, e.g. Hopper-v5"
    )
    parser.add_argument("--level", required=True, choices=LEVELS, help="which D4RL-style dataset")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="FOLDER",
        help="datasets root; the dataset goes to FOLDER/<env>/<level>-v0 (a Minari dataset folder)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of everything (default 0)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_STEPS,
        metavar="N",
        help=f"transitions recorded per policy (default {DEFAULT_STEPS}; unused by medium-replay)",
    )
    parser.add_argument(
        "--target-return",
        type=float,
        nargs="+",
        metavar="R",
        help="target evaluation return (medium-expert: two, R_MEDIUM R_EXPERT); default from "
        "D4RL's reference returns: 1/3 (medium) or 0.9 (expert) of the way from random to expert",
    )
    parser.add_argument(
        "--max-train-steps",
        type=int,
        default=DEFAULT_MAX_TRAIN_STEPS,
        metavar="STEPS",
        help=f"give up if the target is not reached after this many env steps "
        f"(default {DEFAULT_MAX_TRAIN_STEPS})",
    )
    parser.add_argument(
        "--max-episode-steps", type=int, default=None, metavar="STEPS",
        help="override the env's time limit",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_from_args(args: argparse.Namespace) -> int:
    """Run `spar-eqx collect` from parsed arguments; prints the dataset folder.

    **Arguments:** `args`, the namespace `add_arguments`'s options produce.

    **Returns:** the exit status 0; a `CollectError` is re-raised as a `UserError` (exit 2).
    """
    target = args.target_return
    if target is not None:
        target = float(target[0]) if len(target) == 1 else tuple(float(r) for r in target)
    try:
        folder = collect(
            args.env,
            args.level,
            args.out,
            seed=args.seed,
            steps=args.steps,
            target_return=target,
            max_train_steps=args.max_train_steps,
            max_episode_steps=args.max_episode_steps,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except CollectError as error:
        raise UserError(str(error)) from error
    print(folder)
    return 0
