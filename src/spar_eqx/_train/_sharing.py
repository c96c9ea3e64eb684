"""Which grid points can share a stage's training.

A sweep of a later stage's hyperparameters (SPAR's `lambda_g`, `temperature`, the gate's
thresholds) leaves the earlier stages' learners equal at every grid point; and every grid point
trains a seed with that seed's keys. So those stages would be trained once per grid point to the
same result: the trainer trains them once per distinct configuration instead, and hands each
grid point the runs of its configuration when the next stage starts.
"""

from typing import NamedTuple

import equinox as eqx
import numpy as np


class StageRuns(NamedTuple):
    """The grid points one stage trains, as groups of points with equal learners so far.

    **Fields:** `points`, the first grid point of each group (the one whose learners the
    group's runs use); `group_of`, each grid point's group. Runs are group-major: run
    `g * seeds + j` is group `g` trained with local seed `j`.
    """

    points: tuple[int, ...]
    group_of: tuple[int, ...]

    def runs(self, seeds: int) -> int:
        """The stage's number of runs: groups times local seeds."""
        return len(self.points) * seeds

    def expand(self, seeds: int) -> np.ndarray:
        """For each run of the whole grid (point-major), the index of the stage's run it
        shares: `group_of[r // seeds] * seeds + r % seeds`."""
        runs = np.arange(len(self.group_of) * seeds)
        return np.asarray(self.group_of)[runs // seeds] * seeds + runs % seeds


def stage_runs(per_point: list[tuple[eqx.Module, ...]], stages: int) -> list[StageRuns]:
    """Each stage's groups: grid points whose learners of that stage and every earlier one are
    equal share the stage's runs. The last stage is never shared (each grid point is
    evaluated, diagnosed and saved as its own runs).

    **Arguments:** `per_point`, every grid point's learners (any PyTrees), one per stage built
    so far (an algorithm whose later stages wait for its first builds fewer); `stages`, the
    algorithm's number of stages.

    **Returns:** one `StageRuns` per stage built; a stage's groups refine the previous one's.
    """
    layouts = []
    for stage in range(len(per_point[0])):
        points: list[int] = []
        group_of: list[int] = []
        for p, learners in enumerate(per_point):
            group = None
            if stage + 1 < stages:
                group = next(
                    (
                        g
                        for g, q in enumerate(points)
                        if eqx.tree_equal(learners[: stage + 1], per_point[q][: stage + 1])
                    ),
                    None,
                )
            if group is None:
                group = len(points)
                points.append(p)
            group_of.append(group)
        layouts.append(StageRuns(tuple(points), tuple(group_of)))
    return layouts


def parent_runs(previous: StageRuns, current: StageRuns, seeds: int) -> np.ndarray:
    """For each run of `current`, the run of the previous stage it continues from.

    **Returns:** an index array of length `current.runs(seeds)`.
    """
    runs = np.arange(current.runs(seeds))
    points = np.asarray(current.points)[runs // seeds]
    return np.asarray(previous.group_of)[points] * seeds + runs % seeds
