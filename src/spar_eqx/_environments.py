"""Where a dataset's policies act and how their episodes are scored: one `Domain` per family
of environments (gymnasium's MuJoCo locomotion, AntMaze, Adroit), and the `Environment` a
dataset names.

Loading, training, evaluation, scores and presets all ask these two values instead of testing
environment names themselves (`_environment_names` says which `Environment` a D4RL dataset
name, a gymnasium id or a Minari dataset's recorded spec means):

- a `Domain` says which package provides its environments (and which pip extra installs it),
  how an episode is scored (D4RL-normalised return, or success as AntMaze is scored), the
  episode length its reference returns were measured at, and which reward transform the
  paper uses on its data;
- an `Environment` is one concrete environment: a gymnasium id with the keyword arguments and
  step limit to make it with (from the dataset's recorded evaluation spec where there is one),
  and its domain. `Environment.make()` builds it with the observation flattened exactly as the
  loader flattens the dataset's (a `Dict` space becomes its parts concatenated in key order).
"""

import contextlib
import dataclasses
import importlib
import importlib.metadata
import io
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from ._scores import ReferenceScores, env_family, reference_scores

Scoring = Literal["return", "success"]


@dataclasses.dataclass(frozen=True)
class Domain:
    """A family of environments and the conventions its benchmark uses.

    **Fields:**

    - `name`: `"mujoco"`, `"antmaze"`, `"adroit"` or `"gymnasium"` (anything else gymnasium
      makes, scored by D4RL's constants where its family has them, else unscored).
    - `families`: the D4RL families (`spar_eqx.env_family`) that belong to it.
    - `package`: the module that registers its environments (None: gymnasium's own).
    - `extra`: the `pip install spar_eqx[extra]` that installs `package`.
    - `scoring`: `"return"` (D4RL-normalised return) or `"success"` (the episode ends when the
      goal is reached; its return is 1 then and 0 otherwise, so the D4RL score
      `100 * (R - 0) / (1 - 0)` is 100 x the success rate).
    - `success_radius`: for `"success"`, the distance between the achieved and desired goals
      that counts as reaching it.
    - `horizons`: `{family: steps}`, the episode length D4RL's reference returns were
      measured at, which evaluation uses for that family unless told otherwise.
    - `reward_transform`: the reward transform the SPAR paper applies to its data.
    - `source`: where these conventions come from.
    """

    name: str
    families: tuple[str, ...]
    package: str | None = None
    extra: str | None = None
    scoring: Scoring = "return"
    success_radius: float | None = None
    horizons: Mapping[str, int] = dataclasses.field(default_factory=dict)
    reward_transform: str = "none"
    source: str = ""

    def version(self) -> str | None:
        """The installed version of `package` (None for gymnasium's own or when absent)."""
        if self.package is None:
            return None
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return None

    def require(self) -> None:
        """Import `package` (which registers its environments); one line naming the pip extra
        when it is not installed."""
        if self.package is None:
            return
        try:
            # gymnasium-robotics prints a version notice to stderr on import (the dense Adroit
            # rewards it changed in 1.2.1; the Domains docs say what it means for scores).
            with contextlib.redirect_stderr(io.StringIO()):
                importlib.import_module(self.package)
        except ImportError as error:
            raise ValueError(
                f"{self.name} environments need the {self.package} package, which is not "
                f"installed ({error}); install it with `pip install 'spar_eqx[{self.extra}]'`."
            ) from None


