"""The training data of a run: loaded, checked against its environment, normalised."""

from typing import NamedTuple

import jax
import numpy as np

from .._evaluation import env_spaces
from .._learner import TrainingBatch
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
    env_id: str
    reward_transform: str
    normalizer: ObservationNormalizer
    data: TrainingBatch  # normalised observations, with next actions
    obs_dim: int
    act_dim: int


def prepare(config: RunConfig, reward_convention: str) -> Prepared:
    """Load `config.dataset`, check it against its environment, transform and normalise it.

    `--env` reaches the loader, so one environment id labels the data, picks the reference
    returns, and names the environment evaluation runs in. Refused with a `ValueError`
    (a `DatasetError` for the data itself) before anything is written: shapes that differ
    from the environment's, recorded action bounds that differ from its action space, or an
    action space other than `[-1, 1]`.

    **Arguments:** `config`, the run; `reward_convention`, the algorithm's (`"spar"`, `"iql"`)
    default reward transform when `config.reward_transform` is None.

    **Returns:** a `Prepared`.
    """
    dataset = load_dataset(config.dataset, env_id=config.env_id)
    env_id = dataset.env_id
    obs_dim, act_dim, low, high = env_spaces(env_id)
    t = dataset.transitions
    if (t.obs_dim, t.act_dim) != (obs_dim, act_dim):
        raise ValueError(
            f"dataset {dataset.name!r} has {t.obs_dim}-d observations and {t.act_dim}-d "
            f"actions but {env_id} has {obs_dim} and {act_dim}; pass the env the data "
            "came from with --env."
        )
    data_low, data_high = np.asarray(dataset.action_low), np.asarray(dataset.action_high)
    if not (np.allclose(data_low, low, atol=1e-6) and np.allclose(data_high, high, atol=1e-6)):
        raise ValueError(
            f"dataset {dataset.name!r} says its actions span [{data_low}, {data_high}] but "
            f"{env_id} acts in [{low}, {high}]; its actions would be played on another "
            "scale. Rescale the dataset's actions to the environment's space (or use the "
            "environment it was recorded in), then train."
        )
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
    return Prepared(dataset, env_id, transform, normalizer, data, obs_dim, act_dim)
