"""Offline datasets: loading (Minari, D4RL HDF5, the embedded default), validation,
normalisation and reward transforms."""

from ._collect import (
    LEVELS as LEVELS,
    CollectError as CollectError,
    collect as collect,
    dataset_id as dataset_id,
    default_target_return as default_target_return,
)
from ._dataset import OfflineDataset as OfflineDataset
from ._errors import DatasetError as DatasetError
from ._load import default_dataset_path as default_dataset_path, load_dataset as load_dataset
from ._normalize import (
    REWARD_TRANSFORMS as REWARD_TRANSFORMS,
    ObservationNormalizer as ObservationNormalizer,
    RewardTransform as RewardTransform,
    antmaze_reward as antmaze_reward,
    apply_reward_transform as apply_reward_transform,
    default_reward_transform as default_reward_transform,
    scale_locomotion_rewards as scale_locomotion_rewards,
)
from ._replay import (
    ReplayBuffer as ReplayBuffer,
    SACBatch as SACBatch,
    buffer_add as buffer_add,
    buffer_init as buffer_init,
)
from ._sac import (
    SACConfig as SACConfig,
    SACState as SACState,
    sac_init as sac_init,
    sac_update as sac_update,
    sac_update_chunk as sac_update_chunk,
)
from ._transitions import Transitions as Transitions, episode_returns as episode_returns