MUJOCO = Domain(
    "mujoco",
    ("hopper", "halfcheetah", "walker2d", "ant"),
    source="D4RL (Fu et al. 2020): normalised return, reference returns of d4rl/infos.py",
)
ANTMAZE = Domain(
    "antmaze",
    ("antmaze",),
    package="gymnasium_robotics",
    extra="robotics",
    scoring="success",
    success_radius=0.5,
    reward_transform="antmaze",
    source=(
        "D4RL's AntMaze: an evaluation episode ends when the ant's (x, y) is within 0.5 of the "
        "goal (d4rl/locomotion/maze_env.py, eval=True); the score is 100 x the success rate "
        "(reference returns 0 and 1). gymnasium-robotics' own radius, 0.45, is not used"
    ),
)
ADROIT = Domain(
    "adroit",
    ("pen", "door", "hammer", "relocate"),
    package="gymnasium_robotics",
    extra="robotics",
    horizons={"pen": 100, "door": 200, "hammer": 200, "relocate": 200},
    source=(
        "D4RL's Adroit (hand_manipulation_suite): episodes of 100 steps for pen and 200 for "
        "door, hammer and relocate, normalised with d4rl/infos.py's reference returns"
    ),
)
OGBENCH = Domain(
    "ogbench",
    (),
    package="ogbench",
    extra="ogbench",
    scoring="success",
    source=(
        "OGBench (Park et al. 2025): a single-task episode ends when the task is solved "
        "(terminate_at_goal, the environment's info['success']); the score is 100 x the "
        "success rate. The data's rewards are OGBench's single-task rewards (0 at success, "
        "-1 elsewhere) and need no transform"
    ),
)
GYMNASIUM = Domain("gymnasium", (), source="gymnasium's registry; D4RL's constants where known")

DOMAINS: tuple[Domain, ...] = (OGBENCH, MUJOCO, ANTMAZE, ADROIT, GYMNASIUM)
"""Every domain, in the order `domain_of` tries them: OGBench's single-task environments (by
their ids, `<env>-singletask[-task<n>]-v<k>`), MuJoCo locomotion, AntMaze, Adroit, and
`gymnasium` for any other environment gymnasium can make."""

# OGBench's single-task environment ids: `cube-single-singletask-task2-v0`, `scene-singletask-v0`.
OGBENCH_SINGLETASK = re.compile(r"^[a-z0-9-]+-singletask(-task\d+)?-v\d+$")


def domain_of(env_id: str) -> Domain:
    """The `Domain` of an environment or dataset id (`"AntMaze_UMaze-v4"`, `"pen-cloned-v1"`,
    `"D4RL/pen/human-v2"`, `"Hopper-v5"`); `GYMNASIUM` when no family matches."""
    if OGBENCH_SINGLETASK.match(env_id):
        return OGBENCH
    family = env_family(env_id)
    for domain in DOMAINS:
        if family in domain.families:
            return domain
    return GYMNASIUM


