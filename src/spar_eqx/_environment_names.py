"""Which `Environment` a name or a dataset means: D4RL dataset names (`pen-cloned-v1`,
`antmaze-umaze-diverse-v2`), gymnasium ids, and the specs a Minari dataset records."""

import json
import re
from collections.abc import Mapping
from typing import Any

from ._environments import ADROIT, ANTMAZE, Environment
from ._scores import env_family

_D4RL_NAME = re.compile(r"^([a-z0-9]+)-([a-z-]+)-v(\d+)$")
_GYMNASIUM_LOCOMOTION = {
    "hopper": "Hopper-v5",
    "halfcheetah": "HalfCheetah-v5",
    "walker2d": "Walker2d-v5",
    "ant": "Ant-v5",
}
_ADROIT_IDS = {
    "pen": "AdroitHandPen-v1",
    "door": "AdroitHandDoor-v1",
    "hammer": "AdroitHandHammer-v1",
    "relocate": "AdroitHandRelocate-v1",
}
_LOCOMOTION_LEVELS = ("random", "medium", "expert", "medium-replay", "medium-expert", "full-replay")
_ADROIT_LEVELS = ("human", "cloned", "expert")
# AntMaze: D4RL's mazes and the (row, col) cells of their evaluation start and goal
# (d4rl/locomotion/maze_env.py: U_MAZE_TEST, BIG_MAZE_TEST, HARDEST_MAZE_TEST), in
# gymnasium-robotics' map of the same maze (gymnasium_robotics/envs/maze/maps.py), and the
# step limits D4RL registers (700 for umaze, 1000 for medium and large).
_ANTMAZE_MAZES = {
    "umaze": ("AntMaze_UMaze-v4", "U_MAZE", (1, 1), (3, 1), 700),
    "medium": ("AntMaze_Medium-v4", "MEDIUM_MAZE", (1, 1), (6, 6), 1000),
    "large": ("AntMaze_Large-v4", "LARGE_MAZE", (1, 1), (7, 9), 1000),
}
ANTMAZE_LEVELS = {
    "umaze": "umaze", "umaze-diverse": "umaze", "medium-play": "medium",
    "medium-diverse": "medium", "large-play": "large", "large-diverse": "large",
}  # fmt: skip
# D4RL's AntMaze observations: the ant's qpos (15, x and y first) and qvel (14).
D4RL_ANTMAZE_OBS_DIM = 29


def d4rl_environment(name: str) -> Environment | None:
    """The environment of a D4RL dataset name, or None when `name` is not one.

    - `hopper|halfcheetah|walker2d|ant-<level>-v<n>`: gymnasium's v5 environment of that
      robot (D4RL recorded v3 in mujoco-py; v5 has the same observations and actions).
    - `pen|door|hammer|relocate-<human|cloned|expert>-v<n>`: gymnasium-robotics'
      `AdroitHand<Task>-v1` at D4RL's horizon (100 steps for pen, 200 for the others).
    - `antmaze-<umaze|umaze-diverse|medium-play|medium-diverse|large-play|large-diverse>-v<n>`:
      gymnasium-robotics' `AntMaze_<Maze>-v4` with D4RL's evaluation start and goal cells
      placed in its map, a continuing task that never moves its goal (as Minari's D4RL
      datasets record), and D4RL's step limit. The goal radius is the domain's (0.5).

    **Arguments:** `name`, e.g. `"antmaze-umaze-diverse-v2"` or `"pen-cloned-v1"`.

    **Returns:** an `Environment`, or None.
    """
    match = _D4RL_NAME.match(name.strip().lower())
    if match is None:
        return None
    task, level, _ = match.groups()
    source = f"the D4RL dataset name {name!r}"
    if task in _GYMNASIUM_LOCOMOTION and level in _LOCOMOTION_LEVELS:
        return Environment(_GYMNASIUM_LOCOMOTION[task], source=source)
    if task in _ADROIT_IDS and level in _ADROIT_LEVELS:
        return Environment(
            _ADROIT_IDS[task], max_episode_steps=ADROIT.horizons[task], source=source
        )
    if task == "antmaze" and level in ANTMAZE_LEVELS:
        env_id, map_name, start, goal, steps = _ANTMAZE_MAZES[ANTMAZE_LEVELS[level]]
        return Environment(
            env_id,
            kwargs={
                "maze_map": antmaze_map(map_name, start, goal),
                "continuing_task": True,
                "reset_target": False,
            },
            max_episode_steps=steps,
            source=source,
        )
    return None


def antmaze_map(name: str, start: tuple[int, int], goal: tuple[int, int]) -> list[list]:
    """gymnasium-robotics' maze `name` (`"U_MAZE"`, ...) with `"r"` at `start` and `"g"` at
    `goal`; read from gymnasium-robotics when it is installed, so the walls are its own."""
    ANTMAZE.require()
    from gymnasium_robotics.envs.maze import maps

    layout = [list(row) for row in getattr(maps, name)]
    for (row, col), mark in ((start, "r"), (goal, "g")):
        if layout[row][col] != 0:
            raise ValueError(f"{name}: cell {(row, col)} is not free ({layout[row][col]!r}).")
        layout[row][col] = mark
    return layout


def _horizon(env_id: str) -> int | None:
    """D4RL's episode length for an Adroit environment (its reference returns were measured
    at it), or None for every other."""
    return ADROIT.horizons.get(env_family(env_id) or "")


def environment(env_id: str) -> Environment:
    """The `Environment` an id names: a D4RL dataset name (`d4rl_environment`) or a gymnasium
    id, which Adroit ids get their D4RL horizon with.

    **Arguments:** `env_id`, e.g. `"Hopper-v5"`, `"AdroitHandPen-v1"` or `"pen-cloned-v1"`.

    **Returns:** an `Environment` (not yet made: `make()` checks that it exists).
    """
    named = d4rl_environment(env_id)
    if named is not None:
        return named
    return Environment(env_id, max_episode_steps=_horizon(env_id), source="the environment id")


def recorded_environment(metadata: Mapping[str, Any]) -> Environment | None:
    """The environment a Minari dataset's metadata records: its `eval_env_spec` where there is
    one (the environment the dataset's authors evaluate in), else its `env_spec`, with their
    keyword arguments and step limits. An Adroit environment gets its D4RL horizon.

    **Returns:** an `Environment`, or None when neither spec names an id.
    """
    for key in ("eval_env_spec", "env_spec"):
        text = metadata.get(key)
        if not isinstance(text, str):
            continue
        try:
            spec = json.loads(text)
        except json.JSONDecodeError:
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
            continue
        env_id = spec["id"]
        steps = _horizon(env_id)
        kwargs = spec.get("kwargs") if isinstance(spec.get("kwargs"), dict) else {}
        return Environment(
            env_id,
            kwargs=kwargs,
            max_episode_steps=steps or spec.get("max_episode_steps"),
            entry_point=spec.get("entry_point"),
            source=f"the dataset's {key}",
        )
    return None
