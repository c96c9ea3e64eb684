"""The `spar-eqx` command: `train`, `evaluate`, `export`, `diagnose` and `collect`."""

import argparse
import errno
import sys

from ._errors import TrainingError, UserError


def _algo_of(argv: list[str]) -> str:
    """The `--algo` of a `train` command line (default: `spar`, or the algo of its
    `--config` file), read before the full parse. An unreadable file is reported later."""
    if not argv or argv[0] != "train":
        return "spar"
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--algo")
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv[1:])
    if known.algo is None and known.config is not None:
        from ._run_config import RunConfig

        try:
            return RunConfig.from_file(known.config).algo
        except ValueError:
            return "spar"
    return known.algo or "spar"


# Every command and its one-line help, for the full parser and for the light one that answers
# `spar-eqx`, `--help` and `--version` without importing JAX.
_COMMANDS = {
    "train": "train SPAR or a baseline (--algo) and evaluate it",
    "evaluate": "re-evaluate a finished run",
    "export": "write one seed's trained policy to a self-contained file",
    "diagnose": "residual topology of a dataset under its BC anchor: SPAR-MLP or SPAR-PROJ?",
    "collect": "generate a D4RL-style Minari dataset with an online SAC (D4RL recipe)",
}
_DESCRIPTION = "SPAR (Support-Preserving Action Rectification) and offline-RL baselines."


def _version() -> str:
    import importlib.metadata

    return f"spar-eqx {importlib.metadata.version('spar_eqx')}"


def _top_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(prog="spar-eqx", description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=_version())
    return parser, parser.add_subparsers(dest="command", required=True)


def _light_parser() -> argparse.ArgumentParser:
    """The commands and their help lines, without their options (nothing heavy imported)."""
    parser, sub = _top_parser()
    for name, text in _COMMANDS.items():
        sub.add_parser(name, help=text)
    return parser


def _build_parser(algo: str = "spar") -> argparse.ArgumentParser:
    parser, sub = _top_parser()

    from . import _cli_collect, _cli_diagnose, _cli_evaluate, _cli_export, _cli_train

    train = sub.add_parser(
        "train",
        help=_COMMANDS["train"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_cli_train.algorithms_epilog(),
    )
    _cli_train.add_train_arguments(train, algo)
    train.set_defaults(run=_cli_train.run_train)

    evaluate = sub.add_parser("evaluate", help=_COMMANDS["evaluate"])
    _cli_evaluate.add_evaluate_arguments(evaluate)
    evaluate.set_defaults(run=_cli_evaluate.run_evaluate)

    export = sub.add_parser("export", help=_COMMANDS["export"])
    _cli_export.add_arguments(export)
    export.set_defaults(run=_cli_export.run)

    diagnose = sub.add_parser("diagnose", help=_COMMANDS["diagnose"])
    _cli_diagnose.add_arguments(diagnose)
    diagnose.set_defaults(run=_cli_diagnose.run)

    collect = sub.add_parser("collect", help=_COMMANDS["collect"])
    _cli_collect.add_arguments(collect)
    collect.set_defaults(run=_cli_collect.run_from_args)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `spar-eqx` command; returns its exit code (0; 2 for a user's mistake; 3 when
    training cannot go on; 130 after Ctrl-C and 143 after SIGTERM, from start-up on)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in _COMMANDS:
        # No command: `--help`, `--version`, or an error, all answered by the light parser.
        _light_parser().parse_args(argv)
    from ._train._interrupt import terminate_as_interrupt

    command = argv[0] if argv else "spar-eqx"
    try:
        with terminate_as_interrupt():
            return _main(argv)
    except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM (`Interrupted`)
        return _interrupted(command, argv, error)


def _interrupted(command: str, argv: list[str], error: KeyboardInterrupt) -> int:
    """Say how the command was stopped, and whether a checkpoint is kept; the exit code."""
    import signal

    from ._errors import Interrupted
    from ._train._interrupt import signal_name

    signum = error.signum if isinstance(error, Interrupted) else signal.SIGINT
    how = "interrupted" if signum == signal.SIGINT else f"stopped by {signal_name(signum)}"
    said = ""
    if command == "train":
        checkpoint = error.checkpoint if isinstance(error, Interrupted) else None
        checkpoint = checkpoint or _latest_checkpoint(argv)
        said = (
            f" (the last checkpoint is kept: continue with --resume; {checkpoint})"
            if checkpoint
            else " before its first checkpoint (nothing to resume: run the command again)"
        )
    print(f"spar-eqx {command}: {how}{said}", file=sys.stderr)
    return 128 + signum


def _latest_checkpoint(argv: list[str]) -> str | None:
    """The `latest.eqx` of a `train` command line's run folder, if it exists."""
    from pathlib import Path

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--out", type=Path)
    pre.add_argument("--num-processes", type=int, default=1)
    pre.add_argument("--process-id", type=int, default=0)
    known, _ = pre.parse_known_args(argv[1:])
    if known.out is None:
        return None
    run_dir = known.out if known.num_processes == 1 else known.out / f"process-{known.process_id}"
    latest = run_dir / "checkpoints" / "latest.eqx"
    return str(latest) if latest.exists() else None


def _main(argv: list[str]) -> int:
    from . import _cli_train
    from ._registry import ALGORITHMS

    algo = _algo_of(argv)
    if algo not in ALGORITHMS:
        print(
            f"spar-eqx train: error: unknown --algo {algo!r}; choose one of: "
            f"{', '.join(ALGORITHMS)}.",
            file=sys.stderr,
        )
        return 2
    parser = _build_parser(algo)
    args, extra = parser.parse_known_args(argv)
    if extra:
        parser.error(_cli_train.unknown_flags_message(extra, algo, args.command))
    try:
        return int(args.run(args) or 0)
    except UserError as error:
        print(f"spar-eqx {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a path under a file, a permission: not a bug
        where = f" ({error.filename})" if error.filename else ""
        advice = (
            "the disk is full; free some space, then continue with --resume (checkpoints are "
            "written atomically, so the last one is intact)"
            if error.errno == errno.ENOSPC
            else "check the path and its permissions"
        )
        print(
            f"spar-eqx {args.command}: error: {error.strerror or error}{where}; {advice}.",
            file=sys.stderr,
        )
        return 2
    except TrainingError as error:
        print(f"spar-eqx {args.command}: training stopped: {error}", file=sys.stderr)
        return 3


def entry() -> None:
    """The `spar-eqx` console command: `main`, then exit with its code.

    After an interrupt (Ctrl-C: 130; SIGTERM: 143) the process leaves with `os._exit` once
    its output is flushed: letting the interpreter tear down XLA's threads after a
    `KeyboardInterrupt` can crash (a segmentation fault, exit 139) instead. Every file was
    closed by then.
    """
    import os

    code = main()
    if code in (130, 143):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
