"""Optional loggers beside `metrics.csv`: TensorBoard event files (`--logger tensorboard`,
through tensorboardX) and an offline Weights & Biases run (`--logger wandb`). Each receives
every row the run's log gains (losses per chunk and seed, evaluations), as it gains them."""

import importlib.util
from pathlib import Path
from typing import Any

LOGGERS = {
    # name: (module it needs, the extra that installs it, where it writes in the run folder)
    "tensorboard": ("tensorboardX", "tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb", "wandb"),
}
_LABELS = ("stage", "phase", "step", "seed", "point", "policy")


def check_loggers(names: tuple[str, ...]) -> None:
    """Refuse an unknown logger, or one whose package is not installed (before any file is
    written), with the command that installs it."""
    for name in names:
        if name not in LOGGERS:
            raise ValueError(f"unknown logger {name!r}; choose one of: {', '.join(LOGGERS)}.")
        module, extra, _ = LOGGERS[name]
        if importlib.util.find_spec(module) is None:
            raise ValueError(
                f"--logger {name} needs the {module} package, which is not installed; "
                f"install it with: pip install 'spar_eqx[{extra}]'."
            )


def _tag(row: dict[str, Any], metric: str) -> str:
    parts = [row["stage"], row.get("policy") or metric]
    if "point" in row:
        parts.append(f"point{row['point']}")
    parts.append(f"seed{row['seed']}")
    return "/".join(str(p) for p in parts)


def _scalars(row: dict[str, Any]) -> dict[str, float]:
    """The values of a log row by tag (`stage1/q_loss/seed0`, `final/spar/seed1`)."""
    if row.get("phase") == "eval":
        value = row["score"] if row.get("score") is not None else row["return"]
        return {_tag(row, "score"): float(value)}
    return {_tag(row, k): float(v) for k, v in row.items() if k not in _LABELS}


class RunLoggers:
    """The loggers of one run. `update(log)` forwards the rows `log` gained since the last
    call; `close()` flushes and closes them."""

    def __init__(self, names: tuple[str, ...], run_dir: Path, config: dict[str, Any], log=None):
        check_loggers(names)
        # Rows already in `log` (a resumed run's) were forwarded by the run that made them.
        self._seen = (len(log.losses), len(log.evals)) if log is not None else (0, 0)
        self._writers = []
        for name in names:
            folder = run_dir / LOGGERS[name][2]
            folder.mkdir(parents=True, exist_ok=True)
            if name == "tensorboard":
                from tensorboardX import SummaryWriter

                writer = SummaryWriter(str(folder))
                self._writers.append((writer.add_scalar, writer.close))
            else:
                import wandb

                run = wandb.init(mode="offline", dir=str(folder), project="spar_eqx", config=config)
                run.define_metric("*", step_metric="update")  # curves over updates, not rows
                self._writers.append((self._wandb_log(run), run.finish))

    @staticmethod
    def _wandb_log(run):
        def log(tag: str, value: float, step: int) -> None:
            run.log({tag: value, "update": step})

        return log

    def update(self, log) -> None:
        """Forward every row `log` (a `RunLog`) gained since the last call."""
        losses, evals = self._seen
        rows = [*log.losses[losses:], *log.evals[evals:]]
        self._seen = (len(log.losses), len(log.evals))
        for row in rows:
            for tag, value in _scalars(row).items():
                for write, _ in self._writers:
                    write(tag, value, int(row["step"]))

    def close(self) -> None:
        for _, close in self._writers:
            close()
