"""Every error type a user of `spar_eqx` meets, at the bottom of the import graph.

The command line, the trainer and the data modules all import from here; this module
imports nothing of ours, so none of them needs to import upwards.
"""


class UserError(Exception):
    """A problem with what the user asked for: the CLI prints it as one line and exits 2."""


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss): the message names the stage, phase and step."""


class CheckpointError(ValueError):
    """A checkpoint file is damaged (unreadable, truncated, bit-flipped) or not this run's."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C (SIGINT) or SIGTERM: `signum` says which, `checkpoint` the
    checkpoint it can be resumed from (None when it had written none). The CLI exits with
    128 + `signum` (130, 143)."""

    def __init__(self, signum: int, checkpoint: str | None = None):
        super().__init__(signum, checkpoint)
        self.signum = signum
        self.checkpoint = checkpoint


class PolicyFileError(CheckpointError):
    """A policy file (`spar_eqx.export_policy`) that cannot be loaded: damaged, not a policy
    file, or written by a spar_eqx whose policies this one cannot rebuild."""
