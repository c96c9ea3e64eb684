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

import argparse
import dataclasses
import os
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gymnasium as gym
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from tqdm.auto import tqdm

from .._scores import reference_scores
from ._sac import (
    SACBatch,
    SACConfig,
    _act_step,
    act,
    buffer_add,
    buffer_init,
    sac_init,
    sac_update_chunk,
)

LEVELS = ("random", "medium", "medium-replay", "expert", "medium-expert")
MEDIUM_FRACTION = 1.0 / 3.0
EXPERT_FRACTION = 0.9
DEFAULT_STEPS = 1_000_000
DEFAULT_MAX_TRAIN_STEPS = 1_000_000
_DEFAULT_CONFIG = SACConfig()


class CollectError(ValueError):
    """What `collect` was asked cannot be done; the message says what was given and what to do."""


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


def _make_env(env_id: str, max_episode_steps: int | None) -> gym.Env:
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as error:
        raise CollectError(
            f"unknown or unavailable gymnasium environment {env_id!r} ({error}); pass a registered "
            "id such as 'Hopper-v5' (`gymnasium.pprint_registry()` lists them)."
        ) from error
    box = gym.spaces.Box
    if not isinstance(env.action_space, box) or not isinstance(env.observation_space, box):
        env.close()
        raise CollectError(
            f"{env_id!r} has action space {env.action_space} and observation space "
            f"{env.observation_space}; collect supports continuous control only (both Box)."
        )
    if not (
        np.all(np.isfinite(env.action_space.low)) and np.all(np.isfinite(env.action_space.high))
    ):
        env.close()
        raise CollectError(
            f"{env_id!r} has an unbounded action space {env.action_space}; SAC's tanh policy "
            "needs finite bounds."
        )
    return env


