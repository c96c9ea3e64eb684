"""Policy evaluation in the environments of every domain (gymnasium MuJoCo, AntMaze, Adroit).

`evaluate` runs a batch of episodes in a `gymnasium.vector.SyncVectorEnv`, calling the policy once
per environment step for the whole batch (one jitted call), and reports raw returns, D4RL
normalised scores and, where the domain scores success, each episode's success.
"""

import dataclasses
from typing import Protocol, runtime_checkable

import gymnasium as gym
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ._environment_names import environment
from ._environments import Environment
from ._module_jit import module_jit
from ._scores import ReferenceScores, normalized_score

# How far (absolute) an action may stray outside the action space before it is refused.
_ACTION_TOLERANCE = 1e-6


@runtime_checkable
class BatchPolicy(Protocol):
    """What `evaluate` calls: a batch of raw observations and a key in, a batch of actions out.

    The observations are the environment's own (float64 from gymnasium, cast to float32), not
    normalised: a policy trained on normalised states owns its normaliser. The actions must lie in
    the environment's action space (nothing is clipped). A deterministic policy ignores `key`.

    Any callable with this signature works: a plain function, or an `eqx.Module` whose `__call__`
    matches (its arrays are traced, so a new module with the same structure reuses the compiled
    call).
    """

    def __call__(
        self, observations: Float[Array, "n obs_dim"], key: PRNGKeyArray
    ) -> Float[Array, "n act_dim"]: ...


@runtime_checkable
class ReportingPolicy(Protocol):
    """A `BatchPolicy` that can also say, per row, something about each decision it made.

    `evaluate` calls `act_and_report` instead of `__call__` when a policy has it, and averages
    every reported quantity over each episode's steps (`EvaluationResult.reports`). The
    actions must be those `__call__` returns. `SPARPolicy` reports `gate_acceptance` (1 where
    the gate used the residual, 0 where it fell back to the anchor).
    """

    def __call__(
        self, observations: Float[Array, "n obs_dim"], key: PRNGKeyArray
    ) -> Float[Array, "n act_dim"]: ...

    def act_and_report(
        self, observations: Float[Array, "n obs_dim"], key: PRNGKeyArray
    ) -> tuple[Float[Array, "n act_dim"], dict[str, Float[Array, " n"]]]: ...


