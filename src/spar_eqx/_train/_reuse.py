"""`--stage1-from`: a run's later stages started from another run's finished first stage.

Tables 4, 12 and 13 of the paper train many Stage II variants on one anchor. Every run trains
its own Stage I, to the same bits as any other run with the same Stage I (its keys are
functions of the seed, the phase and the update only), so a run may take a finished run's
first stage instead: the same states, and that stage's rows of the log. It is allowed only
where the two runs would have trained the first stage alike: the same data (its
fingerprint), algorithm, seeds, first-stage budget, batch size, chunk length (`log_every`,
which the keys depend on), reward transform and action rescaling, and first-stage learners
equal at every grid point (so Stage II settings and a sweep of them may differ, the anchor's
and critics' may not).
"""

from pathlib import Path
from typing import Any

import equinox as eqx

from .._hyper import replace, to_dict
from ._checkpoint import load_checkpoint, read_header
from ._fingerprint import dataset_problem
from ._folder import CHECKPOINTS, stored_config
from ._log import RunLog
from ._resume import LATEST
from ._run import Trainer

_ADVICE = "give --stage1-from the folder of a finished first stage (a `spar-eqx train` run)."
_LABELS = ("seed", "point")


def first_stage_from(trainer: Trainer, source: Path) -> tuple[int, int, Any, RunLog]:
    """Where this run continues from when its first stage is `source`'s: the end of that
    stage's last phase, with `source`'s states and its log rows of that stage.

    **Arguments:**

    - `trainer`: this run's `Trainer`, its data prepared and its learners built.
    - `source`: the folder of a single-process run of the same algorithm whose first stage
      has finished (its `checkpoints/stage1.eqx` exists).

    **Returns:** `(phase, step, states, log)`, what `Trainer.run(restored=...)` takes; the
    trainer then evaluates the first stage's policies and trains the later stages as a run
    resumed at that point would.

    Reads only. Raises `ValueError` naming what `source` is instead, or the first setting
    the two runs disagree on.
    """
    stages = trainer.algorithm.stages
    ours = trainer.config
    if len(stages) < 2:
        raise ValueError(
            f"--stage1-from starts a run's later stages from another run's first stage; "
            f"--algo {ours.algo} has one stage only. Leave --stage1-from out."
        )
    source = Path(source)
    theirs = stored_config(source, _ADVICE)
    if (source / "process-0").exists():
        raise ValueError(
            f"--stage1-from {source}: a run of several processes keeps its seeds in "
            "separate folders; give a single-process run."
        )
    path = source / CHECKPOINTS / "stage1.eqx"
    if not path.exists():
        raise ValueError(
            f"{source} has not finished its first stage ({path} is missing); " + _ADVICE
        )
    header = read_header(path)
    problem = dataset_problem(
        header.get("dataset_fingerprint"), trainer.fingerprint, path, ours.dataset
    )
    if problem:
        raise ValueError(problem)
    for name, mine, other in (
        ("--algo", ours.algo, theirs.algo),
        ("--seeds", ours.seeds, theirs.seeds),
        (f"--{stages[0]}-steps", ours.steps[0], theirs.steps[0]),
        ("--batch-size", ours.batch_size, theirs.batch_size),
        ("--log-every", ours.log_every, theirs.log_every),
        ("--reward-transform", ours.reward_transform, theirs.reward_transform),
        ("--rescale-actions", ours.rescale_actions, theirs.rescale_actions),
    ):
        if mine != other:
            raise ValueError(_disagree(source, f"{name} {other}", f"{name} {mine}"))
    other_trainer = Trainer(theirs, source, progress=False)
    other_trainer.obs_dim, other_trainer.act_dim = trainer.obs_dim, trainer.act_dim
    other_trainer.build()
    if not _same_learners(other_trainer.learners[0], trainer.learners[0]):
        raise ValueError(_disagree(source, *_first_stage_difference(trainer, theirs)))
    _, states = load_checkpoint(path, trainer.skeleton(0))
    return (*_end_of_first_stage(trainer), states, _first_stage_log(trainer, other_trainer))


def _same_learners(a, b) -> bool:
    return bool(eqx.tree_equal(a, b))


def _disagree(source: Path, theirs: str, ours: str) -> str:
    return (
        f"--stage1-from {source}: its first stage was trained with {theirs}, this run's would "
        f"be trained with {ours}; a first stage is reused only where this run would train it "
        "alike. Give the same settings, or train this run's own first stage."
    )


def _first_stage_difference(trainer: Trainer, theirs) -> tuple[str, str]:
    """The hyperparameters whose values change the first stage's learner (`theirs` with one
    of ours changes it), or the sweeps when no single value does."""
    build = trainer.algorithm.build

    def first(hyper):
        return build(hyper, trainer.obs_dim, trainer.act_dim)[0]

    mine, other = _flat(to_dict(trainer.hyperparameters)), _flat(to_dict(theirs.hyperparameters))
    reference = first(theirs.hyperparameters)

    def changes_first(path):
        try:
            changed = replace(theirs.hyperparameters, {path: mine[path]})
        except ValueError:  # not a valid config on its own: it takes other values with it
            return True
        return not _same_learners(first(changed), reference)

    changed = [p for p in sorted(mine) if mine[p] != other.get(p) and changes_first(p)]
    if changed:
        return (", ".join(f"{p}={other[p]!r}" for p in changed),
                ", ".join(f"{p}={mine[p]!r}" for p in changed))  # fmt: skip
    return f"--sweep {list(theirs.sweep)}", f"--sweep {list(trainer.config.sweep)}"


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _end_of_first_stage(trainer: Trainer) -> tuple[int, int]:
    """The index of the first stage's last phase, and that phase's length."""
    last = max(i for i, step in enumerate(trainer.steps) if step.stage == 0)
    return last, trainer.steps[last].phase.steps


def _first_stage_log(trainer: Trainer, other: Trainer) -> RunLog:
    """`other`'s log rows of the first stage, labelled with this run's grid points.

    The end-of-stage evaluation is left out: the run makes it again when it continues (as a
    run resumed at that point does). A source grid point's rows go to each of this run's grid
    points that share its first-stage group; with the same sweep they are copied as they are.
    """
    latest = other.ckpt_dir / LATEST
    log = read_header(latest).get("log")
    if not isinstance(log, dict):
        raise ValueError(f"{latest} records no log; {_ADVICE}")
    first, budget = trainer.algorithm.stages[0], trainer.config.steps[0]
    ours, theirs = trainer.stage_layouts[0], other.stage_layouts[0]
    targets: dict[tuple, list[dict[str, int]]] = {}
    for point, group in enumerate(ours.group_of):
        for seed in trainer.seed_ids:
            source_label = other._label(theirs.points[group], seed)
            targets.setdefault(_key(source_label), []).append(trainer._label(point, seed))

    def relabel(rows, keep):
        out = []
        for row in rows:
            if row.get("stage") == first and keep(row):
                out += [_relabelled(row, label) for label in targets.get(_key(row), [])]
        return out

    return RunLog(
        relabel(log.get("losses", []), lambda row: True),
        relabel(log.get("evals", []), lambda row: row.get("step", budget) < budget),
    )


def _relabelled(row: dict[str, Any], label: dict[str, int]) -> dict[str, Any]:
    """`row` with `label`'s seed and grid point, its columns in their order."""
    out = {k: label.get(k, v) for k, v in row.items() if k in label or k not in _LABELS}
    return out | {k: v for k, v in label.items() if k not in out}


def _key(label: dict[str, Any]) -> tuple:
    return tuple(label.get(name) for name in _LABELS)
