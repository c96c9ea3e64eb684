"""SPAR: Support-Preserving Action Rectification, in JAX and Equinox.

The public API. Implementation lives in private modules; `spar_eqx.theory`
and `spar_eqx.data` are namespaces of their own.
"""

import importlib.metadata

from ._config import (
    AnchorConfig as AnchorConfig,
    GateConfig as GateConfig,
    ResidualConfig as ResidualConfig,
    SPARConfig as SPARConfig,
    critic_subsets as critic_subsets,
)
from ._conflict import gradient_conflict as gradient_conflict
from ._ensemble import CriticEnsemble as CriticEnsemble, QStats as QStats
from ._environments import (
    DOMAINS as DOMAINS,
    Domain as Domain,
    Environment as Environment,
    GoalReached as GoalReached,
    d4rl_environment as d4rl_environment,
    domain_of as domain_of,
    environment as environment,
)
from ._errors import (
    CheckpointError as CheckpointError,
    TrainingError as TrainingError,
    UserError as UserError,
)
from ._evaluation import (
    BatchPolicy as BatchPolicy,
    EvaluationResult as EvaluationResult,
    ReportingPolicy as ReportingPolicy,
    env_spaces as env_spaces,
    evaluate as evaluate,
    make_env as make_env,
)
from ._gate import GateDecision as GateDecision, gate as gate
from ._intervals import (
    Interval as Interval,
    iqm as iqm,
    mean_interval as mean_interval,
    paired_difference as paired_difference,
    stratified_interval as stratified_interval,
)
from ._learner import Learner as Learner, Phase as Phase, TrainingBatch as TrainingBatch
from ._learners.anchor import Anchor as Anchor, AnchorState as AnchorState
from ._learners.bc import BC as BC, BCConfig as BCConfig, BCState as BCState
from ._learners.iql import IQL as IQL, IQLConfig as IQLConfig, IQLState as IQLState
from ._learners.rebrac import (
    ReBRAC as ReBRAC,
    ReBRACConfig as ReBRACConfig,
    ReBRACState as ReBRACState,
)
from ._learners.rectify_common import FrozenAnchor as FrozenAnchor, Rectifier as Rectifier
from ._learners.rectify_mlp import MLPState as MLPState, RectifyMLP as RectifyMLP
from ._learners.rectify_plas import PLASState as PLASState, RectifyPLAS as RectifyPLAS
from ._learners.rectify_proj import PROJState as PROJState, RectifyPROJ as RectifyPROJ
from ._learners.td3bc import TD3BC as TD3BC, TD3BCConfig as TD3BCConfig, TD3BCState as TD3BCState
from ._losses import (
    bc_loss as bc_loss,
    bc_nll_loss as bc_nll_loss,
    convex_targets as convex_targets,
    expectile_loss as expectile_loss,
    gaussian_kl as gaussian_kl,
    latent_self_imitation as latent_self_imitation,
    value_guidance as value_guidance,
    weighted_reconstruction as weighted_reconstruction,
)
from ._networks import (
    DeterministicPolicy as DeterministicPolicy,
    QNetwork as QNetwork,
    TanhGaussianPolicy as TanhGaussianPolicy,
    ValueNetwork as ValueNetwork,
)
from ._policy import (
    BasePolicy as BasePolicy,
    DeployedPolicy as DeployedPolicy,
    NoGatePolicy as NoGatePolicy,
    PLASResidual as PLASResidual,
    SPARPolicy as SPARPolicy,
)
from ._presets import PRESETS as PRESETS, preset_overrides as preset_overrides
from ._registry import ALGORITHMS as ALGORITHMS, Algorithm as Algorithm
from ._residual import (
    LatentPolicy as LatentPolicy,
    ResidualCVAE as ResidualCVAE,
    ResidualMLP as ResidualMLP,
    polyak as polyak,
)
from ._run_config import RunConfig as RunConfig, sweep_names as sweep_names
from ._scores import (
    ReferenceScores as ReferenceScores,
    normalized_score as normalized_score,
    reference_scores as reference_scores,
)
from ._train import load_trained as load_trained, train as train
from ._weighting import (
    advantage_weights as advantage_weights,
    candidate_weights as candidate_weights,
    normalized_advantage as normalized_advantage,
)

__version__ = importlib.metadata.version("spar_eqx")
