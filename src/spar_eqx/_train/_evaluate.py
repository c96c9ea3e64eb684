"""What the trainer does with trained states: their policies, evaluation, diagnostics, and
the record `results.json` keeps of them (`RunEvaluation`, a base class of `Trainer`)."""

import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..data._transitions import spread_rows
from ._chunk import run_axes, run_devices
from ._log import RunLog
from ._results import (
    evaluate_runs,
    grid_record,
    point_record,
    support_problem,
    support_ratios,
)


class RunEvaluation:
    """`Trainer`'s evaluation half, kept apart from its training loop.

    It reads the trainer's attributes and changes none of them: `config`, `algorithm`,
    `grid`, `seed_ids`, `run_seeds`, `num_local`, `num_runs`, `process_count`,
    `hyperparameters` and `resolution`; `learners` and `stage_layouts` (from
    `Trainer.build`); and the prepared data (`dataset`, `env_id`, `environment`, `normalizer`,
    `reward_transform`, `rescaled_from`).
    """

    def policies(self, stage: int, states, *, periodic: bool = False, normalizer=None):
        """The stage's deployable policies, stacked over runs (behind `normalizer`, default:
        the dataset's)."""
        normalizer = self.normalizer if normalizer is None else normalizer

        def build(learner, state):
            if periodic:
                return learner.periodic_policies(state, normalizer)
            return learner.policies(state, normalizer)

        # Built under vmap so that the shared normaliser gets the run axis too.
        return eqx.filter_vmap(build, in_axes=(eqx.if_array(0), run_axes(states)))(
            self.learners[stage], states
        )

    def evaluate(self, policies, seed: int, episodes: int | None = None, stage: int | None = None):
        """`evaluate_runs` of `policies`, stacked over `stage`'s runs (default: the last
        stage's), with this run's environment and settings; one row per grid point (grid
        points that share the stage share its row)."""
        c = self.config
        layout = self.stage_layouts[-1 if stage is None else stage]
        rows = evaluate_runs(
            policies,
            self.seed_ids,
            len(layout.points),
            self.environment,
            episodes or c.eval_episodes,
            seed,
            self.dataset.reference,
            c.eval_max_episode_steps,
        )
        return [rows[group] for group in layout.group_of]

    def _dataset_rows(self) -> np.ndarray:
        """An even spread of `config.acceptance_states` dataset rows the final measurements
        use."""
        return spread_rows(self.dataset.transitions.num_transitions, self.config.acceptance_states)

    def diagnostics(self, states) -> list[dict[str, np.ndarray]]:
        """The last stage's diagnostics per grid point, each `(local seeds,)`, on dataset states."""
        obs = self.dataset.transitions.observations[self._dataset_rows()]
        keys = jax.vmap(lambda k: jr.fold_in(jr.key(12345), k))(jnp.asarray(self.run_seeds))
        stage = len(self.algorithm.stages) - 1
        measure = eqx.filter_vmap(
            lambda learner, state, key: learner.diagnostics(state, self.normalizer, obs, key),
            in_axes=(eqx.if_array(0), run_axes(states), 0),
        )
        values = {k: np.asarray(v) for k, v in measure(self.learners[stage], states, keys).items()}
        k = self.num_local
        return [
            {n: v[p * k : (p + 1) * k] for n, v in values.items()} for p in range(len(self.grid))
        ]

    def final_record(
        self, states, seed: int = 10_000, episodes: int | None = None
    ) -> tuple[dict[str, Any], list]:
        """Scores, returns and diagnostics of the final policies (per grid point with a sweep),
        and the raw per-point evaluations. The record's `evaluation` says how long the
        episodes took: `env_steps` (every policy's, this process) and `seconds`."""
        stage = len(self.algorithm.stages) - 1
        policies = self.policies(stage, states)
        started = time.perf_counter()
        evaluated = self.evaluate(policies, seed, episodes)
        seconds = time.perf_counter() - started
        env_steps = int(sum(e.env_steps.sum() for row in evaluated for e in row.values()))
        diagnostics = self.diagnostics(states)
        rows = self._dataset_rows()
        t = self.dataset.transitions
        support, unmeasured = support_ratios(
            policies,
            t.observations[rows],
            t.actions,
            len(self.grid),
            self.num_local,
            self.final_problems().get("support_distance_ratio"),
        )
        records = [
            point_record(e, d, r, unmeasured, self.algorithm.pairs)
            for e, d, r in zip(evaluated, diagnostics, support, strict=True)
        ]
        record = grid_record([params for params, _ in self.grid], records)
        rate = env_steps / seconds
        record["evaluation"] = {"env_steps": env_steps, "seconds": seconds, "env_steps_per_s": rate}
        return record, evaluated

    def final_problems(self) -> dict[str, str]:
        """The final measurements this run's data cannot give, and why (asked once, before
        the first update, so a run says so at its start instead of failing at its end)."""
        if not hasattr(self, "_final_problems"):
            problem = support_problem(self.dataset.transitions.actions)
            self._final_problems = {"support_distance_ratio": problem} if problem else {}
        return self._final_problems

    def results_header(self, seconds: float) -> dict[str, Any]:
        """What `results.json` says about the run, before its scores."""
        c = self.config
        resolved = {k: v for k, v in (self.resolution or {}).items() if k != "overrides"}
        return {
            "algo": c.algo,
            "label": self.algorithm.label(self.hyperparameters),
            **self.algorithm.record(self.hyperparameters),
            **resolved,
            "dataset": self.dataset.name,
            "dataset_fingerprint": self.fingerprint,
            "env_id": self.env_id,
            "environment": self.environment.describe(),
            "seeds": list(range(c.seeds)),
            "processes": self.process_count,
            "steps": dict(zip(self.algorithm.stages, c.steps, strict=True)),
            # Runs each stage trained (all processes): fewer than grid points x seeds where
            # grid points shared a stage, none for a first stage taken from `first_stage_from`.
            "trained_runs": {
                name: 0 if stage == 0 and self.first_stage_from else len(layout.points) * c.seeds
                for stage, (name, layout) in enumerate(
                    zip(self.algorithm.stages, self.stage_layouts, strict=False)
                )
            },
            **({"first_stage_from": self.first_stage_from} if self.first_stage_from else {}),
            "wall_clock_seconds": seconds,
            "reward_transform": self.reward_transform,
            "actions_rescaled_from": self.rescaled_from,
            "devices": [str(d) for d in jax.devices()],
            "seed_sharding": run_devices(self.num_runs),
            "config": c.to_dict(),
        }

    def _label(self, point: int, seed: int) -> dict[str, int]:
        return {"seed": seed, "point": point} if self.config.sweep else {"seed": seed}

    def _periodic_eval(self, stage: int, states, step: int, log: RunLog, *, periodic: bool):
        policies = self.policies(stage, states, periodic=periodic)
        evaluated = self.evaluate(policies, seed=10_000, stage=stage)
        self._log_evaluations(log, self.algorithm.stages[stage], step, evaluated)

    def _log_evaluations(self, log: RunLog, stage: str, step: int, evaluated) -> None:
        """One log row per grid point, policy and local seed of `evaluate`'s result."""
        for point, row in enumerate(evaluated):
            for name, (returns, scores, *_) in row.items():
                for i, seed in enumerate(self.seed_ids):
                    log.add_eval(
                        stage, name, step, self._label(point, seed), returns[i],
                        None if scores is None else scores[i],
                    )  # fmt: skip
