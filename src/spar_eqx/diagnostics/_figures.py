"""Figs. 2 and 4 as PNG files: residual sizes against global distances, and the residual cloud.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global state, no display),
and written atomically: a reader sees the old file or the new one, never half a PNG.
"""

import io
import os
import tempfile
from pathlib import Path

import numpy as np
from jaxtyping import ArrayLike, Real
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

from ._sample import as_rows, subsample

_RESIDUAL = r"$\|a - \pi_{\mathrm{base}}(s)\|$"
_GLOBAL = r"$\|a - a'\|$"


def _as_values(x: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(x)
    if array.ndim != 1 or array.shape[0] < 1:
        raise ValueError(f"`{name}` must be a non-empty 1-d array, got shape {array.shape}.")
    return as_rows(array[:, None], name)[:, 0]


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    """Render `figure` as a PNG and move it into place at `path` atomically."""
    path = Path(path)
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getvalue())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600 files; use the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def plot_residual_sizes(
    residual_norms: Real[ArrayLike, " n"],
    global_norms: Real[ArrayLike, " pairs"],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    quantile: float = 0.95,
) -> Path:
    r"""Fig. 4: the distribution of residual sizes $\|a - \pi_\text{base}(s)\|$ (red) against
    the global distances $\|a - a'\|$ between random pairs of dataset actions (black).

    Two density histograms on shared bins, each with a dashed line at its `quantile` (the
    paper's effective distance threshold is the 95th percentile). When the red mass sits far
    left of the black, the residual space is much smaller than the action space: the search
    space SPAR's residual shrinks to (Theorem 3.1).

    **Arguments:**

    - `residual_norms`: $\|a_i - \pi_\text{base}(s_i)\|_2$ over dataset transitions.
    - `global_norms`: $\|a_i - a_j\|_2$ over random pairs
      ([`spar_eqx.diagnostics.random_pair_distances`][]).
    - `path`: the PNG file to write (its folder must exist); replaced atomically.
    - `title`: a line under the figure's title (e.g. the dataset's name).
    - `quantile`: where the dashed lines go, in (0, 1).

    **Returns:**

    `path`, as a `Path`.
    """
    residual = _as_values(residual_norms, "residual_norms")
    pairs = _as_values(global_norms, "global_norms")
    if np.any(residual < 0) or np.any(pairs < 0):
        raise ValueError("`residual_norms` and `global_norms` must be >= 0 (they are norms).")
    if not 0 < quantile < 1:
        raise ValueError(f"`quantile` must lie in (0, 1), got {quantile}.")
    top = max(float(residual.max()), float(pairs.max()))
    bins = np.linspace(0.0, top if top > 0 else 1.0, 61)
    figure = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = figure.subplots()
    for values, colour, label in (
        (residual, "tab:red", f"residual size {_RESIDUAL}, dataset $(s, a)$"),
        (pairs, "black", f"global distance {_GLOBAL}, random pairs of dataset actions"),
    ):
        ax.hist(values, bins=bins, density=True, histtype="step", color=colour, linewidth=1.6,
                label=label)  # fmt: skip
        q = float(np.quantile(values, quantile))
        ax.axvline(q, color=colour, linestyle="--", linewidth=1.0,
                   label=f"{quantile:.0%} quantile: {q:.3g}")  # fmt: skip
    heading = "Residual action sizes vs the dataset's action-space distances (Fig. 4)"
    ax.set_title(heading if title is None else f"{heading}\n{title}", fontsize=10)
    ax.set_xlabel("Euclidean distance in action space")
    ax.set_ylabel("probability density")
    ax.legend(fontsize=8)
    return _save(figure, path)


def plot_residual_projection(
    residuals: Real[ArrayLike, "n act_dim"],
    q_values: Real[ArrayLike, " n"],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    max_points: int = 4000,
    seed: int = 0,
) -> Path:
    r"""Fig. 2: the residual actions $\Delta a = a - \pi_\text{base}(s)$ projected on their two
    principal components, each point coloured by $Q(s, a)$.

    The paper projects 4,000 residuals with t-SNE; this uses PCA (`sklearn`), which is linear
    and instant, so distances along the axes are true residual distances (t-SNE's are not,
    and `sklearn`'s took 53 s on 4,000 points on two shared CPU cores). Separate blobs are
    separate modes; a single blob around the red cross (the anchor's own action,
    $\Delta a = 0$) is a compact residual.
    The decision itself is made in the full residual space by
    [`spar_eqx.diagnostics.residual_topology`][], not from this picture.

    **Arguments:**

    - `residuals`: $\Delta a_i$, one row per dataset transition.
    - `q_values`: $Q(s_i, a_i)$ for the same rows (e.g. the critic ensemble's mean).
    - `path`: the PNG file to write (its folder must exist); replaced atomically.
    - `title`: a line under the figure's title (e.g. the dataset's name).
    - `max_points`: at most this many rows are drawn, a deterministic subsample (`seed`).
    - `seed`: the subsampling seed.

    **Returns:**

    `path`, as a `Path`.
    """
    r = as_rows(residuals, "residuals", min_rows=2)
    q = _as_values(q_values, "q_values")
    if q.shape[0] != r.shape[0]:
        raise ValueError(
            f"`q_values` has {q.shape[0]} values for {r.shape[0]} residuals; give one Q per row."
        )
    if not (isinstance(max_points, int) and max_points >= 2):
        raise ValueError(f"`max_points` must be an integer >= 2, got {max_points!r}.")
    keep = subsample(r.shape[0], max_points, np.random.SeedSequence([seed, 21]))
    r, q = r[keep], q[keep]
    components = min(2, r.shape[1])
    pca = PCA(n_components=components, svd_solver="full").fit(r)
    xy = pca.transform(r)
    origin = pca.transform(np.zeros((1, r.shape[1])))
    if components == 1:  # one action dimension: the line itself, at height 0
        xy, origin = np.pad(xy, ((0, 0), (0, 1))), np.pad(origin, ((0, 0), (0, 1)))
    share = np.pad(pca.explained_variance_ratio_, (0, 2 - components))
    figure = Figure(figsize=(6.5, 5.5), layout="constrained")
    ax = figure.subplots()
    order = np.argsort(q)  # the highest values drawn last, on top
    low, high = np.quantile(q, [0.01, 0.99])  # a few extreme Q values do not wash out the rest
    points = ax.scatter(xy[order, 0], xy[order, 1], c=q[order], s=5, alpha=0.7, cmap="viridis",
                        vmin=low, vmax=max(high, low + 1e-12), linewidths=0)  # fmt: skip
    ax.scatter(origin[:, 0], origin[:, 1], marker="x", s=80, color="tab:red", linewidths=2,
               label=r"$\Delta a = 0$ (the anchor's own action)")  # fmt: skip
    bar = figure.colorbar(points, ax=ax)
    bar.set_label(r"$Q(s, a)$ at the dataset action (critic ensemble mean; 1-99% range)")
    heading = (
        r"Residual actions $\Delta a = a - \pi_{\mathrm{base}}(s)$, PCA projection (Fig. 2)"
        f"\n{r.shape[0]} dataset transitions, coloured by Q"
    )
    ax.set_title(heading if title is None else f"{heading}; {title}", fontsize=10)
    ax.set_xlabel(f"principal component 1 ({share[0]:.0%} of the residual variance)")
    ax.set_ylabel(
        f"principal component 2 ({share[1]:.0%} of the residual variance)"
        if components == 2
        else "(one action dimension: no second component)"
    )
    ax.legend(fontsize=8, loc="best")
    ax.set_aspect("equal", adjustable="datalim")
    return _save(figure, path)
