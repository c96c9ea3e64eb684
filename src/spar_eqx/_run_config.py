"""`RunConfig`: everything one `spar-eqx train` run needs, frozen and JSON-serialisable."""

import dataclasses
import itertools
import json
import math
import os
import tomllib
from pathlib import Path
from typing import Any

from ._hyper import Hyperparameter, from_dict, hyperparameters, replace, to_dict
from ._presets import PRESETS, preset_overrides, resolve_preset
from ._registry import Algorithm, algorithm


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A full training run: the algorithm and its hyperparameters, data, budget and seeds.

    **Fields:**

    - `algo`: a registered algorithm (`"spar"`, `"bc"`, `"iql"`, `"td3bc"`, `"rebrac"`).
    - `hyperparameters`: that algorithm's config (default: its defaults).
    - `steps`: updates per stage (default: 1M for each of the algorithm's stages).
    - `dataset`, `env_id`: the data and, optionally, the environment to evaluate in.
    - `seeds`: seeds `0..seeds-1` run together on a leading axis.
    - `sweep`: `((name, values), ...)`, a grid of float hyperparameters (see
      `sweep_names`) trained with the seeds in one compiled program; each name is a
      flag without its dashes (`"lambda_g"`) or a config path (`"residual.lambda_g"`).
    - `log_every`: updates per compiled call; `eval_every` and `checkpoint_every` must
      be multiples of it (0 turns periodic evaluation off; every stage still ends with
      a checkpoint, and every stage but the last with an evaluation).
    - `eval_episodes`, `eval_max_episode_steps`: evaluation episodes per seed, and a cap.
    - `reward_transform`: None for the algorithm's convention.
    - `acceptance_states`: dataset states the final diagnostics are measured on.
    - `rescale_actions`: map the dataset's recorded action bounds linearly onto the
      environment's action space when they differ (otherwise such a dataset is refused).
    - `preset`: the task whose settings were applied (`with_preset`), or None; a dataset of
      another domain than the preset's task (on OGBench, of another environment) is refused
      when the run starts.
    """

    algo: str = "spar"
    hyperparameters: Any = None
    steps: tuple[int, ...] | None = None
    dataset: str = "default"
    env_id: str | None = None
    seeds: int = 3
    sweep: tuple[tuple[str, tuple[float, ...]], ...] = ()
    eval_episodes: int = 10
    eval_every: int = 0
    log_every: int = 1000
    checkpoint_every: int = 5000
    eval_max_episode_steps: int | None = None
    reward_transform: str | None = None
    acceptance_states: int = 10_000
    rescale_actions: bool = False
    preset: str | None = None

    def __post_init__(self):
        algo = algorithm(self.algo)
        if self.hyperparameters is None:
            object.__setattr__(self, "hyperparameters", algo.config())
        elif not isinstance(self.hyperparameters, algo.config):
            raise ValueError(
                f"hyperparameters must be a {algo.config.__name__} for algo={self.algo!r}, "
                f"got {type(self.hyperparameters).__name__}."
            )
        if self.steps is None:
            object.__setattr__(self, "steps", (1_000_000,) * len(algo.stages))
        object.__setattr__(self, "steps", tuple(int(s) for s in self.steps))
        if len(self.steps) != len(algo.stages):
            raise ValueError(
                f"{self.algo} has {len(algo.stages)} stage(s) ({', '.join(algo.stages)}), so "
                f"steps needs {len(algo.stages)} budget(s), got {list(self.steps)}."
            )
        for name in ("seeds", "eval_episodes", "log_every", "checkpoint_every"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if any(s < 0 for s in self.steps) or self.eval_every < 0:
            raise ValueError(
                f"steps and eval_every must be non-negative, got {list(self.steps)} and "
                f"{self.eval_every}."
            )
        if self.eval_max_episode_steps is not None and self.eval_max_episode_steps < 1:
            raise ValueError(
                "eval_max_episode_steps must be at least 1 (or None for the environment's "
                f"own limit), got {self.eval_max_episode_steps}."
            )
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(
                f"unknown preset {self.preset!r}; choose one of: {', '.join(PRESETS)}."
            )
        if self.acceptance_states < 1:
            raise ValueError(f"acceptance_states must be positive, got {self.acceptance_states}.")
        for name in ("eval_every", "checkpoint_every"):
            if getattr(self, name) % self.log_every:
                raise ValueError(
                    f"{name}={getattr(self, name)} must be a multiple of "
                    f"log_every={self.log_every} "
                    "(updates run in compiled chunks of log_every steps)."
                )
        object.__setattr__(
            self, "sweep", tuple((str(n), tuple(float(v) for v in vs)) for n, vs in self.sweep)
        )
        self.grid()  # validates the sweep and every grid point's config

    @property
    def algorithm(self) -> Algorithm:
        """The registry entry of `algo`."""
        return algorithm(self.algo)

    @property
    def batch_size(self) -> int:
        """Transitions per update, from the algorithm's hyperparameters."""
        return self.hyperparameters.batch_size

    def grid(self) -> list[tuple[dict[str, float], Any]]:
        """Every grid point of `sweep` as `(params, hyperparameters)`, last name fastest.

        Without a sweep, one point: `({}, hyperparameters)`.
        """
        table = sweep_names(self.algo)
        names, paths, values = [], [], []
        for name, vals in self.sweep:
            key = sweep_key(name)
            if key not in table:
                known = ", ".join(sorted(table))
                raise ValueError(
                    f"cannot sweep {name!r} for {self.algo}: a sweep takes a float "
                    f"hyperparameter that does not change the networks' shapes ({known})."
                )
            if key in names:
                raise ValueError(f"{name!r} is swept twice; give all its values in one --sweep.")
            if not vals or not all(math.isfinite(v) for v in vals):
                raise ValueError(f"the sweep of {name!r} needs one or more finite values.")
            names.append(key)
            paths.append(table[key])
            values.append(vals)
        points = []
        for combo in itertools.product(*values):
            overrides = {p: v for ps, v in zip(paths, combo, strict=True) for p in ps}
            params = dict(zip(names, combo, strict=True))
            try:
                points.append((params, replace(self.hyperparameters, overrides)))
            except ValueError as error:
                raise ValueError(f"grid point {params}: {error}") from error
        return points

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON values (the inverse of `from_dict`)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["hyperparameters"] = to_dict(self.hyperparameters)
        out["steps"] = list(self.steps)
        out["sweep"] = [[name, list(values)] for name, values in self.sweep]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """The inverse of `to_dict`; a `ValueError` names what is missing or wrong."""
        data = dict(data)
        try:
            algo = algorithm(data.get("algo", "spar"))
            data["hyperparameters"] = from_dict(algo.config, data.get("hyperparameters", {}))
            data["steps"] = tuple(data["steps"])
            data["sweep"] = tuple((n, tuple(v)) for n, v in data.get("sweep", ()))
            return cls(**data)
        except (TypeError, KeyError, AttributeError) as error:
            raise ValueError(f"not a valid run configuration ({error}).") from error

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "RunConfig":
        """A run configuration written down: a run's own `config.json`, or a TOML file with
        the same keys (`spar-eqx train --config FILE`).

        Keys left out take their defaults (`steps`: the algorithm's 1M per stage), so a TOML
        file may hold only what it changes:

        ```toml
        algo = "iql"
        steps = [30000]
        seeds = 2

        [hyperparameters]
        expectile = 0.8
        ```

        **Arguments:** `path`, a `.json` or `.toml` file.

        **Returns:** the `RunConfig`. A `ValueError` names the file and what is wrong in it
        (unreadable, not a mapping, an unknown key or a refused value).
        """
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as error:
            raise ValueError(f"cannot read {path} ({error.strerror or error}).") from None
        try:
            if path.suffix.lower() == ".toml":
                data = tomllib.loads(text)
            else:
                data = json.loads(text)
        except ValueError as error:  # json and tomllib both raise ValueError subclasses
            kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
            raise ValueError(f"{path} is not valid {kind} ({error}).") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} does not hold a mapping of run settings.")
        data = dict(data)
        try:
            data.setdefault("steps", list(cls(algo=data.get("algo", "spar")).steps))
            return cls.from_dict(data)
        except ValueError as error:
            raise ValueError(f"{path}: {str(error).rstrip('.')}.") from None

    def with_overrides(self, overrides: dict[str, Any]) -> "RunConfig":
        """A copy with `overrides` applied: run fields by name, hyperparameters by path
        (`"residual.lambda_g"`)."""
        run_fields = {f.name for f in dataclasses.fields(self)}
        top = {k: v for k, v in overrides.items() if k in run_fields}
        hyper = {k: v for k, v in overrides.items() if k not in run_fields}
        if hyper:
            top["hyperparameters"] = replace(self.hyperparameters, hyper)
        return dataclasses.replace(self, **top)

    def with_budget(self, name: str) -> "RunConfig":
        """A copy trained on the named budget `name` (`spar_eqx.BUDGETS`), as
        `spar-eqx train --budget name` is.

        `"paper"` is the paper's protocol (1M updates per stage, every default as published);
        `"quick"` the README's main job (20k updates per stage and smaller networks: minutes
        on a CPU; its `changes` say what departs from the paper and why). The budget sets the
        steps of every stage, some run fields (seeds, evaluation) and some hyperparameters;
        everything else is kept, and a later `with_overrides` overrides it.

        **Arguments:** `name`, a key of `BUDGETS`.

        **Returns:** the new `RunConfig`; a `ValueError` names the budgets for another `name`.
        """
        from ._budgets import budget_overrides

        table = flag_table(self.algo)
        budget = budget_overrides(name, self.algo, set(table), len(self.algorithm.stages))
        overrides = {k: v for k, v in budget.items() if k != "flags"}
        for flag, value in budget["flags"].items():
            overrides.update({h.path: value for h in table[flag]})
        return self.with_overrides(overrides)

    def with_preset(self, name: str) -> "RunConfig":
        """A copy with the settings of task `name` for this algorithm (`preset_overrides`:
        SPAR's Table 8, a baseline's published values for the task's domain), with `preset`
        recorded so that a dataset of another domain (on OGBench, another environment) is
        refused. `name="auto"` takes the preset named after `self.dataset`'s task
        (`ogbench:cube-double-play-singletask-v0` -> `cube-double-play`, `D4RL/pen/cloned-v2`
        -> `pen-cloned`), and a `ValueError` says when there is none."""
        q_target = self.hyperparameters.anchor.q_target if self.algo == "spar" else "value"
        try:
            name = resolve_preset(name, self.dataset)
            overrides = preset_overrides(name, q_target=q_target, algo=self.algo)
        except KeyError as error:
            raise ValueError(error.args[0]) from None
        return self.with_overrides({**overrides, "preset": name})


