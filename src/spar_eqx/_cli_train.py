"""`spar-eqx train`, generated from the algorithm registry, and the run summary that `train`
and `evaluate` print.

Each algorithm's hyperparameter flags come from its config's `hyper` fields, so a new
algorithm needs no line here.
"""

import argparse
import dataclasses
from pathlib import Path

from ._budgets import BUDGETS, budget_overrides
from ._errors import UserError
from ._presets import PRESETS
from ._registry import ALGORITHMS
from ._run_config import RunConfig, flag_table, sweep_key, sweep_names

# Run-level options: (flag, RunConfig field, type, help).
_RUN_OPTIONS = [
    ("--reward-transform", "reward_transform", str, "'none', 'locomotion' or 'antmaze' "
     "(default: the algorithm's convention)", "NAME"),
    ("--eval-max-episode-steps", "eval_max_episode_steps", int, "cap on evaluation episodes",
     "STEPS"),
    ("--log-every", "log_every", int, "updates per compiled call and log row (1000)", "STEPS"),
    ("--checkpoint-every", "checkpoint_every", int, "updates between checkpoints (5000)",
     "STEPS"),
]  # fmt: skip


def _dest(flag: str) -> str:
    return "hp_" + sweep_key(flag)


def _bool(text: str) -> bool:
    if text.lower() in ("true", "on", "yes", "1"):
        return True
    if text.lower() in ("false", "off", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _budget_flags(algo: str) -> list[tuple[str, str]]:
    """`(flag, stage)` for each stage's step budget: `--steps`, or `--<stage>-steps`."""
    stages = ALGORITHMS[algo].stages
    if len(stages) == 1:
        return [("--steps", stages[0])]
    return [(f"--{stage}-steps", stage) for stage in stages]


def add_train_arguments(parser: argparse.ArgumentParser, algo: str = "spar") -> None:
    """The `train` options: common ones, then `algo`'s budgets and hyperparameters."""
    parser.add_argument(
        "--config", type=Path, default=None, metavar="FILE",
        help="start from a run's config.json or a TOML file of the same settings; the "
        "options given here override it",
    )  # fmt: skip
    parser.add_argument(
        "--algo", default=None, choices=tuple(ALGORITHMS),
        help="the algorithm to train (default: spar, or --config's); see the list below",
    )  # fmt: skip
    parser.add_argument(
        "--dataset", default=None, metavar="DATASET",
        help="Minari id, folder, D4RL HDF5 file, ogbench:<single-task dataset>, or 'default' "
        "(the embedded dataset, the default)",
    )  # fmt: skip
    parser.add_argument(
        "--env", dest="env_id", metavar="ENV_ID",
        help="the environment to evaluate in: a gymnasium id (AntMaze_UMaze-v4) or a D4RL "
        "dataset name (antmaze-umaze-diverse-v2, pen-cloned-v1); default: the dataset's",
    )  # fmt: skip
    parser.add_argument(
        "--rescale-actions", action="store_true", default=None,
        help="map the dataset's recorded action bounds linearly onto the environment's action "
        "space when they differ (otherwise such a dataset is refused)",
    )  # fmt: skip
    parser.add_argument(
        "--preset", choices=("auto", *PRESETS), metavar="TASK",
        help="a task's published settings: SPAR's Table 8, or the baseline's own values for "
        "the task's domain where its paper gives them; 'auto' takes the preset named after "
        f"the dataset's task, OGBench's included ({', '.join(PRESETS)})",
    )  # fmt: skip
    parser.add_argument(
        "--out", required=True, type=Path, metavar="FOLDER",
        help="output folder (empty, or --resume)",
    )  # fmt: skip
    flags = set(flag_table(algo))
    parser.add_argument(
        "--budget", choices=tuple(BUDGETS), default=None,
        help="a named budget (explicit flags override what it sets): "
        + "; ".join(f"{b.name}: {b.summary(algo, flags)}" for b in BUDGETS.values())
        + ". 'paper' is the paper's protocol and the default (hours to days on a CPU); "
        "'quick' is the README's main job (minutes on a CPU)",
    )  # fmt: skip
    for flag, stage in _budget_flags(algo):
        parser.add_argument(
            flag, type=int, default=None, dest=f"steps_{stage}", metavar="STEPS",
            help=f"updates of {stage} (default: the budget's; 1,000,000 for paper)",
        )  # fmt: skip
    parser.add_argument(
        "--seeds", type=int, default=None, metavar="K", help="run seeds 0..K-1 together (3)"
    )
    parser.add_argument(
        "--sweep", action="append", default=[], metavar="NAME=V1,V2,...",
        help="a grid of a float hyperparameter, trained with the seeds in one compile "
        "(repeat for a product grid); NAME is a flag without its dashes, e.g. lambda_g",
    )  # fmt: skip
    parser.add_argument(
        "--eval-episodes", type=int, default=None, metavar="N",
        help="episodes per seed and policy (10)",
    )  # fmt: skip
    parser.add_argument(
        "--eval-every", type=int, default=None, metavar="STEPS",
        help="updates between evaluations (0: stage ends)",
    )  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument(
        "--stage1-from", type=Path, default=None, metavar="RUN",
        help="take the finished first stage of the run in folder RUN instead of training one "
        "(refused unless RUN trained it exactly as this run would: same data, seeds, "
        "first-stage settings and budget); the later stages are trained from it",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--logger", action="append", default=[], choices=("tensorboard", "wandb"),
        help="also log every metrics.csv row to TensorBoard (RUN/tensorboard, needs "
        "spar_eqx[tensorboard]) or an offline Weights & Biases run (RUN/wandb, needs "
        "spar_eqx[wandb]); repeat for both",
    )  # fmt: skip
    for flag, field, kind, text, metavar in _RUN_OPTIONS:
        parser.add_argument(
            flag, type=kind, default=None, help=text, dest=f"run_{field}", metavar=metavar
        )
    dist = parser.add_argument_group("several processes (jax.distributed; seeds split evenly)")
    dist.add_argument(
        "--coordinator", metavar="HOST:PORT",
        help="the address of process 0, the same for every process",
    )  # fmt: skip
    dist.add_argument(
        "--num-processes", type=int, default=1, metavar="N", help="processes in the run (1)"
    )
    dist.add_argument(
        "--process-id", type=int, default=0, metavar="I", help="this process's index (0)"
    )
    dist.add_argument(
        "--coordinator-timeout", type=int, default=300, metavar="SECONDS",
        help="seconds for every process to join before the run is refused (300)",
    )  # fmt: skip
    entry = ALGORITHMS[algo]
    group = parser.add_argument_group(
        f"hyperparameters of --algo {algo} ({entry.summary}); "
        f"floats marked * can be given to --sweep"
    )
    sweepable = set(sweep_names(algo))
    for flag, fields in flag_table(algo).items():
        first = fields[0]
        kind = _bool if first.kind is bool else first.kind
        star = "*" if sweep_key(flag) in sweepable else ""
        group.add_argument(
            flag,
            type=kind,
            default=None,
            nargs="?" if first.kind is bool else None,  # a bare boolean flag means true
            const=True if first.kind is bool else None,
            choices=first.choices,
            help=f"{first.help} (default: {first.default}){star}",
            dest=_dest(flag),
            metavar=None if first.choices else first.kind.__name__.upper(),
        )


def algorithms_epilog() -> str:
    """The list of algorithms and their flags, for `train --help`."""
    lines = ["algorithms (spar-eqx train --algo NAME --help shows NAME's flags and defaults):"]
    for name, entry in ALGORITHMS.items():
        budgets = " ".join(flag for flag, _ in _budget_flags(name))
        lines.append(f"  {name:<8} {entry.summary}")
        lines.append(f"  {'':<8} budget: {budgets}; flags: {' '.join(flag_table(name))}")
    return "\n".join(lines)


def _train_flags(algo: str) -> set[str]:
    """Every option `spar-eqx train --algo algo` accepts."""
    parser = argparse.ArgumentParser(add_help=False)
    add_train_arguments(parser, algo)
    return {flag for action in parser._actions for flag in action.option_strings}


def unknown_flags_message(extra: list[str], algo: str, command: str) -> str:
    """Why `extra` was refused: another algorithm's flag, or no flag at all."""
    flags = [x.split("=", 1)[0] for x in extra if x.startswith("--")]
    for flag in flags:
        owners = [name for name in ALGORITHMS if name != algo and flag in _train_flags(name)]
        if owners and command == "train":
            return (
                f"{flag} is not an option of --algo {algo} (it belongs to "
                f"{', '.join(sorted(set(owners)))}); see spar-eqx train --algo {algo} --help."
            )
    return f"unrecognized arguments: {' '.join(extra)}"


def _parse_sweep(items: list[str]) -> tuple[tuple[str, tuple[float, ...]], ...]:
    sweep = []
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name or not values:
            raise UserError(f"--sweep {item!r}: expected NAME=V1,V2,... (e.g. lambda_g=0.1,0.5).")
        try:
            parsed = tuple(float(v) for v in values.split(","))
        except ValueError as error:
            raise UserError(f"--sweep {item!r}: every value must be a number ({error}).") from None
        sweep.append((name, parsed))
    return tuple(sweep)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Defaults (or the `--config` file), then the budget, then the preset, then every flag
    given explicitly.

    Without `--config` the budget is `paper` unless `--budget` names another; with it, the
    file's settings stand unless `--budget` is given too.
    """
    base = None
    if getattr(args, "config", None) is not None:
        try:
            base = RunConfig.from_file(args.config)
        except ValueError as error:
            raise UserError(f"--config {error}") from None
        if args.algo is not None and args.algo != base.algo:
            raise UserError(
                f"--config {args.config} trains --algo {base.algo}, not {args.algo}; leave "
                "--algo out to train what the file says, or edit its algo."
            )
    algo = base.algo if base is not None else (args.algo or "spar")
    start = base if base is not None else RunConfig(algo=algo)
    run = {
        field: getattr(args, f"run_{field}")
        for _, field, *_ in _RUN_OPTIONS
        if getattr(args, f"run_{field}") is not None
    }
    stages = ALGORITHMS[algo].stages
    table = flag_table(algo)
    budget_name = args.budget or (None if base is not None else "paper")
    budget = (
        budget_overrides(budget_name, algo, set(table), len(stages))
        if budget_name
        else {"steps": start.steps, "flags": {}}
    )
    given_steps = [getattr(args, f"steps_{stage}") for stage in stages]
    explicit = {
        "seeds": args.seeds, "eval_episodes": args.eval_episodes, "eval_every": args.eval_every,
    }  # fmt: skip
    given = {
        "dataset": args.dataset, "env_id": args.env_id, "rescale_actions": args.rescale_actions,
    }  # fmt: skip
    config = dataclasses.replace(
        start,
        steps=tuple(
            s if s is not None else b for s, b in zip(given_steps, budget["steps"], strict=True)
        ),
        **{k: v for k, v in given.items() if v is not None},
        **{k: budget[k] for k in explicit if k in budget}
        | {k: v for k, v in explicit.items() if v is not None},
        **{k: run.pop(k) for k in ("log_every", "checkpoint_every") if k in run},
    )
    # The budget's flags come before the preset, so a preset's value for a field wins.
    config = config.with_overrides(
        {h.path: value for flag, value in budget["flags"].items() for h in table[flag]}
    )
    overrides = {}
    for flag, fields in table.items():
        value = getattr(args, _dest(flag))
        if value is not None:
            overrides.update({h.path: value for h in fields})
    if args.preset and algo == "spar":
        # The preset needs the critic bootstrap the flags ask for (its tau goes with it).
        q_target = overrides.get("anchor.q_target", config.hyperparameters.anchor.q_target)
        config = config.with_overrides({"anchor.q_target": q_target}).with_preset(args.preset)
    elif args.preset:
        config = config.with_preset(args.preset)
    sweep = {"sweep": _parse_sweep(args.sweep)} if args.sweep or base is None else {}
    return config.with_overrides({**overrides, **run, **sweep})


def run_train(args: argparse.Namespace) -> int:
    from ._train import train

    try:
        config = config_from_args(args)
        results = train(
            config,
            args.out,
            resume=args.resume,
            progress=not args.quiet,
            coordinator=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
            coordinator_timeout=args.coordinator_timeout,
            loggers=tuple(dict.fromkeys(args.logger)),
            stage1_from=args.stage1_from,
        )
    except ValueError as error:  # bad options, datasets and folders: DatasetError included
        raise UserError(str(error)) from error
    print_summary(results)
    return 0


def print_summary(results: dict) -> None:
    """Per policy (and grid point): the mean with its 95% bootstrap interval and the per-seed
    scores, the paired differences with theirs, then the diagnostics, then how fast the
    evaluation ran."""
    points = results.get("sweep") or [{"params": None, **results}]
    for point in points:
        if point["params"] is not None:
            print("grid point " + ", ".join(f"{k}={v:g}" for k, v in point["params"].items()))
        _print_point(point)
    timing = results.get("evaluation")
    if timing:
        print(
            f"evaluation: {timing['env_steps']:,} environment steps in {timing['seconds']:.1f} s "
            f"({timing['env_steps_per_s']:,.0f} steps/s)"
        )


def _print_point(record: dict) -> None:
    import numpy as np

    from ._intervals import mean_interval

    kind = "scores" if all(v is not None for v in record["scores"].values()) else "returns"
    # A record from before intervals were kept: intervals over seeds alone.
    intervals = record.get("score_intervals") or {
        name: mean_interval(np.asarray(v, np.float64)).record() for name, v in record[kind].items()
    }
    print(f"{'policy':<14}{'mean':>9}   {'95% interval':<18} per seed ({kind})")
    for name, values in record[kind].items():
        i = intervals[name]
        per_seed = " ".join(f"{v:.1f}" for v in values)
        span = f"[{i['low']:.1f}, {i['high']:.1f}]"
        print(f"{name:<14}{i['mean']:>9.1f}   {span:<18} {per_seed}")
    differences = record.get("paired_differences", {})
    if differences:
        print("paired differences (same seeds and evaluation episodes), 95% interval:")
    for pair, d in differences.items():
        higher = pair.split(" - ")[0 if d["mean"] > 0 else 1]
        if d["excludes_zero"]:
            verdict = f"excludes 0: {higher} scores higher"
        elif d["low"] > 0 or d["high"] < 0:
            verdict = "one seed: not resolved (an interval across seeds needs several)"
        else:
            verdict = "includes 0: not resolved (more seeds or episodes would narrow it)"
        span = f"[{d['low']:+.1f}, {d['high']:+.1f}]"
        print(f"  {pair:<20}{d['mean']:>+8.1f}   {span:<18} {verdict}")
    for name, values in record.get("success_rate", {}).items():
        per_seed = " ".join(f"{v:.2f}" for v in values)
        print(f"success rate of {name}: {np.mean(values):.2f}   per seed {per_seed}")
    support = record.get("support_distance_ratio", {})
    missing = record.get("not_available", {})
    if support:
        ratios = ", ".join(
            f"{name} {np.mean(v):.2f}" if v is not None else f"{name} not available"
            for name, v in support.items()
        )
        print(f"support-distance ratio (q95, 1 = the data's own boundary): {ratios}")
    for reason in sorted(set(missing.values())):
        print(f"not available: {reason}")
    for name, values in record.get("diagnostics", {}).items():
        print(f"{name.replace('_', ' ')} on dataset states: {np.mean(values):.3f}")
    for policy, reports in record.get("episodes", {}).items():
        for name, values in reports.items():
            per_seed = " ".join(f"{v:.3f}" for v in values)
            print(
                f"{name.replace('_', ' ')} along {policy}'s episodes: {np.mean(values):.3f}"
                f"   per seed {per_seed}"
            )
