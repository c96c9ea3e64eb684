"""SPAR: Support-Preserving Action Rectification, in JAX and Equinox.

The public API. Implementation lives in private modules; `spar_eqx.theory`
and `spar_eqx.data` are namespaces of their own.

Every public name below is imported on first use (PEP 562), so `import spar_eqx` and the
`spar-eqx` command's `--help` and `--version` do not load JAX; the list is what type checkers,
readers and the API reference see.
"""

import ast
import importlib
import importlib.metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._acting import ActingPolicy as ActingPolicy, DeployedPolicy as DeployedPolicy
    from ._budgets import BUDGETS as BUDGETS, Budget as Budget
    from ._config import (
        AnchorConfig as AnchorConfig,
        GateConfig as GateConfig,
        ResidualConfig as ResidualConfig,
        SPARConfig as SPARConfig,
        critic_subsets as critic_subsets,
    )
    from ._conflict import gradient_conflict as gradient_conflict
    from ._deploy import (
        export_policy as export_policy,
        load_policy as load_policy,
        policy_header as policy_header,
    )
    from ._ensemble import CriticEnsemble as CriticEnsemble, QStats as QStats
    from ._environment_names import (
        d4rl_environment as d4rl_environment,
        environment as environment,
    )
    from ._environments import (
        DOMAINS as DOMAINS,
        Domain as Domain,
        Environment as Environment,
        GoalReached as GoalReached,
        domain_of as domain_of,
    )
    from ._errors import (
        CheckpointError as CheckpointError,
        PolicyFileError as PolicyFileError,
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
    from ._flow import (
        FlowPolicy as FlowPolicy,
        ResidualFlow as ResidualFlow,
        VelocityField as VelocityField,
    )
    from ._gate import GateDecision as GateDecision, gate as gate
    from ._generator import AbstractResidualGenerator as AbstractResidualGenerator
    from ._intervals import (
        Interval as Interval,
        iqm as iqm,
        mean_interval as mean_interval,
        paired_difference as paired_difference,
        stratified_interval as stratified_interval,
    )
    from ._learner import Learner as Learner, Phase as Phase, TrainingBatch as TrainingBatch
    from ._learners._td3 import AbstractTD3 as AbstractTD3, TD3State as TD3State
    from ._learners.anchor import Anchor as Anchor, AnchorState as AnchorState
    from ._learners.bc import BC as BC, BCConfig as BCConfig, BCState as BCState
    from ._learners.fql import (
        FQL as FQL,
        FQLConfig as FQLConfig,
        FQLPolicy as FQLPolicy,
        FQLState as FQLState,
        OneStepPolicy as OneStepPolicy,
    )
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
    from ._learners.td3bc import (
        TD3BC as TD3BC,
        TD3BCConfig as TD3BCConfig,
        TD3BCState as TD3BCState,
    )
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
        AbstractAnchorPolicy as AbstractAnchorPolicy,
        DeterministicPolicy as DeterministicPolicy,
        QNetwork as QNetwork,
        TanhGaussianPolicy as TanhGaussianPolicy,
        ValueNetwork as ValueNetwork,
    )
    from ._policy import (
        BasePolicy as BasePolicy,
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
    from ._sampling import sample_batch as sample_batch, training_data as training_data
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

_SUBPACKAGES = ("data", "diagnostics", "theory")


def _public_modules() -> dict[str, str]:
    """`{public name: the private module it comes from}`, read off the block above."""
    tree = ast.parse(Path(__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If))
    return {
        alias.asname or alias.name: "." * node.level + (node.module or "")
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


_PUBLIC = _public_modules()


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'spar_eqx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC, *_SUBPACKAGES})