@contextmanager
def _datasets_root(root: Path) -> Iterator[None]:
    """Point Minari (`MINARI_DATASETS_PATH`) at `root` for the duration of the block."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


class _ActionScale:
    """Maps the policy's `[-1, 1]` actions to the env's `[low, high]` (rounding clipped)."""

    def __init__(self, space: gym.spaces.Box):
        self.low = space.low.astype(np.float32)
        self.high = space.high.astype(np.float32)

    def __call__(self, unit: np.ndarray) -> np.ndarray:
        env_action = self.low + (unit.astype(np.float32) + 1.0) * 0.5 * (self.high - self.low)
        return np.clip(env_action, self.low, self.high).astype(np.float32)


def _close_collector(collector) -> None:
    """Close a `DataCollector` and its temporary folder without a ResourceWarning later.

    Minari 0.5.4's `close` removes the folder by hand, leaving the `TemporaryDirectory` object to
    warn when it is collected; `cleanup` (which tolerates the missing folder) detaches it.
    """
    collector.close()
    tmp_dir = getattr(collector, "_tmp_dir", None)
    if tmp_dir is not None:
        tmp_dir.cleanup()


class _Recorder:
    """Steps a `DataCollector`-wrapped env for a number of steps with a given policy."""

    def __init__(self, collector, progress: bool):
        self.collector, self.progress = collector, progress
        self.episodes = 0

    def record(self, policy, steps: int, desc: str, rng: np.random.Generator) -> dict:
        """Record `steps` transitions of `policy(obs, t)`, resetting with seeds from `rng`."""
        self.rng = rng
        first = self.episodes
        obs, _ = self.collector.reset(seed=int(self.rng.integers(2**31 - 1)))
        self.episodes += 1
        bar = tqdm(total=steps, desc=desc, unit="step", disable=not self.progress, leave=False)
        for t in range(steps):
            obs, _, terminated, truncated, _ = self.collector.step(policy(obs, t))
            if (terminated or truncated) and t + 1 < steps:
                obs, _ = self.collector.reset(seed=int(self.rng.integers(2**31 - 1)))
                self.episodes += 1
            if (t + 1) % 1000 == 0 or t + 1 == steps:
                bar.update((t + 1) - bar.n)
        bar.close()
        return {"first_episode": first, "episodes": self.episodes - first, "steps": steps}


class _Trainer:
    """Online SAC on one environment: chunks of env steps, then a compiled chunk of updates."""

    def __init__(self, env, make_env, config: SACConfig, seed: int, capacity: int, progress: bool):
        self.env, self.config, self.progress = env, config, progress
        self.scale = _ActionScale(env.action_space)
        self.obs_dim = int(np.prod(env.observation_space.shape))
        self.act_dim = int(np.prod(env.action_space.shape))
        init_key, self.update_key, self.policy_key = jr.split(jr.key(seed), 3)
        train_seq, eval_seq = np.random.SeedSequence(seed).spawn(2)
        self.rng, self.eval_rng = np.random.default_rng(train_seq), np.random.default_rng(eval_seq)
        self.state = sac_init(self.obs_dim, self.act_dim, config, init_key)
        self.buffer = buffer_init(capacity, self.obs_dim, self.act_dim)
        self.eval_envs = [make_env() for _ in range(config.eval_episodes)]
        self.steps = self.chunks = self.episodes = 0
        self.last_eval: float | None = None
        self.obs = self._reset()

    def _reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=int(self.rng.integers(2**31 - 1)))
        self.episodes += 1
        return obs

    def _collect_chunk(self) -> None:
        n, c = self.config.chunk_size, self.config
        obs = np.zeros((n, self.obs_dim), np.float32)
        next_obs = np.zeros((n, self.obs_dim), np.float32)
        actions = np.zeros((n, self.act_dim), np.float32)
        rewards, dones = np.zeros(n, np.float32), np.zeros(n, np.float32)
        key = jr.fold_in(self.policy_key, self.chunks)
        for t in range(n):
            if self.steps < c.start_steps:
                unit = self.rng.uniform(-1.0, 1.0, self.act_dim).astype(np.float32)
            else:
                x = jnp.asarray(self.obs, jnp.float32).reshape(-1)
                unit = np.asarray(_act_step(self.state.actor, x, key, np.asarray(t, np.int32)))
            new_obs, reward, terminated, truncated, _ = self.env.step(self.scale(unit))
            obs[t], actions[t], rewards[t] = np.ravel(self.obs), unit, reward
            next_obs[t], dones[t] = np.ravel(new_obs), float(terminated)
            self.steps += 1
            self.obs = self._reset() if (terminated or truncated) else new_obs
        batch = SACBatch(*(jnp.asarray(x) for x in (obs, actions, rewards, next_obs, dones)))
        self.buffer = buffer_add(self.buffer, batch)
        self.chunks += 1

    def evaluate(self) -> float:
        """Mean return of `eval_episodes` deterministic episodes (one batched call a step)."""
        envs = self.eval_envs
        obs = [e.reset(seed=int(self.eval_rng.integers(2**31 - 1)))[0] for e in envs]
        returns, alive = np.zeros(len(envs)), np.ones(len(envs), bool)
        while alive.any():
            batch = jnp.asarray(np.stack([np.ravel(o) for o in obs]), jnp.float32)
            units = np.asarray(act(self.state.actor, batch))
            for i in np.flatnonzero(alive):
                obs[i], reward, terminated, truncated, _ = envs[i].step(self.scale(units[i]))
                returns[i] += float(reward)
                alive[i] = not (terminated or truncated)
        return float(np.mean(returns))

    def train_until(self, name: str, target: float, max_steps: int) -> dict:
        """Train until the evaluation return first reaches `target`; the part's summary."""
        c = self.config
        bar = tqdm(
            total=max_steps,
            initial=self.steps,
            desc=f"SAC to {name}",
            unit="step",
            disable=not self.progress,
        )
        try:
            while self.last_eval is None or self.last_eval < target:
                if self.steps >= max_steps:
                    last = "none yet" if self.last_eval is None else f"{self.last_eval:.1f}"
                    raise CollectError(
                        f"the SAC did not reach the {name} target return {target:.1f} within "
                        f"--max-train-steps {max_steps} environment steps (last evaluation "
                        f"return: {last}, evaluations every {c.eval_interval} steps after "
                        f"{c.start_steps} random steps); raise --max-train-steps or lower "
                        "--target-return."
                    )
                self._collect_chunk()
                if self.steps >= c.start_steps:
                    key = jr.fold_in(self.update_key, self.chunks)
                    updates = c.chunk_size * c.updates_per_step
                    self.state, _ = sac_update_chunk(self.state, self.buffer, key, updates)
                    if self.steps % c.eval_interval == 0:
                        self.last_eval = self.evaluate()
                bar.update(self.steps - bar.n)
                shown = "-" if self.last_eval is None else f"{self.last_eval:.1f}"
                bar.set_postfix(eval_return=shown, target=f"{target:.1f}", refresh=False)
        finally:
            bar.close()
        return {"level": name, "target_return": target, "eval_return": self.last_eval}

    def sampling_policy(self, key):
        actor = self.state.actor

        def policy(obs, t):
            x = jnp.asarray(obs, jnp.float32).reshape(-1)
            return self.scale(np.asarray(_act_step(actor, x, key, np.asarray(t, np.int32))))

        return policy

    def close(self) -> None:
        for env in self.eval_envs:
            env.close()


