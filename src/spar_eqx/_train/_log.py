"""The run's record: loss and evaluation rows, `metrics.csv`, `results.json` and the plot."""

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from .._intervals import mean_interval
from ._checkpoint import atomic_write


class RunLog:
    """Rows of training metrics (per logging chunk and seed) and of evaluations."""

    def __init__(self, losses: list[dict] | None = None, evals: list[dict] | None = None):
        self.losses = losses or []
        self.evals = evals or []

    def add_losses(
        self,
        stage,
        phase,
        step,
        runs,
        metrics: dict[str, np.ndarray],
        sparse: Mapping[str, str] = MappingProxyType({}),
    ) -> None:
        """`metrics[name]` is `(chunk_steps, len(runs))`: a row per run, averaged over steps.

        Each of `runs` labels its row: `{"seed": s}`, plus `"point"` with a sweep. A metric
        in `sparse` (`Phase.sparse_metrics`: metric -> its 0/1 flag metric) is averaged over
        the steps its flag marks, and left out of a row whose chunk has none of them.
        """
        for i, label in enumerate(runs):
            row = {"stage": stage, "phase": phase, "step": step, **label}
            for name, values in sorted(metrics.items()):
                column = values[:, i]
                if name in sparse:
                    column = column[metrics[sparse[name]][:, i] > 0]
                    if column.size == 0:
                        continue
                row[name] = float(np.mean(column))
            self.losses.append(row)

    def add_eval(self, stage, policy, step, label, mean_return, mean_score) -> None:
        self.evals.append(
            {
                "stage": stage,
                "phase": "eval",
                "step": int(step),
                **{k: int(v) for k, v in label.items()},
                "policy": policy,
                "return": float(mean_return),
                "score": None if mean_score is None else float(mean_score),
            }
        )

    def postfix(self) -> dict[str, str]:
        out = {}
        if self.losses:
            last = self.losses[-1]
            for key in ("bc_loss", "q_loss", "loss"):
                if key in last:
                    out[key] = f"{last[key]:.3g}"
        if self.evals:
            last = self.evals[-1]
            value = last["score"] if last["score"] is not None else last["return"]
            out[f"{last['policy']}"] = f"{value:.1f}"
        return out

    def to_json(self) -> dict[str, Any]:
        return {"losses": self.losses, "evals": self.evals}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunLog":
        return cls(list(data["losses"]), list(data["evals"]))

    def write(self, out: Path, results: dict[str, Any]) -> None:
        out = Path(out)
        rows = self.losses + self.evals
        # Labels first, then the quantities by name: the same columns in the same order
        # whether or not the run was resumed (a resumed log's rows come back from JSON).
        present = {k for row in rows for k in row}
        fields = [k for k in _LABELS if k in present]
        fields += sorted(present - set(fields))
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        # Each file is replaced whole (a kill leaves the old one or the new one); the results
        # come last, so a run with a results.json has its metrics and plot too.
        atomic_write(out / "metrics.csv", table.getvalue())
        image = io.BytesIO()
        plot_learning_curves(self, image, title=_title(results))
        atomic_write(out / "learning_curve.png", image.getvalue())
        atomic_write(out / "results.json", json.dumps(results, indent=2))


def _title(results: dict[str, Any]) -> str:
    return f"{results['label']} on {results['dataset']} ({len(results['seeds'])} seeds)"


_LABELS = ("stage", "phase", "step", "seed", "point", "policy")


def plot_learning_curves(log: RunLog, path, title: str = "") -> None:
    """Write `learning_curve_figure(log, title)` to `path` as a PNG."""
    import matplotlib.pyplot as plt

    fig = learning_curve_figure(log, title)
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)


def learning_curve_figure(log: RunLog, title: str = ""):
    """The evaluations first, then one panel per logged quantity (mean over seeds, per phase).

    The evaluation panel shows each policy's D4RL-normalised score (or return, without
    reference scores): the mean over seeds with its 95% percentile bootstrap interval over
    seeds (`spar_eqx.mean_interval`) as error bars and a band, one line per grid point in a
    sweep,
    and the final score of the anchor (`"base"`), when there is one, as a dashed level to beat.
    A loss spanning more than two decades is drawn on a log scale; anything narrower stays
    linear, where every tick is labelled.

    **Returns:** the matplotlib `Figure` (Agg backend); the caller closes it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys: list[str] = []
    for row in log.losses:
        keys.extend(k for k in row if k not in _LABELS and k not in keys)
    panels = len(keys) + 1
    cols = min(4, panels)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    flat = list(axes.flat)
    _plot_evaluations(flat[0], log)
    for ax, key in zip(flat[1:], keys, strict=False):
        shown = []
        for phase in sorted({r["phase"] for r in log.losses if key in r}):
            rows_ = [r for r in log.losses if r["phase"] == phase and key in r]
            steps = sorted({r["step"] for r in rows_})
            means = [np.mean([r[key] for r in rows_ if r["step"] == s]) for s in steps]
            ax.plot(steps, means, label=phase)
            shown += means
        ax.set_title(key)
        ax.set_xlabel("update step")
        magnitudes = np.abs(np.asarray(shown, np.float64))
        magnitudes = magnitudes[magnitudes > 0]
        if "loss" in key and magnitudes.size and magnitudes.max() > 100 * magnitudes.min():
            # Within two decades a log axis has one labelled tick or none: keep it linear.
            ax.set_yscale("symlog", linthresh=1e-3)
        # A fixed place: matplotlib's search for the "best" one can take seconds (and warn)
        # on a busy machine.
        ax.legend(fontsize="x-small", loc="upper right")
    for ax in flat[panels:]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _plot_evaluations(ax, log: RunLog) -> None:
    use_score = all(r["score"] is not None for r in log.evals) and bool(log.evals)
    value = "score" if use_score else "return"
    curves = sorted({(r["policy"], r.get("point", -1)) for r in log.evals})
    for policy, point in curves:
        rows_ = [r for r in log.evals if (r["policy"], r.get("point", -1)) == (policy, point)]
        steps = sorted({r["step"] for r in rows_})
        intervals = [
            mean_interval(np.array([r[value] for r in rows_ if r["step"] == s], np.float64))
            for s in steps
        ]
        means, lows, highs = (np.array([i[j] for i in intervals]) for j in range(3))
        label = policy if point < 0 else f"{policy}, grid point {point}"
        bars = ax.errorbar(steps, means, yerr=[means - lows, highs - means], marker="o",
                           capsize=3, label=label)  # fmt: skip
        ax.fill_between(steps, lows, highs, color=bars.lines[0].get_color(), alpha=0.2,
                        linewidth=0)  # fmt: skip
    anchor = [r[value] for r in log.evals if r["policy"] == "base" and r["stage"] == "final"]
    if anchor:
        ax.axhline(np.mean(anchor), color="grey", linestyle="--", label="BC anchor (final)")
    ax.set_xlabel("update step")
    what = "D4RL-normalised score" if use_score else "episode return"
    ax.set_title(what, fontweight="bold")
    ax.set_ylabel("mean, 95% bootstrap interval")
    if log.evals:
        ax.legend(fontsize="x-small", loc="upper left")
