"""Griffe extension: a table of every config's fields, generated from the `hyper` metadata.

Loaded by mkdocstrings (`extensions:` in mkdocs.yml). For every class whose runtime object
is a config built from `hyper(...)` fields (`AnchorConfig`, `ResidualConfig`, `GateConfig`,
`SPARConfig` and each baseline's config), it appends to the class's rendered docstring a
table with one row per field: name, command-line flag, default, whether `--sweep` can grid
it, the field's help text, and where the value comes from. Names, flags, defaults and help
are read from the class itself, so they cannot drift.

Where a value comes from is not (yet) in the `hyper` metadata: it lives in `SOURCES` below,
keyed `"Class.field"`, as `(text, value)`; `value` is the paper's number when the paper gives
one, and the build fails (a warning, under `strict: true`) when the code's default differs
from it, when a config field has no row here, or when a row names no field. A
`source=`/`paper=` entry in `hyper(...)`'s metadata, when present, takes precedence.

It also gives the two public tables of the package generated descriptions:
`spar_eqx.ALGORITHMS` (the registry) and `spar_eqx.PRESETS` (Table 8 as overrides).
"""

import dataclasses
import importlib
import logging
from typing import Any

import griffe

_log = logging.getLogger("mkdocs.plugins.spar_eqx.hyper_tables")

_NO_VALUE = object()

