"""The training data of a run: loaded, checked against its environment, normalised."""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._environments import Environment
from .._evaluation import env_spaces
from .._learner import TrainingBatch
from .._presets import check_preset
from .._run_config import RunConfig
from ..data import (
    ObservationNormalizer,
    OfflineDataset,
    Transitions,
    apply_reward_transform,
    default_reward_transform,
    load_dataset,
)


class Prepared(NamedTuple):
    """What `prepare` returns: the dataset as loaded (rewards transformed) and what trains."""

    dataset: OfflineDataset
    environment: Environment  # where the policies are evaluated (its id: dataset.env_id)
    reward_transform: str
    normalizer: ObservationNormalizer
    data: TrainingBatch  # normalised observations, with next actions
    obs_dim: int
    act_dim: int
    rescaled_from: tuple[list[float], list[float]] | None  # the data's own bounds, if rescaled


def prepare(config: RunConfig, reward_convention: str) -> Prepared:
    """Load `config.dataset`, check it against its environment, transform and normalise it.

    `--env` reaches the loader, so one environment id labels the data, picks the reference
    returns, and names the environment evaluation runs in. Refused with a `ValueError`
    (a `DatasetError` for the data itself) before anything is written: shapes that differ
    from the environment's, recorded action bounds that differ from its action space (unless
    `config.rescale_actions`, which maps them linearly onto it), or an action space other
    than `[-1, 1]`.

    **Arguments:** `config`, the run; `reward_convention`, the algorithm's (`"spar"`, `"iql"`)
    default reward transform when `config.reward_transform` is None.

    **Returns:** a `Prepared`.
    """
    dataset = load_dataset(config.dataset, env_id=config.env_id)
    env_id, environment = dataset.env_id, dataset.environment
    if config.preset is not None:
        check_preset(config.preset, dataset.name, env_id)
    obs_dim, act_dim, low, high = env_spaces(environment)
    t = dataset.transitions
    if (t.obs_dim, t.act_dim) != (obs_dim, act_dim):
        raise ValueError(
            f"dataset {dataset.name!r} has {t.obs_dim}-d observations and {t.act_dim}-d "
            f"actions but {env_id} has {obs_dim} and {act_dim}; pass the env the data "
            "came from with --env."
        )
    data_low, data_high = np.asarray(dataset.action_low), np.asarray(dataset.action_high)
    rescaled_from = None
    if not (np.allclose(data_low, low, atol=1e-6) and np.allclose(data_high, high, atol=1e-6)):
        if not config.rescale_actions:
            raise ValueError(
                f"dataset {dataset.name!r} says its actions span [{data_low}, {data_high}] but "
                f"{env_id} acts in [{low}, {high}]; its actions would be played on another "
                "scale. Pass --rescale-actions to map the dataset's bounds linearly onto the "
                "environment's, or use the environment it was recorded in."
            )
        dataset = rescale_actions(dataset, low, high)
        rescaled_from = (data_low.tolist(), data_high.tolist())
    if not (np.allclose(low, -1.0) and np.allclose(high, 1.0)):
        raise ValueError(
            f"{env_id}'s action space is [{low}, {high}]; the policies act in [-1, 1] "
            "(SPAR's Table 7), so use an environment with a normalised action space."
        )
    transform = config.reward_transform or default_reward_transform(env_id, reward_convention)
    dataset = apply_reward_transform(dataset, transform)
    normalizer = ObservationNormalizer.from_transitions(dataset.transitions)
    t = dataset.transitions
    normalised = Transitions(
        observations=jax.vmap(normalizer)(t.observations),
        actions=t.actions,
        rewards=t.rewards,
        next_observations=jax.vmap(normalizer)(t.next_observations),
        terminals=t.terminals,
        timeouts=t.timeouts,
    )
    data = TrainingBatch.from_transitions(normalised)
    return Prepared(
        dataset, environment, transform, normalizer, data, obs_dim, act_dim, rescaled_from
    )


def rescale_actions(dataset: OfflineDataset, low: np.ndarray, high: np.ndarray) -> OfflineDataset:
    """`dataset` with its actions mapped linearly from its recorded bounds onto `[low, high]`.

    **Arguments:** `dataset`, whose every action lies in `[action_low, action_high]`; `low`,
    `high`, the environment's `(act_dim,)` bounds.

    **Returns:** the same dataset with `a' = low + (a - action_low) * (high - low) /
    (action_high - action_low)` and the new bounds recorded. A dimension whose recorded
    bounds coincide cannot be mapped, and is refused with a `ValueError`.
    """
    data_low = np.asarray(dataset.action_low, np.float64)
    data_high = np.asarray(dataset.action_high, np.float64)
    if np.any(data_high - data_low <= 0):
        raise ValueError(
            f"dataset {dataset.name!r} records action bounds [{data_low}, {data_high}] with an "
            "empty range, so they cannot be rescaled; fix the dataset's action bounds."
        )
    scale = (np.asarray(high, np.float64) - np.asarray(low, np.float64)) / (data_high - data_low)
    actions = np.asarray(dataset.transitions.actions, np.float64)
    # The data lie inside their recorded bounds (checked on loading); the clip only removes
    # float rounding past the new bounds.
    mapped = np.clip(low + (actions - data_low) * scale, low, high).astype(np.float32)
    transitions = dataclasses.replace(dataset.transitions, actions=mapped)
    return dataclasses.replace(
        dataset,
        transitions=transitions,
        action_low=jnp.asarray(low, jnp.float32),
        action_high=jnp.asarray(high, jnp.float32),
    )
