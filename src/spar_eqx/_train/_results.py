"""Evaluation of stacked runs and the shape of `results.json`, the same for every algorithm."""

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from .._environments import Environment
from .._evaluation import act_and_report, evaluate
from .._intervals import mean_interval, paired_difference
from .._scores import ReferenceScores
from ._chunk import take_runs


class SeedStacked(eqx.Module):
    """A policy stacked over seeds, acting on `seeds * episodes` observations at once.

    Observation `i` belongs to the `i // episodes`-th seed; one jitted call serves
    all seeds, so a vector env of every seed's episodes steps in lockstep. Seed
    `s` acts with `fold_in(key, s)`.
    """

    policy: eqx.Module
    seed_ids: tuple[int, ...] = eqx.field(static=True)

    def __call__(self, observations, key):
        return self.act_and_report(observations, key)[0]

    def act_and_report(self, observations, key):
        """Every seed's actions (and reports, when its policy is a `ReportingPolicy`)."""
        num = len(self.seed_ids)
        obs = observations.reshape(num, -1, observations.shape[-1])
        keys = jax.vmap(lambda s: jr.fold_in(key, s))(jnp.asarray(self.seed_ids))

        actions, reports = eqx.filter_vmap(act_and_report)(self.policy, obs, keys)
        flat = {name: values.reshape(-1) for name, values in reports.items()}
        return actions.reshape(observations.shape[0], -1), flat


class Evaluated(NamedTuple):
    """One policy's evaluation, per local seed: mean return, mean score (or None), the
    mean over its episodes' steps of each quantity the policy reports, the success rate
    where the domain scores success (else None), and each episode's return and score
    (`(local seeds, episodes)`; the score None without reference returns)."""

    returns: np.ndarray
    scores: np.ndarray | None
    reports: dict[str, np.ndarray]
    env_steps: np.ndarray  # environment steps of all its episodes, per seed
    success: np.ndarray | None = None
    episode_returns: np.ndarray | None = None
    episode_scores: np.ndarray | None = None


def evaluate_runs(
    policies: dict[str, eqx.Module],
    seed_ids: tuple[int, ...],
    points: int,
    env: Environment,
    episodes: int,
    seed: int,
    reference: ReferenceScores | None,
    max_episode_steps: int | None,
) -> list[dict[str, Evaluated]]:
    """Per grid point, per policy: the `Evaluated` mean return, score and reports of each
    local seed (a report is averaged over each episode's steps, then over its episodes).

    `env` is the `Environment` every episode runs in. `policies` are stacked over runs
    (`points * len(seed_ids)`, point-major). Seed `s` plays episodes with env seeds
    `seed + s * episodes + e` at every grid point, whatever process it runs in, so grid
    points and a plain run see the same episodes.
    """
    k = len(seed_ids)
    out = []
    for point in range(points):
        row = {}
        for name, policy in policies.items():
            result = evaluate(
                SeedStacked(take_runs(policy, point * k, (point + 1) * k), seed_ids),
                env,
                k * episodes,
                seed + seed_ids[0] * episodes,
                key=jr.key(seed),
                reference=reference,
                max_episode_steps=max_episode_steps,
            )
            episode_returns = result.returns.reshape(k, episodes)
            episode_scores = None if result.scores is None else result.scores.reshape(k, -1)
            returns = episode_returns.mean(axis=1)
            scores = None if episode_scores is None else episode_scores.mean(axis=1)
            reports = {n: v.reshape(k, episodes).mean(axis=1) for n, v in result.reports.items()}
            steps = result.lengths.reshape(k, episodes).sum(axis=1)
            success = None
            if result.successes is not None:
                success = result.successes.reshape(k, episodes).mean(axis=1)
            row[name] = Evaluated(
                returns, scores, reports, steps, success, episode_returns, episode_scores
            )
        out.append(row)
    return out


def gather(values) -> list[float]:
    """This process's per-seed values, concatenated over processes in seed order."""
    values = np.asarray(values, np.float64)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        values = np.asarray(multihost_utils.process_allgather(values)).reshape(-1)
    return [float(x) for x in values]


def support_problem(dataset_actions: Float[Array, "n act_dim"]) -> str | None:
    """Why the support-distance ratio cannot be measured against `dataset_actions` (its
    boundary needs two actions and is 0 when many repeat exactly), or None when it can.
    Cheap enough to ask before the first update."""
    from ..diagnostics import support_distance_ratio

    actions = np.asarray(dataset_actions, np.float64)
    if actions.shape[0] < 2:
        return f"the dataset has {actions.shape[0]} transition, and the ratio needs 2 or more"
    try:
        support_distance_ratio(actions[:1], actions)
    except ValueError:
        return (
            "more than 5% of the dataset's actions repeat another exactly (actions all at the "
            "bounds of the action space, say), so the data's own boundary is 0"
        )
    return None


def gather_rows(values) -> list[list[float]]:
    """This process's `(local seeds, episodes)` values, concatenated over processes in seed
    order: one row of episodes per seed."""
    values = np.asarray(values, np.float64)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        gathered = np.asarray(multihost_utils.process_allgather(values))
        values = gathered.reshape(-1, values.shape[-1])
    return [[float(x) for x in row] for row in values]


INTERVAL_METHOD = {
    "level": 0.95,
    "resamples": 10_000,
    "seed": 0,
    "method": "percentile bootstrap: seeds with replacement, then each drawn seed's evaluation "
    "episodes with replacement (spar_eqx.mean_interval); a paired difference is the same of "
    "the per-episode differences, paired by seed and evaluation episode "
    "(spar_eqx.paired_difference)",
}