# "Class.field" -> (where the default comes from, the paper's value or None).
# SPAR's rows cite the SPAR paper (arXiv 2605.27877): Table 7 (global hyperparameters),
# Table 8 (per task), Appendix C.1.2-C.1.4, equations and algorithms. The baselines' rows
# cite the baseline's own paper or reference code.
SOURCES: dict[str, tuple[str, Any]] = {
    # Stage I.
    "AnchorConfig.base_policy": (
        "C.1.2, *Policy type*: deterministic on MuJoCo, Gaussian on Adroit and AntMaze "
        "(`--preset`)",
        None,
    ),
    "AnchorConfig.num_critics": ("Table 7, *Total critics*", 10),
    "AnchorConfig.width": ("Table 7, *Hidden dimension (MLP/CVAE)*", 256),
    "AnchorConfig.depth": (
        "not given for the anchor and critics (Table 7 gives two hidden layers for the MLP "
        "residual and the latent policy)",
        None,
    ),
    "AnchorConfig.learning_rate": ("C.1.2, *Learning rates*: all networks", 3e-4),
    "AnchorConfig.grad_clip": ("Table 7, *Gradient clipping* (global norm)", 1.0),
    "AnchorConfig.gamma": (r"Table 7, *Discount factor* $\gamma$", 0.99),
    "AnchorConfig.expectile": (
        r"Table 8, Stage I $\tau$; Section 3.1, C.1.2 (0.9 on AntMaze, `--preset`)",
        0.5,
    ),
    "AnchorConfig.critic_expectile": (r"Algorithm 1 line 7, $\rho_\tau$ with $\tau = 0.5$", 0.5),
    "AnchorConfig.q_target": (
        "Section 3.1 (in-sample, `value`) or Algorithm 1 line 6 (`policy`): the paper gives both",
        None,
    ),
    "AnchorConfig.polyak": (r"C.1.2, $\tau_\text{polyak}$", 0.005),
    # Stage II.
    "ResidualConfig.variant": (
        "Table 8, *Arch*: MLP on MuJoCo medium-replay, PROJ elsewhere (`--preset`)",
        None,
    ),
    "ResidualConfig.lambda_u": (
        r"Table 8, $\lambda_u$: 0.5, 2 on Hopper medium-expert (Table 7: task-dependent)",
        0.5,
    ),
    "ResidualConfig.lambda_g": (r"Table 8, $\lambda_g$: 0.5 or 2.0 by task (`--preset`)", None),
    "ResidualConfig.temperature": (
        "Table 8, *T*: 1.0 on MuJoCo medium-replay, 0.3 elsewhere (`--preset`)",
        None,
    ),
    "ResidualConfig.sensitivity": (
        "Section 3.2.2, *Sensitivity*; Algorithm 2 line 6 (exponential)",
        "exp",
    ),
    "ResidualConfig.filtering": (
        "Table 8, *Filter*: hard on MuJoCo, soft on Adroit and AntMaze (`--preset`)",
        None,
    ),
    "ResidualConfig.max_weight": ("not in the paper (the cap of IQL and AWR)", None),
    "ResidualConfig.data_critics": (r"Table 7, *Data critics subset* $M_\text{data}$", 4),
    "ResidualConfig.guide_critics": (r"Table 7, *Guide critics subset* $M_\text{guide}$", 4),
    "ResidualConfig.learning_rate": ("C.1.2, *Learning rates*: all networks", 3e-4),
    "ResidualConfig.grad_clip": ("Table 7, *Gradient clipping* (global norm)", 1.0),
    "ResidualConfig.width": ("Table 7, *Hidden dimension (MLP/CVAE)*", 256),
    "ResidualConfig.mlp_depth": ("Table 7, *MLP residual hidden dims* (256, 256)", 2),
    "ResidualConfig.cvae_depth": ("Table 7, *Number of hidden layers* (encoder/decoder)", 3),
    "ResidualConfig.latent_dim": ("Table 7, *CVAE latent dimension* $d_z$", 16),
    "ResidualConfig.kl_weight": (r"Table 7, *CVAE KL weight* $\beta_\text{KL}$; eq. (8)", 0.5),
    "ResidualConfig.recon_weight": ("Table 7, *CVAE reconstruction weight*", 1.0),
    "ResidualConfig.num_candidates": ("C.1.3, *Candidate samples* $K$; Algorithm 4", 64),
    "ResidualConfig.projection_period": ("C.1.3, *Projection period*", 10),
    "ResidualConfig.target_tau": (r"C.1.3, *Target network EMA* $\tau_\text{target}$", 0.005),
    "ResidualConfig.self_imitation": (
        "eq. (10) read literally (`literal`) or Proposition 3.3(i) (`convex`); the paper does "
        "not say which its code does",
        None,
    ),
    "ResidualConfig.latent_policy_depth": ("Table 7, *Latent policy hidden dims* (256, 256)", 2),
    "ResidualConfig.max_latent": ("not in the paper (Algorithm 3 leaves the bound open)", None),
    "ResidualConfig.plas_vae_fraction": (
        "not in the paper (Algorithm 3 does not split Stage II's budget)",
        None,
    ),
    "ResidualConfig.log_conflict": (
        "Section 4.3 (Table 3): a measurement, off by default; not a hyperparameter of the paper",
        None,
    ),
    # Stage III.
    "GateConfig.num_candidates": ("C.1.4, *Candidate sampling* $K$", 10),
    "GateConfig.eta_abs": (r"C.1.4, $\eta_\text{abs}$; eq. (12), Algorithm 5", 1e-4),
    "GateConfig.eta_rel": (r"Table 8, $\eta$ (every task); C.1.4, $\eta_\text{rel}$", 0.01),
    "GateConfig.eps": (r"eq. (12), $\epsilon$ (its value is not given)", None),
    "GateConfig.gate_critics": (r"Table 7, *Rectification critics* $M_\text{rect}$", 4),
    "GateConfig.lambda_u": (r"Table 8, $\lambda_u$: 0.5, 2 on Hopper medium-expert", 0.5),
    "SPARConfig.batch_size": ("Table 7, *Batch size*", 256),
    # BC: the BC baselines of TD3+BC (arXiv 2106.06860) and IQL (arXiv 2110.06169).
    "BCConfig.width": ("TD3+BC and IQL's BC baselines", 256),
    "BCConfig.depth": ("TD3+BC and IQL's BC baselines", 2),
    "BCConfig.learning_rate": ("TD3+BC and IQL's BC baselines (Adam)", 3e-4),
    "BCConfig.grad_clip": ("none, as in TD3+BC and IQL", None),
    "BCConfig.batch_size": ("TD3+BC and IQL's BC baselines", 256),
    # IQL (arXiv 2110.06169, App. B; github.com/ikostrikov/implicit_q_learning).
    "IQLConfig.width": ("IQL App. B", 256),
    "IQLConfig.depth": ("IQL App. B", 2),
    "IQLConfig.num_critics": ("IQL App. B (clipped double Q: the minimum)", 2),
    "IQLConfig.learning_rate": ("IQL App. B", 3e-4),
    "IQLConfig.actor_lr_schedule": ("IQL's `train_offline.py` (cosine decay to 0)", "cosine"),
    "IQLConfig.grad_clip": ("none: IQL clips nothing", None),
    "IQLConfig.gamma": ("IQL App. B", 0.99),
    "IQLConfig.polyak": ("IQL App. B", 0.005),
    "IQLConfig.expectile": (r"IQL App. B, $\tau$ on locomotion (0.9 on AntMaze)", 0.7),
    "IQLConfig.temperature": (
        r"IQL App. B, $\beta$ on locomotion (10 on AntMaze, 0.5 on Kitchen and Adroit)",
        3.0,
    ),
    "IQLConfig.max_weight": ("IQL's `actor.py`", 100.0),
    "IQLConfig.batch_size": ("IQL App. B", 256),
    # TD3+BC (arXiv 2106.06860, Table 3; github.com/sfujim/TD3_BC).
    "TD3BCConfig.num_critics": ("TD3's clipped double Q", 2),
    "TD3BCConfig.width": ("TD3+BC Table 3", 256),
    "TD3BCConfig.depth": ("TD3+BC Table 3", 2),
    "TD3BCConfig.actor_learning_rate": ("TD3+BC Table 3", 3e-4),
    "TD3BCConfig.critic_learning_rate": ("TD3+BC Table 3", 3e-4),
    "TD3BCConfig.gamma": ("TD3+BC Table 3", 0.99),
    "TD3BCConfig.polyak": ("TD3+BC Table 3", 0.005),
    "TD3BCConfig.alpha": (r"TD3+BC Section 5, $\lambda = \alpha / \text{mean}|Q|$", 2.5),
    "TD3BCConfig.policy_noise": ("TD3+BC Table 3 (TD3's)", 0.2),
    "TD3BCConfig.noise_clip": ("TD3+BC Table 3 (TD3's)", 0.5),
    "TD3BCConfig.policy_delay": ("TD3+BC Table 3 (TD3's)", 2),
    "TD3BCConfig.batch_size": ("TD3+BC Table 3", 256),
    # ReBRAC (arXiv 2305.09836; the CORL configs), hopper-medium-replay's values.
    "ReBRACConfig.num_critics": ("ReBRAC (clipped double Q)", 2),
    "ReBRACConfig.width": ("ReBRAC / CORL `hidden_dim`", 256),
    "ReBRACConfig.depth": ("ReBRAC / CORL `actor_n_hiddens`, `critic_n_hiddens`", 3),
    "ReBRACConfig.critic_layer_norm": ("ReBRAC / CORL `critic_ln`", "on"),
    "ReBRACConfig.actor_learning_rate": ("ReBRAC / CORL `actor_learning_rate`", 1e-3),
    "ReBRACConfig.critic_learning_rate": ("ReBRAC / CORL `critic_learning_rate`", 1e-3),
    "ReBRACConfig.gamma": ("ReBRAC / CORL `gamma`", 0.99),
    "ReBRACConfig.polyak": ("ReBRAC / CORL `tau`", 0.005),
    "ReBRACConfig.policy_noise": ("ReBRAC / CORL `policy_noise`", 0.2),
    "ReBRACConfig.noise_clip": ("ReBRAC / CORL `noise_clip`", 0.5),
    "ReBRACConfig.policy_delay": ("ReBRAC / CORL `policy_freq`", 2),
    "ReBRACConfig.actor_bc_coef": (
        r"ReBRAC $\beta_1$, hopper-medium-replay (tuned per dataset)",
        0.05,
    ),
    "ReBRACConfig.critic_bc_coef": (
        r"ReBRAC $\beta_2$, hopper-medium-replay (tuned per dataset)",
        0.5,
    ),
    "ReBRACConfig.batch_size": ("ReBRAC / CORL `batch_size`", 1024),
}


