"""D4RL reference returns and normalised scores.

The constants are D4RL's (`d4rl/infos.py`, REF_MIN_SCORE / REF_MAX_SCORE): the
return of a random policy and of the expert used to make each dataset. They are
matched by environment *name*, whatever its version suffix or dataset suffix,
so `Hopper-v5`, `hopper-medium-replay-v2` and `mujoco/hopper/expert-v0` all
resolve to the hopper constants.
"""

import re
from typing import NamedTuple

import numpy as np


class ReferenceScores(NamedTuple):
    """Returns that map to a normalised score of 0 (`min`) and 100 (`max`)."""

    min: float
    max: float


_D4RL_REFERENCE: dict[str, ReferenceScores] = {
    "hopper": ReferenceScores(-20.272305, 3234.3),
    "halfcheetah": ReferenceScores(-280.178953, 12135.0),
    "walker2d": ReferenceScores(1.629008, 4592.3),
    "ant": ReferenceScores(-325.6, 3879.7),
    "pen": ReferenceScores(96.262799, 3076.8331),
    "door": ReferenceScores(-56.512833, 2880.5693),
    "hammer": ReferenceScores(-274.856578, 12794.134825),
    "relocate": ReferenceScores(-6.425911, 4233.877797),
    "antmaze": ReferenceScores(0.0, 1.0),
}


def env_family(env_id: str) -> str | None:
    """The D4RL family of an environment or dataset id, or None.

    `"Hopper-v5" -> "hopper"`, `"antmaze-large-diverse-v2" -> "antmaze"`,
    `"D4RL/pen/cloned-v2" -> "pen"`, `"AntMaze_Large-v4" -> "antmaze"`,
    `"AdroitHandPen-v1" -> "pen"`, `"InvertedPendulum-v5" -> None`.

    The id is split into words at every character that is not a letter or a
    digit; a family matches a whole word (optionally prefixed by
    `adroithand`, as in gymnasium-robotics' Adroit ids), never a part of one,
    so `pen` does not match `InvertedPendulum` nor `ant` match `AntMaze`.
    """
    for word in re.split(r"[^a-z0-9]+", env_id.lower()):
        word = word.removeprefix("adroithand")
        if word in _D4RL_REFERENCE:
            return word
    return None


def reference_scores(env_id: str) -> ReferenceScores | None:
    """D4RL's reference returns for `env_id`, or None when it is not a D4RL family."""
    family = env_family(env_id)
    return None if family is None else _D4RL_REFERENCE[family]


def normalized_score(returns, reference: ReferenceScores) -> np.ndarray:
    """D4RL normalised score, x100: `100 * (R - min) / (max - min)`.

    **Arguments:** `returns`, raw episode returns (any shape); `reference`, the
    returns that map to 0 and 100.

    **Returns:** a float64 array of the same shape as `returns` (0-d for a scalar).
    """
    if not reference.max > reference.min:
        raise ValueError(
            f"reference scores must satisfy max > min, got min={reference.min}, "
            f"max={reference.max}; pass the random-policy return as min and the expert's as max."
        )
    returns = np.asarray(returns, dtype=np.float64)
    return np.asarray(100.0 * (returns - reference.min) / (reference.max - reference.min))