def sweep_key(name: str) -> str:
    """A flag or sweep name in snake case without dashes: `--lambda-g` -> `"lambda_g"`."""
    return name.lstrip("-").replace("-", "_")


def sweep_names(algo: str) -> dict[str, tuple[str, ...]]:
    """The sweepable hyperparameters of `algo`: name -> the config paths it sets.

    A name is the flag without dashes, in snake case (`--lambda-g` -> `"lambda_g"`), and
    every full config path (`"residual.lambda_g"`) is accepted too. Only float leaves
    can be swept: they change values, not shapes, so the grid runs in one compile.
    """
    out: dict[str, list[str]] = {}
    static_flags = set()
    for h in hyperparameters(algorithm(algo).config):
        if h.static:
            if h.flag:
                static_flags.add(h.flag)
            continue
        out[h.path] = [h.path]
        if h.flag:
            out.setdefault(sweep_key(h.flag), []).append(h.path)
    for flag in static_flags:
        out.pop(sweep_key(flag), None)
    return {k: tuple(v) for k, v in out.items()}


def flag_table(algo: str) -> dict[str, list[Hyperparameter]]:
    """`--flag -> [hyperparameters it sets]` for `algo` (one flag may set several fields)."""
    table: dict[str, list[Hyperparameter]] = {}
    for h in hyperparameters(algorithm(algo).config):
        if h.flag:
            table.setdefault(h.flag, []).append(h)
    return table