class HyperTables(griffe.Extension):
    """Appends the field table to configs, and describes `ALGORITHMS` and `PRESETS`."""

    def __init__(self) -> None:
        super().__init__()
        self._checked = False

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name == "spar_eqx" and not self._checked:
            self._checked = True
            for problem in check_sources():
                _log.warning(problem)

    def on_class(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        if not _declares_hyper(cls):
            return
        runtime = _runtime(cls.module.path, cls.name)
        if runtime is None or not is_hyper_config(runtime):
            return
        _append(cls, "\n\n" + field_table(runtime))

    def on_attribute(self, *, attr: griffe.Attribute, **kwargs: Any) -> None:
        if attr.path == "spar_eqx._registry.ALGORITHMS":
            _append(attr, algorithms_table())
        elif attr.path == "spar_eqx._presets.PRESETS":
            _append(attr, presets_table())


def _declares_hyper(cls: griffe.Class) -> bool:
    """Whether the source of `cls` assigns a `hyper(...)` field (only those are imported)."""
    for member in cls.members.values():
        if isinstance(member, griffe.Attribute) and "hyper(" in str(member.value or ""):
            return True
    return False


def _runtime(module: str, name: str) -> Any:
    if not module.startswith("spar_eqx"):
        return None
    try:
        return getattr(importlib.import_module(module), name, None)
    except Exception:  # a module that fails to import has no config table to give
        return None


def _append(obj: griffe.Object, text: str) -> None:
    if obj.docstring is None:
        obj.docstring = griffe.Docstring(text.strip(), parent=obj)
    else:
        obj.docstring.value = obj.docstring.value.rstrip() + "\n\n" + text.strip()


def _hyper_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "flag" in f.metadata]


