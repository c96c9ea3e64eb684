"""`spar-eqx diagnose`: the residual topology of a dataset under a BC anchor, and the SPAR
variant it calls for (Sec. 4.2, Figs. 2 and 4, Appendix C.2.6).

The anchor and critics come from a finished Stage I (`--anchor RUN_DIR`), or are fitted here
with the trainer's own data preparation and compiled chunk runner. Every option is checked
before any data is loaded; outputs are written only at the end, each atomically.
"""

import argparse
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from ._cli_diagnose_anchor import anchor_run, fit_anchor, load_anchor, residuals_and_q
from ._errors import UserError

DEFAULT_STEPS = 5000
DEFAULT_HIDDEN = 128
DEFAULT_STATES = 20_000
_CHUNK = 500  # updates per compiled call (and progress-bar tick) when fitting the anchor
FIGURES = {"residual_sizes": "residual_sizes.png", "residual_projection": "residual_projection.png"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `diagnose` options."""
    parser.add_argument(
        "--dataset", default=None, metavar="SOURCE",
        help="Minari id, folder, D4RL HDF5 file, or 'default' (default: 'default'; with "
        "--anchor, the run's own dataset)",
    )  # fmt: skip
    parser.add_argument(
        "--env",
        dest="env_id",
        metavar="ENV",
        help="environment id or D4RL dataset name (default: the dataset's)",
    )
    parser.add_argument(
        "--anchor", type=Path, metavar="RUN_DIR",
        help="a `spar-eqx train` SPAR run: use its Stage I anchor and critics "
        "(RUN_DIR/checkpoints/stage1.eqx) instead of fitting them here",
    )  # fmt: skip
    parser.add_argument(
        "--steps", type=int, default=None, metavar="N",
        help=f"Stage I updates of the anchor fitted here (default {DEFAULT_STEPS}; not with "
        "--anchor)",
    )  # fmt: skip
    parser.add_argument(
        "--hidden", type=int, default=None, metavar="H",
        help=f"hidden width of the anchor and critics fitted here (default {DEFAULT_HIDDEN}; "
        "not with --anchor)",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=0, metavar="S",
        help="seed of the fitted anchor and of every subsample (default 0)",
    )  # fmt: skip
    parser.add_argument(
        "--states", type=int, default=DEFAULT_STATES, metavar="N",
        help=f"dataset transitions the residuals are measured on, a deterministic subsample "
        f"(default {DEFAULT_STATES:,})",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the report as JSON here")
    parser.add_argument(
        "--figures", type=Path, metavar="DIR",
        help="write residual_sizes.png (Fig. 4) and residual_projection.png (Fig. 2) here "
        "(default: the folder of --json; no figures when neither is given)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


class _Plan(NamedTuple):
    """The checked options: what to load, fit and write."""

    anchor: Path | None
    checkpoint: Path | None
    run_config: Any  # the RunConfig of --anchor's run, or of the anchor fitted here
    process_count: int
    json_path: Path | None
    figures: Path | None


def _output_problem(path: Path, *, folder: bool) -> str | None:
    """Why `path` (a file, or with `folder` a directory) cannot be written (None: it can)."""
    if path.exists():
        if folder and not path.is_dir():
            return f"{path} exists and is not a folder"
        if not folder and path.is_dir():
            return f"{path} is a folder; give a file name such as {path / 'diagnose.json'}"
        if not os.access(path if folder else path.parent, os.W_OK):
            return f"{path if folder else path.parent} is not writable"
        return None
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is not a folder, so {path} cannot be created under it"
            if not os.access(parent, os.W_OK):
                return f"{parent} is not writable, so {path} cannot be created in it"
            return None
    return None


def _plan(args: argparse.Namespace) -> _Plan:
    """Check every option before anything is loaded; a `UserError` names the first bad one."""
    for name in ("steps", "hidden"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(
                f"--{name} must be at least 1, got {value}"
                + (" (the anchor needs updates to fit)." if name == "steps" else ".")
            )
        if value is not None and args.anchor is not None:
            raise UserError(
                f"--{name} sets the anchor fitted here, but --anchor uses the run's own; "
                f"drop --{name} or --anchor."
            )
    if not 0 <= args.seed < 2**31:
        raise UserError(f"--seed must lie in [0, 2**31), got {args.seed}.")
    if args.states < 100:
        raise UserError(
            f"--states must be at least 100 (the statistics need a sample), got {args.states}."
        )
    json_path, figures = args.json, args.figures
    if figures is None and json_path is not None:
        figures = json_path.parent
    for path, flag, folder in ((json_path, "--json", False), (figures, "--figures", True)):
        problem = None if path is None else _output_problem(path, folder=folder)
        if problem:
            raise UserError(f"{flag} {path}: {problem}; choose another path.")
    if args.anchor is not None:
        config, checkpoint, count = anchor_run(args.anchor)
        return _Plan(args.anchor, checkpoint, config, count, json_path, figures)
    from ._run_config import RunConfig

    steps = DEFAULT_STEPS if args.steps is None else args.steps
    chunk = min(_CHUNK, steps)
    try:
        config = RunConfig(
            algo="spar",
            dataset="default" if args.dataset is None else args.dataset,
            env_id=args.env_id,
            steps=(steps, 0),
            seeds=1,
            log_every=chunk,
            checkpoint_every=chunk,
        ).with_overrides({"anchor.width": args.hidden or DEFAULT_HIDDEN})
    except ValueError as error:
        raise UserError(str(error)) from None
    return _Plan(None, None, config, 1, json_path, figures)


def _other_dataset(args: argparse.Namespace, plan: _Plan):
    """With --anchor, a --dataset other than the run's (loaded first, so a missing one is
    refused before the run's data loads); None when the residuals use the run's own data."""
    same = args.dataset is None or (
        args.dataset == plan.run_config.dataset and args.env_id in (None, plan.run_config.env_id)
    )
    if plan.anchor is None or same:
        return None
    from .data import load_dataset

    try:
        return load_dataset(args.dataset, env_id=args.env_id)
    except ValueError as error:  # DatasetError
        raise UserError(str(error)) from None


def _check_fits(args: argparse.Namespace, dataset, trainer) -> None:
    """Refuse a --dataset whose shapes the run's anchor cannot act on."""
    t = dataset.transitions
    if (t.obs_dim, t.act_dim) != (trainer.obs_dim, trainer.act_dim):
        raise UserError(
            f"--dataset {args.dataset} has {t.obs_dim}-d observations and {t.act_dim}-d actions "
            f"but the anchor of --anchor {args.anchor} acts on {trainer.obs_dim} and "
            f"{trainer.act_dim}; give a dataset of the run's environment."
        )


def run(args: argparse.Namespace) -> int:
    """`spar-eqx diagnose`: report (and optionally write) the residual topology.

    **Returns:** 0. Raises `UserError` for a bad option, dataset or run folder, before
    anything is written.
    """
    from .diagnostics import (
        plot_residual_projection,
        plot_residual_sizes,
        random_pair_distances,
        residual_topology,
    )

    plan = _plan(args)
    import numpy as np

    from ._train._checkpoint import atomic_write
    from .diagnostics._sample import subsample

    other = _other_dataset(args, plan)
    if plan.anchor is not None:
        trainer, state, anchor = load_anchor(plan)
    else:
        trainer, state, anchor = fit_anchor(plan, args.seed, args.quiet)
    if other is not None:
        _check_fits(args, other, trainer)
    dataset = trainer.dataset if other is None else other
    source = plan.run_config.dataset if other is None else args.dataset
    t = dataset.transitions
    rows = subsample(t.num_transitions, args.states, np.random.SeedSequence([args.seed, 31]))
    residuals, q = residuals_and_q(state, trainer.normalizer, t.observations[rows], t.actions[rows])
    actions = np.asarray(t.actions[rows], np.float64)
    try:
        report = residual_topology(residuals, actions, seed=args.seed)
    except ValueError as error:
        raise UserError(f"--dataset {source}: {error}") from None

    how = (
        f"Stage I of {plan.anchor} (seed {anchor['seed']})"
        if anchor["source"] == "run"
        else f"fitted here ({anchor['steps']} steps, hidden {anchor['hidden']}, seed "
        f"{anchor['seed']}, final BC loss {anchor['final_bc_loss']:.4f})"
    )
    print(f"dataset: {dataset.name} ({t.num_transitions} transitions; residuals on {len(rows)})")
    print(f"anchor: {how}")
    print(report.summary())

    written = {}
    if plan.figures is not None:
        plan.figures.mkdir(parents=True, exist_ok=True)
        norms = np.linalg.norm(residuals, axis=1)
        pairs = random_pair_distances(np.asarray(t.actions, np.float64), seed=args.seed)
        label = f"{dataset.name}, anchor {'from ' + str(plan.anchor) if plan.anchor else 'fitted'}"
        written["residual_sizes"] = plot_residual_sizes(
            norms, pairs, plan.figures / FIGURES["residual_sizes"], title=label
        )
        written["residual_projection"] = plot_residual_projection(
            residuals, q, plan.figures / FIGURES["residual_projection"], title=label,
            seed=args.seed,
        )  # fmt: skip
    if plan.json_path is not None:
        payload = {
            **report.to_dict(),
            "dataset": dataset.name,
            "dataset_source": source,
            "env_id": dataset.env_id,
            "states": int(len(rows)),
            "anchor": anchor,
            "figures": {k: str(v) for k, v in written.items()},
        }
        plan.json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(plan.json_path, json.dumps(payload, indent=2) + "\n")
        print(f"wrote {plan.json_path}")
    for path in written.values():
        print(f"wrote {path}")
    return 0