@dataclasses.dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Per-episode results of `evaluate`.

    **Fields:**

    - `returns`: undiscounted return of each episode (float64), shape `(episodes,)`.
    - `lengths`: number of steps of each episode, shape `(episodes,)`.
    - `scores`: D4RL normalised scores, `100 * (return - min) / (max - min)`, or None when no
      reference is known for the environment.
    - `env_id`: the gymnasium id that was evaluated.
    - `reference`: the reference returns used for `scores`, or None.
    - `successes`: for a domain scored by success (AntMaze), whether each episode reached its
      goal (its return is then 1, and its score 100); None elsewhere.
    - `reports`: for a `ReportingPolicy`, each reported quantity's mean over the steps of
      each episode, `{name: (episodes,)}`; empty otherwise.
    """

    returns: Float[np.ndarray, " episodes"]
    lengths: Int[np.ndarray, " episodes"]
    scores: Float[np.ndarray, " episodes"] | None
    env_id: str
    reference: ReferenceScores | None
    reports: dict[str, Float[np.ndarray, " episodes"]] = dataclasses.field(default_factory=dict)
    successes: Bool[np.ndarray, " episodes"] | None = None

    @property
    def mean_return(self) -> float:
        """Mean of `returns`."""
        return float(np.mean(self.returns))

    @property
    def mean_score(self) -> float | None:
        """Mean of `scores`, or None when there are no scores."""
        return None if self.scores is None else float(np.mean(self.scores))


def make_env(env: "str | Environment", *, max_episode_steps: int | None = None) -> gym.Env:
    """Make one environment, flattened and scored as its domain says (`Environment.make`).

    **Arguments:**

    - `env`: an [`spar_eqx.Environment`][], a gymnasium id (`"Hopper-v5"`,
      `"AntMaze_UMaze-v4"`, `"AdroitHandPen-v1"`) or a D4RL dataset name
      (`"antmaze-umaze-diverse-v2"`, `"pen-cloned-v1"`).
    - `max_episode_steps`: episode cap; None keeps the environment's own.

    **Returns:** the environment. Close it when done. An unknown id, or a domain whose package
    is missing, is refused with a `ValueError` that names what to pass or install.
    """
    return as_environment(env).make(max_episode_steps)


def as_environment(env: "str | Environment") -> Environment:
    """`env` itself, or the `Environment` an id or D4RL dataset name stands for."""
    return env if isinstance(env, Environment) else environment(env)


def env_spaces(
    env: "str | Environment",
) -> tuple[int, int, Float[np.ndarray, " act_dim"], Float[np.ndarray, " act_dim"]]:
    """Observation and action sizes and action bounds of an environment.

    **Arguments:**

    - `env`: an `Environment`, a gymnasium id or a D4RL dataset name (see `make_env`).

    **Returns:** `(obs_dim, act_dim, action_low, action_high)`, the bounds as float arrays of shape
    `(act_dim,)`; `obs_dim` is that of the flattened observation.

    Raises `ValueError` for an unknown id, or when either space is not a 1-D `Box`.
    """
    env = as_environment(env)
    made = env.make()
    try:
        return _box_spaces(env.env_id, made.observation_space, made.action_space)
    finally:
        made.close()


def _box_spaces(env_id, observation_space, action_space):
    for name, space in (("observation", observation_space), ("action", action_space)):
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(
                f"{env_id!r} has {name} space {space}; evaluation supports only flat (1-D) Box "
                "observation and action spaces."
            )
    low = np.asarray(action_space.low, dtype=np.float64)
    high = np.asarray(action_space.high, dtype=np.float64)
    return observation_space.shape[0], action_space.shape[0], low, high


def evaluate(
    policy: BatchPolicy,
    env: "str | Environment",
    episodes: int,
    seed: int,
    *,
    key: PRNGKeyArray | None = None,
    reference: ReferenceScores | tuple[float, float] | None = None,
    max_episode_steps: int | None = None,
    num_envs: int | None = None,
) -> EvaluationResult:
    """Run `episodes` episodes of `policy` in `env` and report returns and normalised scores.

    The episodes run side by side in a `gymnasium.vector.SyncVectorEnv` of `num_envs` copies of
    the environment, in `ceil(episodes / num_envs)` rounds. Episode `i` is always seeded with
    `seed + i` (round `r` resets the vector env with `seed + r * num_envs`), so the returns of a
    deterministic policy do not depend on `num_envs`. Each step, the policy (jitted like
    `eqx.filter_jit`, its PyTree partitioned once for all steps) is called once on the float32
    observations of all environments. An environment's episode counts until its first
    `terminated` or `truncated`; afterwards it is still stepped (gymnasium resets it) but
    nothing more is counted. A round stops when all of its episodes have ended.

    The policy must return actions inside the action space: every step's actions are checked
    (shape `(num_envs, act_dim)`, finite, within `[low, high]` up to `1e-6`) and a `ValueError` is
    raised otherwise; nothing is clipped.

    **Arguments:**

    - `policy`: a [`spar_eqx.BatchPolicy`][]: `policy(observations, key) -> actions`; a
      [`spar_eqx.ReportingPolicy`][] also has its reports averaged per episode.
    - `env`: an [`spar_eqx.Environment`][] (a dataset's, `dataset.environment`), a gymnasium
      id such as `"Hopper-v5"`, or a D4RL dataset name such as `"pen-cloned-v1"`. Its domain
      decides the scoring: AntMaze episodes end at the goal (D4RL's radius 0.5) with return 1,
      and their score is 100 x the success rate.
    - `episodes`: number of episodes, at least 1.
    - `seed`: seeds episode `i` with `seed + i`, and the policy key when `key` is None.
    - `key`: the policy's randomness, split once per step; default `jr.key(seed)`.
    - `reference`: `(min, max)` returns mapping to scores 0 and 100 (e.g. Minari's `ref_min_score`
      and `ref_max_score`); default: D4RL's constants for the id's family
      (`spar_eqx.reference_scores(env_id)`), or no scores when the family is unknown.
    - `max_episode_steps`: episode cap; None keeps the environment's own (an Adroit task's is
      D4RL's horizon: 100 steps for pen, 200 for the others).
    - `num_envs`: environments run at once; default `episodes` (one round).

    **Returns:** an [`spar_eqx.EvaluationResult`][].
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}.")
    if num_envs is None:
        num_envs = episodes
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}.")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise ValueError(f"max_episode_steps must be at least 1 or None, got {max_episode_steps}.")
    env = as_environment(env)
    env_id = env.env_id
    if reference is None:
        reference = env.reference
    else:
        reference = ReferenceScores(float(reference[0]), float(reference[1]))
    if key is None:
        key = jr.key(seed)

    # Validate the id (and the spaces) on one env before building the vector env.
    probe = env.make(max_episode_steps)
    try:
        obs_dim, act_dim, low, high = _box_spaces(
            env_id, probe.observation_space, probe.action_space
        )
        action_dtype = probe.action_space.dtype
        if probe.spec is None or probe.spec.max_episode_steps is None:
            raise ValueError(
                f"{env_id!r} has no episode cap; pass max_episode_steps so evaluation ends."
            )
    finally:
        probe.close()

    envs = gym.vector.SyncVectorEnv([lambda: env.make(max_episode_steps)] * num_envs)
    returns = np.zeros(episodes, dtype=np.float64)
    lengths = np.zeros(episodes, dtype=np.int64)
    reports: dict[str, np.ndarray] = {}
    try:
        for start in range(0, episodes, num_envs):
            # Envs past the last episode (in the last round) run but are never counted.
            count = min(num_envs, episodes - start)
            active = np.arange(num_envs) < count
            observations, _ = envs.reset(seed=seed + start)
            round_returns = np.zeros(num_envs, dtype=np.float64)
            round_lengths = np.zeros(num_envs, dtype=np.int64)
            round_reports: dict[str, np.ndarray] = {}
            while active.any():
                key, step_key = jr.split(key)
                obs = jnp.asarray(observations, dtype=jnp.float32)
                actions, report = _act_and_report(policy, obs, step_key)
                actions = _check_actions(actions, num_envs, act_dim, low, high)
                for name, values in report.items():
                    total = round_reports.setdefault(name, np.zeros(num_envs, np.float64))
                    total += np.where(active, np.asarray(values, np.float64), 0.0)
                observations, rewards, terminated, truncated, _ = envs.step(
                    actions.astype(action_dtype)
                )
                round_returns += np.where(active, rewards, 0.0)
                round_lengths += active
                active &= ~(terminated | truncated)
            returns[start : start + count] = round_returns[:count]
            lengths[start : start + count] = round_lengths[:count]
            for name, total in round_reports.items():
                mean = reports.setdefault(name, np.zeros(episodes, np.float64))
                mean[start : start + count] = total[:count] / round_lengths[:count]
    finally:
        envs.close()

    scores = None if reference is None else normalized_score(returns, reference)
    return EvaluationResult(
        returns=returns,
        lengths=lengths,
        scores=scores,
        env_id=env_id,
        reference=reference,
        reports=reports,
        successes=returns > 0.5 if env.domain.scoring == "success" else None,
    )


