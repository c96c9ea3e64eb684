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
from ._log import RunLog

LATEST = "latest.eqx"


class RunCheckpoints:
    """`Trainer`'s periodic checkpoints and resume, kept apart from its training loop.

    It reads the trainer's `config`, `steps`, `ckpt_dir` and `resolution`, and calls its
    `skeleton` and `apply_resolution` (a checkpoint of a resolved run rebuilds the later
    stages the way the run resolved them).
    """

    def _header(self, **fields) -> dict[str, Any]:
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
        if "resolution" in header and self.resolution is None:
            self.apply_resolution(header["resolution"])
        stage = self.steps[header["phase"]].stage
        _, states = load_checkpoint(path, self.skeleton(stage))
        return header["phase"], header["step"], states, RunLog.from_json(header["log"])