def _command(env_id, level, out, seed, steps, target_return, max_train_steps, max_episode_steps):
    words = ["spar-eqx", "collect", "--env", env_id, "--level", level, "--out", str(out)]
    words += ["--seed", str(seed)]
    if level != "medium-replay":
        words += ["--steps", str(steps)]
    if level != "random":
        words += ["--max-train-steps", str(max_train_steps)]
    if target_return is not None:
        values = [target_return] if isinstance(target_return, int | float) else target_return
        words += ["--target-return", *(repr(float(v)) for v in values)]
    if max_episode_steps is not None:
        words += ["--max-episode-steps", str(max_episode_steps)]
    return shlex.join(words)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    names = ("spar_eqx", "jax", "equinox", "optax", "gymnasium", "mujoco", "minari")
    found = {}
    for name in names:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return found


def _prepare_folder(out: Path, dataset: str, overwrite: bool) -> Path:
    """The dataset's final folder, checked; nothing in it is touched until the swap."""
    if out.exists() and not out.is_dir():
        raise CollectError(f"--out must be a directory (the datasets root), got the file {out}.")
    folder = out / dataset
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise CollectError(
            f"the dataset folder {folder} already exists and is not empty; choose another "
            "--out, delete it, or pass --overwrite to replace it."
        )
    out.mkdir(parents=True, exist_ok=True)
    return folder


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _recover_interrupted(root: Path, dataset: str) -> None:
    """Undo what a killed collection into `root` left: put back a dataset it had moved aside
    (if no new one took its place) and delete its staging folder.

    Only leftovers of processes that no longer run are touched, so a collection running
    beside this one keeps its files.
    """
    final = root / dataset
    for old in final.parent.glob(f".{final.name}.replaced-*"):
        pid = old.name.rpartition("-")[2]
        if not pid.isdigit() or _pid_alive(int(pid)):
            continue
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, final)
            print(
                f"spar-eqx collect: restored {final}, which an interrupted collection had "
                "moved aside.",
                file=sys.stderr,
            )
    for staging in root.glob(".collect-*-*"):
        pid = staging.name.split("-")[1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _swap_into_place(staging: Path, root: Path, dataset: str) -> None:
    """Move the finished dataset from `staging` to `root`, replacing any old one last.

    The old dataset is renamed aside, the new one renamed in, and only then the old one
    deleted: at every moment one complete dataset is at `root / dataset` or beside it.
    Minari's namespace files are copied when `root` has none.
    """
    for path in staging.rglob("namespace_metadata.json"):
        target = root / path.relative_to(staging)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    final = root / dataset
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(f".{final.name}.replaced-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(staging / dataset, final)
    shutil.rmtree(old, ignore_errors=True)


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
    make_env = lambda: _make_env(env_id, max_episode_steps)
    make_env().close()  # refuse a bad env id before anything else
    targets = _targets(env_id, level, target_return)
    # Minari joins paths under MINARI_DATASETS_PATH in ways that need it absolute; the command
    # records `out` as given.
    root = Path(out).absolute()
    if root.is_dir():
        _recover_interrupted(root, dataset_id(env_id, level))
    folder = _prepare_folder(root, dataset_id(env_id, level), overwrite)
    command = _command(
        env_id, level, Path(out), seed, steps, target_return, max_train_steps, max_episode_steps
    )
    # Collect beside the old data, in a staging root, and swap only a complete dataset in:
    # a failed or interrupted collection leaves any existing dataset as it was.
    staging = Path(tempfile.mkdtemp(prefix=f".collect-{os.getpid()}-", dir=root))
    try:
        staged = staging / dataset_id(env_id, level)
        with _datasets_root(staging):
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
        _write_metadata(staged, env_id, level, seed, steps, max_train_steps, max_episode_steps,
                        command, sac_config, parts, elapsed)  # fmt: skip
        _swap_into_place(staging, root, dataset_id(env_id, level))
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
            scale = _ActionScale(collector.action_space)
            action_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
            policy = lambda obs, t: np.clip(
                action_rng.uniform(scale.low, scale.high).astype(np.float32), scale.low, scale.high
            )
            recorder = _Recorder(collector, progress)
            part = recorder.record(policy, steps, "random", record_rng("random"))
            part.update(level="random", target_return=None, eval_return=None, train_steps=0)
            _create(collector, folder, env_id, level, command, [part])
        finally:
            _close_collector(collector)
        return [part]

    capacity = -(-min(config.buffer_size, max_train_steps) // config.chunk_size) * config.chunk_size
    capacity = min(capacity, config.buffer_size)
    replay = level == "medium-replay"
    train_env = DataCollector(make_env()) if replay else make_env()
    collector = None if replay else DataCollector(make_env())
    trainer = _Trainer(train_env, make_env, config, seed, capacity, progress)
    parts = []
    try:
        recorder = None if replay else _Recorder(collector, progress)
        for name, target in targets:
            part = trainer.train_until(name, target, max_train_steps)
            part["train_steps"] = trainer.steps
            if replay:
                part.update(first_episode=0, steps=trainer.steps)
            else:
                policy = trainer.sampling_policy(record_key(name))
                part.update(recorder.record(policy, steps, f"record {name}", record_rng(name)))
            parts.append(part)
        dataset = _create(train_env if replay else collector, folder, env_id, level, command, parts)
        if replay:
            parts[0]["episodes"] = dataset.total_episodes
    finally:
        trainer.close()
        for env in (train_env, collector):
            if env is not None and hasattr(env, "_tmp_dir"):
                _close_collector(env)
            elif env is not None:
                env.close()
    return parts


_DESCRIPTIONS = {
    "random": "{steps} transitions of uniform random actions",
    "medium": (
        "{steps} transitions of the sampled actions of the first SAC policy whose mean "
        "deterministic evaluation return reached {target}"
    ),
    "medium-replay": (
        "every transition an online SAC collected while training until its mean deterministic "
        "evaluation return first reached {target} (its replay buffer)"
    ),
    "expert": (
        "{steps} transitions of the sampled actions of the first SAC policy whose mean "
        "deterministic evaluation return reached {target}"
    ),
    "medium-expert": "the medium transitions followed by the expert ones (targets {target})",
}


def _create(collector, folder: Path, env_id: str, level: str, command: str, parts: list[dict]):
    ref = reference_scores(env_id)
    targets = " and ".join(f"{p['target_return']:.1f}" for p in parts if p["target_return"])
    what = _DESCRIPTIONS[level].format(steps=parts[0]["steps"], target=targets)
    description = (
        f"{level} data for {env_id}, D4RL recipe: {what}. Generated by spar_eqx with `{command}`."
    )
    with warnings.catch_warnings():
        # We have no versioned code URL or e-mail to give; Minari warns about each missing one.
        warnings.filterwarnings("ignore", message="`code_permalink` is set to None")
        warnings.filterwarnings("ignore", message="`author_email` is set to None")
        # Minari 0.5.4 replaces its (emptied) temporary folder without cleaning up the old one.
        warnings.filterwarnings(
            "ignore", message="Implicitly cleaning up", category=ResourceWarning
        )
        return collector.create_dataset(
            dataset_id=str(folder.relative_to(folder.parent.parent).as_posix()),
            eval_env=collector.env.spec,
            algorithm_name="random" if level == "random" else "SAC (spar_eqx, D4RL recipe)",
            author="spar_eqx",
            ref_min_score=None if ref is None else ref.min,
            ref_max_score=None if ref is None else ref.max,
            description=description,
        )


def _write_metadata(
    folder,
    env_id,
    level,
    seed,
    steps,
    max_train_steps,
    max_episode_steps,
    command,
    config,
    parts,
    elapsed,
) -> None:
    from minari.dataset.minari_storage import MinariStorage

    ref = reference_scores(env_id)
    info = {
        "command": command,
        "seed": seed,
        "env_id": env_id,
        "level": level,
        "steps": None if level == "medium-replay" else steps,
        "max_train_steps": max_train_steps if level != "random" else None,
        "max_episode_steps": max_episode_steps,
        "reference_scores": None if ref is None else {"min": ref.min, "max": ref.max},
        "parts": parts,
        "sac_config": dataclasses.asdict(config) if level != "random" else None,
        "versions": _versions(),
        "wall_time_s": round(elapsed, 1),
    }
    MinariStorage.read(folder / "data").update_metadata({"spar_eqx": info})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `collect` options to `parser` (the `spar-eqx collect` subcommand).

    **Arguments:** `parser`, the subcommand's `argparse` parser (modified in place).
    """
    parser.add_argument("--env", required=True, help="gymnasium id, e.g. Hopper-v5")
    parser.add_argument("--level", required=True, choices=LEVELS, help="which D4RL-style dataset")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="datasets root; the dataset goes to OUT/<env>/<level>-v0 (a Minari dataset folder)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of everything (default 0)")
    parser.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_STEPS,
        help=f"transitions recorded per policy (default {DEFAULT_STEPS}; unused by medium-replay)",
    )
    parser.add_argument(
        "--target-return",
        type=float,
        nargs="+",
        metavar="R",
        help="target evaluation return (medium-expert: two, R_MEDIUM R_EXPERT); default from "
        "D4RL's reference returns: 1/3 (medium) or 0.9 (expert) of the way from random to expert",
    )
    parser.add_argument(
        "--max-train-steps",
        type=int,
        default=DEFAULT_MAX_TRAIN_STEPS,
        help=f"give up if the target is not reached after this many env steps "
        f"(default {DEFAULT_MAX_TRAIN_STEPS})",
    )
    parser.add_argument(
        "--max-episode-steps", type=int, default=None, help="override the env's time limit"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_from_args(args: argparse.Namespace) -> int:
    """Run `spar-eqx collect` from parsed arguments; prints the dataset folder.

    **Arguments:** `args`, the namespace `add_arguments`'s options produce.

    **Returns:** the exit status 0; a `CollectError` is re-raised as a `UserError` (exit 2).
    """
    from .._errors import UserError

    target = args.target_return
    if target is not None:
        target = float(target[0]) if len(target) == 1 else tuple(float(r) for r in target)
    try:
        folder = collect(
            args.env,
            args.level,
            args.out,
            seed=args.seed,
            steps=args.steps,
            target_return=target,
            max_train_steps=args.max_train_steps,
            max_episode_steps=args.max_episode_steps,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except CollectError as error:
        raise UserError(str(error)) from error
    print(folder)
    return 0