def interval_record(
    per_episode: dict[str, list[list[float]]],
    of: str,
    pairs: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """`score_intervals` (each policy's mean with its 95% interval over seeds and episodes)
    and `paired_differences` (`"a - b"` for each `(a, b)` of `pairs`, the algorithm's
    `Algorithm.pairs`, where the run has both policies, each with `excludes_zero`, never true
    for a single seed), and `interval_method`, of `per_episode`: each policy's
    `(seeds, episodes)` scores, or returns as `of` says."""
    settings = {k: INTERVAL_METHOD[k] for k in ("level", "resamples", "seed")}
    intervals = {
        name: mean_interval(np.asarray(rows), **settings).record()
        for name, rows in per_episode.items()
    }
    differences = {}
    for a, b in pairs:
        if a in per_episode and b in per_episode:
            d = paired_difference(
                np.asarray(per_episode[a]), np.asarray(per_episode[b]), **settings
            )
            # One seed's episodes say nothing of how another seed would do: no verdict.
            resolved = d.excludes_zero and len(per_episode[a]) >= 2
            differences[f"{a} - {b}"] = {**d.record(), "excludes_zero": resolved}
    return {
        "score_intervals": intervals,
        "paired_differences": differences,
        "interval_method": {"of": of, **INTERVAL_METHOD},
    }


def support_ratios(
    policies: dict[str, eqx.Module],
    observations: Float[Array, "m obs_dim"],
    dataset_actions: Float[Array, "n act_dim"],
    points: int,
    k: int,
    problem: str | None = None,
) -> tuple[list[dict[str, np.ndarray]], dict[str, str]]:
    """Per grid point, per policy: each local seed's support-distance ratio (Fig. 3), and
    why a policy's could not be measured (NaN in its values).

    Each run's policy acts on the raw dataset `observations`; the q95 distance of those
    actions to their nearest dataset action is divided by the dataset's own q95 boundary
    (`spar_eqx.diagnostics.support_distance_ratio`): about 1 for a policy that stays in the
    data's action support, well above 1 for one that leaves it. With `problem`
    (`support_problem`'s answer), nothing is measured and every value is NaN.
    """
    # Imported here: scikit-learn costs ~90 MB, which `import spar_eqx` should not pay.
    from ..diagnostics import support_distance_ratio

    key = jr.key(54321)
    out: list[dict[str, np.ndarray]] = [{} for _ in range(points)]
    reasons: dict[str, str] = {}
    for name, policy in policies.items():
        if problem is not None:
            reasons[name] = problem
            for point in range(points):
                out[point][name] = np.full(k, np.nan)
            continue
        act = eqx.filter_jit(eqx.filter_vmap(lambda p: p(observations, key)))(policy)
        act = np.asarray(act, np.float64)
        for point in range(points):
            values = []
            for a in act[point * k : (point + 1) * k]:
                try:
                    values.append(support_distance_ratio(a, dataset_actions))
                except ValueError as error:  # e.g. a policy's non-finite actions
                    reasons[name] = str(error)
                    values.append(np.nan)
            out[point][name] = np.asarray(values)
    return out, reasons


def point_record(
    evaluated: dict[str, Evaluated],
    diagnostics: dict[str, np.ndarray],
    support: dict[str, np.ndarray],
    unmeasured: dict[str, str] | None = None,
    pairs: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """`scores`, `returns`, `diagnostics` and the support-distance ratio of each policy, for
    one grid point, each per seed (all processes); each episode's score (`episode_scores`,
    or `episode_returns` without reference returns), one row per seed; and their intervals
    and the paired differences of `pairs` (`interval_record`).

    A support-distance ratio that could not be measured (NaN in any process) is recorded as
    None, and `"not_available"` says why (`unmeasured`, by policy, from `support_ratios`): a
    final measurement that cannot be made never costs the run.

    `diagnostics` are measured on dataset states; what a policy reported along its own
    evaluation episodes goes under `"episodes"`, by policy (e.g. the gate's acceptance
    where the gated policy actually went).
    """
    record = {
        "scores": {
            name: None if e.scores is None else gather(e.scores) for name, e in evaluated.items()
        },
        "returns": {name: gather(e.returns) for name, e in evaluated.items()},
        **success_record(evaluated),
        "diagnostics": {name: gather(values) for name, values in diagnostics.items()},
        "support_distance_ratio": {},
    }
    missing = {}
    for name, values in support.items():
        gathered = gather(values)  # every process gathers every policy's (collectives)
        if np.isnan(gathered).any():
            reason = (unmeasured or {}).get(name, "it could not be measured in another process")
            missing[f"support_distance_ratio/{name}"] = reason
            gathered = None
        record["support_distance_ratio"][name] = gathered
    if missing:
        record["not_available"] = missing
    has_scores = all(e.episode_scores is not None for e in evaluated.values())
    per_episode = {
        name: gather_rows(e.episode_scores if has_scores else e.episode_returns)
        for name, e in evaluated.items()
    }
    record["episode_scores" if has_scores else "episode_returns"] = per_episode
    record.update(interval_record(per_episode, "scores" if has_scores else "returns", pairs))
    episodes = {
        name: {n: gather(v) for n, v in e.reports.items()}
        for name, e in evaluated.items()
        if e.reports
    }
    if episodes:
        record["episodes"] = episodes
    return record


def success_record(evaluated: dict[str, Evaluated]) -> dict[str, Any]:
    """`{"success_rate": {policy: per seed}}` where the domain scores success, else `{}`."""
    rates = {name: e.success for name, e in evaluated.items() if e.success is not None}
    return {"success_rate": {name: gather(r) for name, r in rates.items()}} if rates else {}


def grid_record(params: list[dict[str, float]], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The results of every grid point: the point itself for a plain run, else `sweep`."""
    if not params[0]:
        return records[0]
    return {"sweep": [{"params": p, **r} for p, r in zip(params, records, strict=True)]}
