"""SPAR: Support-Preserving Action Rectification, in JAX and Equinox."""

import importlib.metadata

from ._ensemble import CriticEnsemble as CriticEnsemble, QStats as QStats
from ._networks import (
    DeterministicPolicy as DeterministicPolicy,
    QNetwork as QNetwork,
    TanhGaussianPolicy as TanhGaussianPolicy,
    ValueNetwork as ValueNetwork,
)
from ._scores import (
    normalized_score as normalized_score,
    reference_scores as reference_scores,
    ReferenceScores as ReferenceScores,
)

__version__ = importlib.metadata.version("spar_eqx")