def _nested(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if is_hyper_config(type(f.default))]


def is_hyper_config(cls: Any) -> bool:
    """A config: a dataclass (an `eqx.Module`) with at least one `hyper(...)` field.

    A learner holding a config as a field (`Rectifier.gate`) is not one.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return False
    return any("flag" in f.metadata for f in dataclasses.fields(cls))


def registered_configs() -> list[type]:
    """Every config class the registry reaches, nested ones included, each once."""
    from spar_eqx._registry import ALGORITHMS

    seen: list[type] = []
    stack = [entry.config for entry in ALGORITHMS.values()]
    while stack:
        cls = stack.pop(0)
        if cls in seen:
            continue
        seen.append(cls)
        stack += [type(f.default) for f in _nested(cls)]
    return seen


def _source(cls: type, field: dataclasses.Field) -> tuple[str, Any] | None:
    meta = field.metadata
    for key in ("source", "paper"):
        if meta.get(key):
            return str(meta[key]), meta.get("paper_value")
    return SOURCES.get(f"{cls.__name__}.{field.name}")


def check_sources() -> list[str]:
    """What is wrong between `SOURCES` and the configs: missing, stale or contradicted rows."""
    problems = []
    known = set()
    here = "docs/_hooks/hyper_tables.py"
    for cls in registered_configs():
        for field in _hyper_fields(cls):
            key = f"{cls.__name__}.{field.name}"
            known.add(key)
            source = _source(cls, field)
            if source is None:
                problems.append(
                    f"{key} (`{field.metadata['flag']}`) has no source row: add one to SOURCES "
                    f"in {here} (where its default {field.default!r} comes from)."
                )
                continue
            _, paper = source
            if paper is not None and not _same(field.default, paper):
                problems.append(
                    f"{key} defaults to {field.default!r} but its source row says the paper "
                    f"uses {paper!r}: fix the default, or the row in {here}."
                )
    for key in sorted(set(SOURCES) - known):
        problems.append(f"SOURCES in {here} has a row for {key}, which is no config field.")
    return problems


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))
    return a == b


def _value(value: Any) -> str:
    if value is None:
        return "`None`"
    if isinstance(value, bool):
        return f"`{value}`"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            mantissa, exponent = f"{value:.6e}".split("e")
            return f"`{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}`"
        return f"`{value!r}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def field_table(cls: type) -> str:
    """The Markdown table of `cls`'s fields."""
    header = "| Field | Flag | Default | `--sweep` | Meaning | Source |\n|---|---|---|---|---|---|"
    rows = []
    for field in dataclasses.fields(cls):
        default = field.default
        if is_hyper_config(type(default)):
            name = type(default).__name__
            rows.append(
                f"| `{field.name}` | | [`{name}()`][spar_eqx.{name}] | | "
                f"its fields, flags and defaults: see [`{name}`][spar_eqx.{name}] | |"
            )
            continue
        if "flag" not in field.metadata:
            continue
        meta = field.metadata
        flag = f"`{meta['flag']}`" if meta["flag"] else "(none)"
        sweep = "" if meta.get("static", False) else "yes"
        meaning = _cell(meta["help"])
        if meta.get("choices") and not all(str(c) in meaning for c in meta["choices"]):
            meaning += ": one of " + ", ".join(f"`{c}`" for c in meta["choices"])
        source = _source(cls, field)
        text = _cell(source[0]) if source else "**missing**"
        rows.append(
            f"| `{field.name}` | {flag} | {_value(default)} | {sweep} | {meaning} | {text} |"
        )
    intro = (
        "**Fields.** Generated from the `hyper` metadata of the class: the flag sets the field "
        "on `spar-eqx train`; `--sweep` marks the leaves a grid can vary in one compile (the "
        "others are static: they decide shapes or control flow)."
    )
    return intro + "\n\n" + header + "\n" + "\n".join(rows)


