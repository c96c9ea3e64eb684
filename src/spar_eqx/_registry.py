"""The one table of algorithms the trainer and the command line know.

Adding an algorithm is one learner module, one `Algorithm` line here, its tests and its
docs; the trainer and the CLI read everything they need from this table.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

from ._auto import choose_variant
from ._config import SPARConfig, critic_subsets
from ._learner import Learner
from ._learners.anchor import Anchor
from ._learners.bc import BC, BCConfig
from ._learners.fql import FQL, FQLConfig
from ._learners.iql import IQL, IQLConfig
from ._learners.rebrac import ReBRAC, ReBRACConfig
from ._learners.rectify_mlp import RectifyMLP
from ._learners.rectify_plas import RectifyPLAS
from ._learners.rectify_proj import RectifyPROJ
from ._learners.td3bc import TD3BC, TD3BCConfig


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """One trainable algorithm.

    **Fields:**

    - `name`: what `--algo` takes.
    - `summary`: one line for `--help`, with the source of its defaults.
    - `config`: its config class (an `eqx.Module` of `hyper` fields, with `batch_size`).
    - `stages`: the names of its stages, in order; each gets its own step budget.
    - `build`: `(config, obs_dim, act_dim) -> learners`, one per stage.
    - `reward_convention`: `"spar"` or `"iql"`, the default reward transform family
      (`spar_eqx.data.default_reward_transform`).
    - `label`: `config -> str`, the name plots and summaries use (`"SPAR-MLP"`, `"IQL"`).
    - `record`: `config -> dict`, extra fields for `results.json` (SPAR: its variant).
    - `unresolved`: `config -> bool`, True when `build` can only build the first stage
      until `resolve` has looked at it (SPAR's `--variant auto`).
    - `resolve`: `(first-stage states, data, gather) -> (overrides, record)`: what the
      finished first stage decides for the later ones, as hyperparameter overrides by path,
      and a record for `results.json`; `gather` concatenates per-run values over processes.
    - `pairs`: the paired differences `results.json` reports, `(a, b)` for policy `a` minus
      policy `b`, paired by seed and episode (SPAR: against its anchor and its ungated self).
    """

    name: str
    summary: str
    config: type
    stages: tuple[str, ...]
    build: Callable[[Any, int, int], tuple[Learner, ...]]
    reward_convention: str = "spar"
    label: Callable[[Any], str] = lambda config: ""
    record: Callable[[Any], dict[str, Any]] = lambda config: {}
    unresolved: Callable[[Any], bool] = lambda config: False
    resolve: Callable[..., tuple[dict[str, Any], dict[str, Any]]] | None = None
    pairs: tuple[tuple[str, str], ...] = ()


_RECTIFIERS = {"mlp": RectifyMLP, "proj": RectifyPROJ, "plas": RectifyPLAS}


def _build_spar(config: SPARConfig, obs_dim: int, act_dim: int) -> tuple[Learner, ...]:
    anchor = Anchor(config.anchor, obs_dim, act_dim)
    if config.residual.variant == "auto":  # Stage II waits for the diagnosis of Stage I
        return (anchor,)
    data, guide, gate = critic_subsets(
        config.anchor.num_critics,
        config.residual.data_critics,
        config.residual.guide_critics,
        config.gate.gate_critics,
    )
    rectifier = _RECTIFIERS[config.residual.variant](
        config.residual, data, guide, config.gate, gate
    )
    return anchor, rectifier


def _spar_label(config: SPARConfig) -> str:
    """`SPAR-MLP`, `SPAR-PROJ`, ...; a flow part is named (`SPAR-PROJ (flow base, flow gen.)`)."""
    label = f"SPAR-{config.residual.variant.upper()}"
    parts = []
    if config.anchor.base_policy == "flow":
        parts.append("flow base")
    if config.residual.generator != "cvae":
        parts.append(f"{config.residual.generator} generator")
    return f"{label} ({', '.join(parts)})" if parts else label


def _spar_record(config: SPARConfig) -> dict[str, Any]:
    """`{"variant"}`, plus `base_policy` and `generator` where they are not the defaults."""
    record: dict[str, Any] = {"variant": config.residual.variant}
    if config.anchor.base_policy == "flow":
        record["base_policy"] = "flow"
    if config.residual.generator != "cvae":
        record["generator"] = config.residual.generator
    return record


def _resolve_spar(states, data, gather) -> tuple[dict[str, Any], dict[str, Any]]:
    """`--variant auto`: the variant the trained anchors call for (`_auto.choose_variant`)."""
    choice = choose_variant(states.policy, data.observations, data.actions, gather)
    return {"residual.variant": choice["variant"]}, {"recommendation": choice}


def _single(cls) -> Callable[[Any, int, int], tuple[Learner, ...]]:
    return lambda config, obs_dim, act_dim: (cls(config, obs_dim, act_dim),)


_ALGORITHMS = [
    Algorithm(
        name="spar",
        summary="SPAR: BC anchor + critics, a residual, the value gate (Zhao et al. 2026)",
        config=SPARConfig,
        stages=("stage1", "stage2"),
        build=_build_spar,
        label=_spar_label,
        record=_spar_record,
        unresolved=lambda c: c.residual.variant == "auto",
        resolve=_resolve_spar,
        pairs=(("spar", "base"), ("spar", "spar_no_gate")),
    ),
    Algorithm(
        name="bc",
        summary="behaviour cloning, deterministic, MSE (the anchor of SPAR alone)",
        config=BCConfig,
        stages=("train",),
        build=_single(BC),
        label=lambda c: "BC",
    ),
    Algorithm(
        name="iql",
        summary="Implicit Q-Learning (Kostrikov et al. 2022), its locomotion defaults",
        config=IQLConfig,
        stages=("train",),
        build=_single(IQL),
        reward_convention=IQL.REWARD_CONVENTION,
        label=lambda c: "IQL",
    ),
    Algorithm(
        name="td3bc",
        summary="TD3+BC (Fujimoto and Gu 2021), its published defaults",
        config=TD3BCConfig,
        stages=("train",),
        build=_single(TD3BC),
        label=lambda c: "TD3+BC",
    ),
    Algorithm(
        name="rebrac",
        summary="ReBRAC (Tarasov et al. 2023), hopper-medium-replay's locomotion settings",
        config=ReBRACConfig,
        stages=("train",),
        build=_single(ReBRAC),
        label=lambda c: "ReBRAC",
    ),
    Algorithm(
        name="fql",
        summary="Flow Q-Learning (Park, Li and Levine 2025), its code's defaults",
        config=FQLConfig,
        stages=("train",),
        build=_single(FQL),
        label=lambda c: "FQL",
        pairs=(("fql", "fql_flow"),),  # the one-step policy against the flow it distils
    ),
]

ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in _ALGORITHMS}


def algorithm(name: str) -> Algorithm:
    """The registered algorithm `name`; a `ValueError` lists the known ones otherwise."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(ALGORITHMS)}.")
    return ALGORITHMS[name]
