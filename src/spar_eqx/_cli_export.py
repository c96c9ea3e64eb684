"""`spar-eqx export`: one seed's policy of a finished run, to a single self-contained file."""

import argparse

from ._errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `export` options."""
    parser.add_argument("run_dir", metavar="RUN_FOLDER", help="the --out folder of a finished run")
    parser.add_argument(
        "--out", required=True, metavar="FILE", help="the policy file to write (e.g. policy.eqx)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="N", help="which of the run's seeds (default: 0)"
    )
    parser.add_argument(
        "--policy",
        metavar="NAME",
        help="which of the run's policies: spar, spar_no_gate, base, or a baseline's name "
        "(default: the algorithm's own)",
    )
    parser.add_argument(
        "--point", type=int, default=0, metavar="N", help="which grid point of a --sweep run"
    )


def run(args: argparse.Namespace) -> int:
    """Export, then say what was written and how to load it."""
    from ._deploy import export_policy

    try:
        header = export_policy(args.run_dir, args.out, args.seed, args.policy, point=args.point)
    except ValueError as error:  # PolicyFileError and a run folder's problems included
        raise UserError(str(error)) from error
    print(
        f"wrote {args.out}: {header['label']} policy {header['policy']!r}, seed "
        f"{header['seed']}, for {header['env_id']} ({header['obs_dim']}-d observations, "
        f"{header['act_dim']}-d actions); load it with spar_eqx.load_policy({str(args.out)!r})."
    )
    return 0
