"""`Trainer`'s checkpoints: what each records, and resuming from the last good one
(`RunCheckpoints`, a base class of `Trainer`)."""

import sys
from pathlib import Path
from typing import Any

from .._errors import CheckpointError
from ._checkpoint import (
    ForeignCheckpointError,
    load_checkpoint,
    previous_path,
    read_header,
    save_checkpoint,
)
from ._fingerprint import dataset_problem
from ._log import RunLog

LATEST = "latest.eqx"


class RunCheckpoints:
    """`Trainer`'s periodic checkpoints and resume, kept apart from its training loop.

    It reads the trainer's `config`, `algorithm`, `hyperparameters`, `grid`, `steps`,
    `ckpt_dir`, `resolution`, `first_stage_from` and `fingerprint` (the training data's,
    `_fingerprint`), and calls its `build`, `skeleton` and `apply_resolution` (a checkpoint
    of a resolved run rebuilds the later stages the way the run resolved them).
    """

    def _header(self, **fields) -> dict[str, Any]:
        fields = {**fields, "dataset_fingerprint": self.fingerprint}
        if self.first_stage_from is not None:  # `--stage1-from`: where the first stage came from
            fields["first_stage_from"] = self.first_stage_from
        return fields if self.resolution is None else {**fields, "resolution": self.resolution}

    def _save(self, name: str, step_index: int, step: int, states, log: RunLog) -> None:
        header = self._header(
            phase=step_index,
            stage=self.steps[step_index].stage,
            step=step,
            config=self.config.to_dict(),
            log=log.to_json(),
        )
        save_checkpoint(self.ckpt_dir / name, header, states, keep_previous=True)

    def restore_if_any(self):
        """`(phase, step, states, log)` from the last good checkpoint (`_restore`), or None
        when the run has none yet. Reads and checks only: nothing is written."""
        if not (self.ckpt_dir / LATEST).exists():
            return None
        return self._restore()

    def _restore(self):
        """The last good checkpoint: `latest.eqx`, or the one it replaced if it is damaged."""
        path = self.ckpt_dir / LATEST
        try:
            return self._restore_from(path)
        except CheckpointError as error:
            fallback = previous_path(path)
            if isinstance(error, ForeignCheckpointError) or not fallback.exists():
                raise  # an intact checkpoint of another state: the one before is no better
            print(
                f"spar-eqx: {error} Resuming from the checkpoint before it, {fallback}.",
                file=sys.stderr,
            )
            return self._restore_from(fallback)

    def _restore_from(self, path: Path):
        header = read_header(path)
        if header.get("config") != self.config.to_dict():
            raise ValueError(
                f"{path} was written by a run with a different configuration; resume with the "
                "same options, or start afresh in an empty folder."
            )
        self._check_fingerprint(path, header)
        if isinstance(header.get("first_stage_from"), str):
            self.first_stage_from = header["first_stage_from"]
        if "resolution" in header and self.resolution is None:
            self.apply_checkpoint_resolution(path, header["resolution"])
        phase, step = self._check_position(path, header)
        log = header.get("log")
        if not _is_log(log):
            raise _damaged(path, "log", log, "{'losses': [rows], 'evals': [rows]}")
        _, states = load_checkpoint(path, self.skeleton(self.steps[phase].stage))
        return phase, step, states, RunLog.from_json(log)

    def apply_checkpoint_resolution(self, path: Path, resolution: Any) -> None:
        """`apply_resolution` of the `resolution` a checkpoint's header recorded, refused as a
        damaged checkpoint (`CheckpointError`) when it is not one this run could have made."""
        overrides = resolution.get("overrides") if isinstance(resolution, dict) else None
        if not isinstance(overrides, dict):
            raise _damaged(path, "resolution", resolution, "{'overrides': {...}, ...}")
        if not self.algorithm.unresolved(self.hyperparameters):
            expected = f"none: this {self.config.algo} run's options leave nothing to resolve"
            raise _damaged(path, "resolution", resolution, expected)
        before = self.hyperparameters, self.grid
        try:
            self.apply_resolution(resolution)
            if self.algorithm.unresolved(self.hyperparameters):
                raise ValueError("it leaves the run unresolved")
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            self.resolution = None
            if self.hyperparameters is not before[0]:
                self.hyperparameters, self.grid = before
                self.build()
            reason = f"one this run accepts ({error})"
            raise _damaged(path, "resolution", resolution, reason) from None

    def _check_position(self, path: Path, header: dict[str, Any]) -> tuple[int, int]:
        """The header's `phase` and `step`, checked against this run's phases."""
        phase, step, stage = header.get("phase"), header.get("step"), header.get("stage")
        phases = len(self.steps)
        if type(phase) is not int or not 0 <= phase < phases:
            raise _damaged(path, "phase", phase, f"a phase index in [0, {phases})")
        length = self.steps[phase].phase.steps
        if type(step) is not int or not 0 <= step <= length:
            raise _damaged(path, "step", step, f"an update count in [0, {length}]")
        if stage != self.steps[phase].stage:
            expected = f"phase {phase}'s stage, {self.steps[phase].stage}"
            raise _damaged(path, "stage", stage, expected)
        return phase, step

    def _check_fingerprint(self, path: Path, header: dict[str, Any]) -> None:
        """Refuse a checkpoint of a run trained on other data (`dataset_problem`)."""
        recorded = header.get("dataset_fingerprint")
        problem = dataset_problem(recorded, self.fingerprint, path, self.config.dataset)
        if problem:
            raise ValueError(problem)


def _is_log(log: Any) -> bool:
    """Whether `log` is what `RunLog.to_json` writes: lists of rows keyed by name."""
    if not (isinstance(log, dict) and all(isinstance(log.get(k), list) for k in _LOG_KEYS)):
        return False
    rows = [row for k in _LOG_KEYS for row in log[k]]
    return all(isinstance(row, dict) and all(isinstance(n, str) for n in row) for row in rows)


_LOG_KEYS = ("losses", "evals")


def _damaged(path: Path, field: str, value: Any, expected: str) -> CheckpointError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return CheckpointError(
        f"checkpoint {path} is damaged: its header's {field!r} is {shown}, expected {expected}."
    )