def algorithms_table() -> str:
    """`spar_eqx.ALGORITHMS`, as a table."""
    from spar_eqx._registry import ALGORITHMS

    lines = [
        "Every algorithm `spar-eqx train --algo NAME` and `RunConfig(algo=NAME)` know, by name "
        "(generated from the registry):",
        "",
        "| Name | Config | Stages | Reward convention | Summary |",
        "|---|---|---|---|---|",
    ]
    for name, entry in ALGORITHMS.items():
        config = entry.config.__name__
        stages = ", ".join(f"`{s}`" for s in entry.stages)
        lines.append(
            f"| `{name}` | [`{config}`][spar_eqx.{config}] | {stages} | "
            f"`{entry.reward_convention}` | {_cell(entry.summary)} |"
        )
    return "\n".join(lines)


def presets_table() -> str:
    """`spar_eqx.PRESETS` with the overrides each applies (Table 8), as a table."""
    from spar_eqx._presets import PRESETS, preset_overrides

    rows = {name: preset_overrides(name) for name in PRESETS}
    columns: list[str] = []
    for overrides in rows.values():
        columns += [key for key in overrides if key not in columns]
    lines = [
        "The names `--preset` and `RunConfig.with_preset` accept, with the overrides each "
        "applies (Table 8 of the paper, generated from `preset_overrides(name)`; an empty cell "
        "keeps the default):",
        "",
        "| Preset | " + " | ".join(f"`{c}`" for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, overrides in rows.items():
        cells = [_value(overrides[c]) if c in overrides else "" for c in columns]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
