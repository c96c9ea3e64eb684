"""`collect`: D4RL-style Minari datasets for any gymnasium continuous-control environment.

The D4RL recipe (Fu et al., 2020): train an online SAC, keep the policy that first reaches a
target return, and record it. Levels:

- `random`: `steps` transitions of uniform random actions.
- `medium`: train until the mean deterministic evaluation return first reaches the medium target
  (default: one third of the way from D4RL's random to its expert reference return), then record
  `steps` transitions of that policy's sampled (stochastic) actions.
- `medium-replay`: every transition the SAC collected while training up to the medium policy
  (its replay buffer, random warm-up steps included).
- `expert`: as `medium`, with the expert target (default: 90% of the way from random to expert).
- `medium-expert`: the `medium` transitions followed by the `expert` ones (one training run).

Episodes are recorded by Minari's `DataCollector`: time-limit truncations are truncations,
terminations are terminations, and an episode cut by the end of recording is a truncation.
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

import jax.random as jr
import numpy as np

from .._scores import reference_scores
from ._dataset_folder import (
    collect_command,
    create_dataset,
    datasets_root,
    prepare_folder,
    recover_interrupted,
    swap_into_place,
    write_metadata,
)
from ._errors import CollectError
from ._record_episodes import ActionScale, Recorder, SACTrainer, close_collector, make_gym_env
from ._sac import SACConfig

LEVELS = ("random", "medium", "medium-replay", "expert", "medium-expert")
MEDIUM_FRACTION = 1.0 / 3.0
EXPERT_FRACTION = 0.9
DEFAULT_STEPS = 1_000_000
DEFAULT_MAX_TRAIN_STEPS = 1_000_000
_DEFAULT_CONFIG = SACConfig()


def dataset_id(env_id: str, level: str) -> str:
    """The Minari id `collect` writes: `"Hopper-v5", "medium" -> "hopper/medium-v0"`.

    **Arguments:** `env_id`, a gymnasium id (a namespace prefix and a `-vN` suffix are
    dropped); `level`, one of `LEVELS`.

    **Returns:** `"<name>/<level>-v0"`, `<name>` the lower-cased environment name with any
    character other than letters, digits and `_` replaced by `-`.
    """
    name = env_id.split(":")[-1].split("/")[-1]
    base, _, version = name.rpartition("-v")
    if base and version.isdigit():
        name = base
    name = "".join(c if c.isalnum() or c == "_" else "-" for c in name.lower()).strip("-")
    return f"{name}/{level}-v0"


def default_target_return(env_id: str, level: str) -> float | None:
    """D4RL-style target return of `level` for `env_id`, or None without a D4RL reference.

    Medium: `ref_min + (ref_max - ref_min) / 3`; expert: `ref_min + 0.9 * (ref_max - ref_min)`,
    with `ref_min`/`ref_max` the D4RL random and expert returns (`spar_eqx.reference_scores`).

    **Arguments:** `env_id`, a gymnasium id; `level`, a level of `LEVELS`.

    **Returns:** the target evaluation return, or None for `random`, `medium-replay` and
    `medium-expert` (whose parts are `medium` and `expert`) and for environments without a
    D4RL reference.
    """
    ref = reference_scores(env_id)
    if ref is None or level not in ("medium", "expert"):
        return None
    fraction = MEDIUM_FRACTION if level == "medium" else EXPERT_FRACTION
    return ref.min + fraction * (ref.max - ref.min)


def _targets(env_id: str, level: str, target_return) -> list[tuple[str, float]]:
    """The (part, target) pairs that `level` trains through."""
    parts = {"medium": ["medium"], "medium-replay": ["medium"], "expert": ["expert"]}
    parts["medium-expert"] = ["medium", "expert"]
    names = parts.get(level, [])
    if target_return is None:
        given = [None] * len(names)
    elif isinstance(target_return, int | float):
        given = [float(target_return)]
    else:
        given = [float(r) for r in target_return]
    if not names:
        if target_return is not None:
            raise CollectError(f"level 'random' takes no target return, got {target_return}.")
        return []
    if len(given) != len(names):
        raise CollectError(
            f"level '{level}' needs {len(names)} target return(s) ({' and '.join(names)}), "
            f"got {len(given)}: {target_return}."
        )
    out = []
    for name, value in zip(names, given, strict=True):
        if value is None:
            value = default_target_return(env_id, name)
        if value is None:
            raise CollectError(
                f"no D4RL reference return is known for {env_id!r}, so the {name} target cannot "
                f"be derived: pass --target-return R (the {name} policy's return), e.g. from a "
                "random and an expert run of this environment."
            )
        if not np.isfinite(value):
            raise CollectError(f"the {name} target return must be finite, got {value}.")
        out.append((name, value))
    return out


def collect(
    env_id: str,
    level: str,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    steps: int = DEFAULT_STEPS,
    target_return: float | tuple[float, ...] | None = None,
    max_train_steps: int = DEFAULT_MAX_TRAIN_STEPS,
    max_episode_steps: int | None = None,
    overwrite: bool = False,
    sac_config: SACConfig = _DEFAULT_CONFIG,
    progress: bool = True,
) -> Path:
    """Generate a D4RL-style Minari dataset for `env_id` (see the module docstring for levels).

    **Arguments:**

    - `env_id`: a gymnasium id with Box observation and bounded Box action spaces.
    - `level`: one of `random`, `medium`, `medium-replay`, `expert`, `medium-expert`.
    - `out`: the datasets root; the dataset goes to `out/<dataset_id(env_id, level)>`.
    - `seed`: seeds the SAC, the environments' resets and the random actions.
    - `steps`: transitions recorded per policy (`random`, `medium`, `expert`; twice for
      `medium-expert`); unused by `medium-replay`, whose size is the training length.
    - `target_return`: overrides the default target (`medium`, `medium-replay`, `expert`); a pair
      `(medium, expert)` for `medium-expert`. Required when the env has no D4RL reference.
    - `max_train_steps`: environment steps of training after which `collect` gives up.
    - `max_episode_steps`: overrides the env's time limit (truncations are recorded as such).
    - `overwrite`: replace an existing, non-empty dataset folder.
    - `sac_config`: SAC hyperparameters and schedule (`SACConfig`).
    - `progress`: show tqdm progress bars.

    **Returns:** the dataset folder (holding `data/metadata.json`), loadable by path.

    **Raises:** `CollectError` for a bad request or a target not reached in time.
    """
    started = time.time()
    if level not in LEVELS:
        raise CollectError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}.")
    for name, value in (("steps", steps), ("max_train_steps", max_train_steps)):
        if not (isinstance(value, int) and value >= 1):
            raise CollectError(
                f"--{name.replace('_', '-')} must be a positive integer, got {value}."
            )
    if not (isinstance(seed, int) and seed >= 0):
        raise CollectError(f"--seed must be a non-negative integer, got {seed}.")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise CollectError(f"--max-episode-steps must be positive, got {max_episode_steps}.")
    make_env = lambda: make_gym_env(env_id, max_episode_steps)
    make_env().close()  # refuse a bad env id before anything else
    targets = _targets(env_id, level, target_return)
    # Minari joins paths under MINARI_DATASETS_PATH in ways that need it absolute; the command
    # records `out` as given.
    root = Path(out).absolute()
    if root.is_dir():
        recover_interrupted(root, dataset_id(env_id, level))
    folder = prepare_folder(root, dataset_id(env_id, level), overwrite)
    command = collect_command(
        env_id, level, Path(out), seed, steps, target_return, max_train_steps, max_episode_steps
    )
    # Collect beside the old data, in a staging root, and swap only a complete dataset in:
    # a failed or interrupted collection leaves any existing dataset as it was.
    staging = Path(tempfile.mkdtemp(prefix=f".collect-{os.getpid()}-", dir=root))
    try:
        staged = staging / dataset_id(env_id, level)
        with datasets_root(staging):
            parts = _run_level(
                env_id,
                level,
                seed,
                steps,
                targets,
                max_train_steps,
                make_env,
                sac_config,
                progress,
                staged,
                command,
            )
        elapsed = time.time() - started
        write_metadata(staged, env_id, level, seed, steps, max_train_steps, max_episode_steps,
                        command, sac_config, parts, elapsed)  # fmt: skip
        swap_into_place(staging, root, dataset_id(env_id, level))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _run_level(
    env_id,
    level,
    seed,
    steps,
    targets,
    max_train_steps,
    make_env,
    config,
    progress,
    folder,
    command,
) -> list[dict]:
    """Train and record what `level` asks for; write the Minari dataset to `folder`."""
    from minari import DataCollector

    # Each recorded part draws from its own streams, named by the part, so that the expert part
    # of `medium-expert` is bit-identical to the `expert` level run with the same seed.
    part_ids = {"random": 0, "medium": 1, "expert": 2}
    record_rng = lambda part: np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(2, part_ids[part]))
    )
    record_key = lambda part: jr.fold_in(jr.key(seed), 2**20 + part_ids[part])
    if level == "random":
        collector = DataCollector(make_env())
        try:
            scale = ActionScale(collector.action_space)
            action_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
            policy = lambda obs, t: np.clip(
                action_rng.uniform(scale.low, scale.high).astype(np.float32), scale.low, scale.high
            )
            recorder = Recorder(collector, progress)
            part = recorder.record(policy, steps, "random", record_rng("random"))
            part.update(level="random", target_return=None, eval_return=None, train_steps=0)
            create_dataset(collector, folder, env_id, level, command, [part])
        finally:
            close_collector(collector)
        return [part]

    capacity = -(-min(config.buffer_size, max_train_steps) // config.chunk_size) * config.chunk_size
    capacity = min(capacity, config.buffer_size)
    replay = level == "medium-replay"
    train_env = DataCollector(make_env()) if replay else make_env()
    collector = None if replay else DataCollector(make_env())
    trainer = SACTrainer(train_env, make_env, config, seed, capacity, progress)
    parts = []
    try:
        recorder = None if replay else Recorder(collector, progress)
        for name, target in targets:
            part = trainer.train_until(name, target, max_train_steps)
            part["train_steps"] = trainer.steps
            if replay:
                part.update(first_episode=0, steps=trainer.steps)
            else:
                policy = trainer.sampling_policy(record_key(name))
                part.update(recorder.record(policy, steps, f"record {name}", record_rng(name)))
            parts.append(part)
        dataset = create_dataset(
            train_env if replay else collector, folder, env_id, level, command, parts
        )
        if replay:
            parts[0]["episodes"] = dataset.total_episodes
    finally:
        trainer.close()
        for env in (train_env, collector):
            if env is not None and hasattr(env, "_tmp_dir"):
                close_collector(env)
            elif env is not None:
                env.close()
    return parts