@dataclasses.dataclass(frozen=True, eq=False)
class Environment:
    """One environment to act and evaluate in, made the same way every time.

    **Fields:**

    - `env_id`: its gymnasium id, e.g. `"AntMaze_UMaze-v4"`.
    - `kwargs`: keyword arguments of `gym.make` (a recorded spec's, such as AntMaze's
      `maze_map`, `continuing_task` and `reset_target`).
    - `max_episode_steps`: the step limit of an episode (None: the id's registered one).
    - `entry_point`: the recorded entry point, used when `env_id` is not registered.
    - `source`: where this description came from, for messages and `results.json`.
    """

    env_id: str
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    max_episode_steps: int | None = None
    entry_point: str | None = None
    source: str = "the environment id"

    @property
    def domain(self) -> Domain:
        """The environment's `Domain`."""
        return domain_of(self.env_id)

    @property
    def reference(self) -> ReferenceScores | None:
        """The returns that map to scores 0 and 100: 0 and 1 where the domain scores success
        (the return is the success), else D4RL's for its family, or None."""
        if self.domain.scoring == "success":
            return ReferenceScores(0.0, 1.0)
        return reference_scores(self.env_id)

    def make(self, max_episode_steps: int | None = None) -> gym.Env:
        """Build the environment, flattened and scored as its domain says.

        **Arguments:** `max_episode_steps`, a cap that replaces `self.max_episode_steps`.

        **Returns:** a gymnasium environment whose observations are flat float vectors in the
        order the loader flattens a dataset's (a `Dict` space: its parts concatenated in key
        order, gymnasium's `FlattenObservation`), and for a `"success"` domain whose episode
        ends with reward 1 when the goal is reached and has reward 0 on every other step.

        Raises `ValueError` naming the id (and the pip extra its package comes from) when it
        cannot be made.
        """
        domain = self.domain
        domain.require()
        steps = max_episode_steps or self.max_episode_steps
        try:
            if self.env_id in gym.registry or self.entry_point is None:
                env = gym.make(self.env_id, max_episode_steps=steps, **self.kwargs)
            else:
                spec = gym.envs.registration.EnvSpec(
                    id=self.env_id, entry_point=self.entry_point, kwargs=dict(self.kwargs)
                )
                env = gym.make(spec, max_episode_steps=steps)
        except (gym.error.Error, ImportError, TypeError) as err:
            raise ValueError(
                f"cannot make environment {self.env_id!r} (from {self.source}): {err}. Pass a "
                "gymnasium id such as 'Hopper-v5', 'AntMaze_UMaze-v4' or 'AdroitHandPen-v1', "
                "or a D4RL dataset name such as 'hopper-medium-v2', 'antmaze-umaze-diverse-v2' "
                "or 'pen-cloned-v1'."
            ) from err
        if domain.scoring == "success":
            env = GoalReached(env, domain.success_radius)
        if isinstance(env.observation_space, gym.spaces.Dict):
            env = gym.wrappers.FlattenObservation(env)
        return env

    @classmethod
    def from_description(cls, described: Mapping[str, Any]) -> "Environment":
        """The `Environment` a `describe()` record stands for (a policy file's, a run's)."""
        return cls(
            described["env_id"],
            kwargs=dict(described.get("kwargs") or {}),
            max_episode_steps=described.get("max_episode_steps"),
            entry_point=described.get("entry_point"),
            source=str(described.get("source", "a recorded description")),
        )

    def describe(self) -> dict[str, Any]:
        """A JSON description for `results.json`: id, kwargs, step limit, domain, scoring."""
        domain = self.domain
        return {
            "env_id": self.env_id,
            "kwargs": json.loads(json.dumps(dict(self.kwargs), default=str)),
            "max_episode_steps": self.max_episode_steps,
            "entry_point": self.entry_point,
            "domain": domain.name,
            "scoring": domain.scoring,
            "success_radius": domain.success_radius,
            "source": self.source,
            # OGBench changed when success is counted in 1.2.0, gymnasium-robotics the dense
            # Adroit rewards in 1.2.1: a score is read with the version that produced it.
            "package_version": domain.version(),
        }


class GoalReached(gym.Wrapper):
    """Success-scored evaluation: an episode's return is 1 when it solved its task, else 0.

    With a `radius` (D4RL's goal-reaching tasks, on a goal-conditioned `Dict` environment),
    success is `||achieved_goal - desired_goal|| <= radius` after a step; without one
    (OGBench), it is the environment's own `info["success"]`. The episode is over at
    success; the reward is then 1 and `info["success"]` True, and on every other step the
    reward is 0. So an episode's return is its success, whatever the wrapped environment's
    own reward (AntMaze's continuing task pays 1 on every step spent at the goal and never
    ends; OGBench's single-task reward is -1 until success).
    """

    def __init__(self, env: gym.Env, radius: float | None = None):
        super().__init__(env)
        space = env.observation_space
        if radius is not None and not (
            isinstance(space, gym.spaces.Dict)
            and {"achieved_goal", "desired_goal"} <= set(space.spaces)
        ):
            raise ValueError(
                f"{env.spec.id if env.spec else env}: success is scored from 'achieved_goal' "
                f"and 'desired_goal' observations, and its observation space is {space}."
            )
        self.radius = None if radius is None else float(radius)

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        if self.radius is None:
            success = bool(info.get("success", False))
        else:
            distance = float(np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"]))
            success = distance <= self.radius
        info = {**info, "success": success}
        return obs, float(success), bool(terminated or success), truncated, info
