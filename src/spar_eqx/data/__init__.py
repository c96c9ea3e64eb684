"""Offline datasets: loading (Minari, D4RL HDF5, the embedded default), validation,
normalisation and reward transforms."""

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
from ._transitions import Transitions as Transitions, episode_returns as episode_returns

# --- Data collection (`collect`): exports are added below by its owner. ---