def act_and_report(policy: BatchPolicy, observations, key):
    """`policy`'s actions and its reports (none for a policy that is not a
    `ReportingPolicy`): what `evaluate` calls each step."""
    if isinstance(policy, ReportingPolicy):
        return policy.act_and_report(observations, key)
    return policy(observations, key), {}


# The policy's arrays are traced, so a policy of the same structure reuses the compile; its
# partition into arrays and the rest is done on the first step, not on every step.
_act_and_report = module_jit(act_and_report)


def _check_actions(actions, n, act_dim, low, high) -> np.ndarray:
    """The policy's actions as a numpy array, refused unless `(n, act_dim)`, finite, in bounds."""
    shape = getattr(actions, "shape", None)
    if shape != (n, act_dim):
        raise ValueError(
            f"the policy must return actions of shape (n, act_dim) = ({n}, {act_dim}), one row per "
            f"environment; got shape {shape}."
        )
    if not jnp.issubdtype(actions.dtype, jnp.floating):
        raise ValueError(
            f"the policy must return floating-point actions; got dtype {actions.dtype}."
        )
    actions = np.asarray(actions, dtype=np.float64)
    if not np.all(np.isfinite(actions)):
        raise ValueError("the policy returned non-finite actions (NaN or inf).")
    excess = np.maximum(low - actions, actions - high)
    if np.any(excess > _ACTION_TOLERANCE):
        row, col = np.unravel_index(np.argmax(excess), excess.shape)
        raise ValueError(
            f"the policy returned an action outside the action space [low, high]: action "
            f"[{row}, {col}] = {actions[row, col]} with bounds [{low[col]}, {high[col]}]. The "
            "policy must produce actions in the environment's action space (evaluate does not "
            "clip); squash or clip inside the policy."
        )
    return actions
