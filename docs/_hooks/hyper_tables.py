"""Griffe extension: a table of every config's fields, generated from the `hyper` metadata.

Loaded by mkdocstrings (`extensions:` in mkdocs.yml). For every class whose runtime object
is a config built from `hyper(...)` fields (`AnchorConfig`, `ResidualConfig`, `GateConfig`,
`SPARConfig` and each baseline's config), it appends to the class's rendered docstring a
table with one row per field: name, command-line flag, default, whether `--sweep` can grid
it, the field's help text, and where the value comes from. Names, flags, defaults, help and
sources are read from the class itself, so they cannot drift.

Where a value comes from is `hyper(..., paper=..., paper_value=...)` in the same metadata:
`paper` is the source's text (SPAR's fields cite the SPAR paper, arXiv 2605.27877: Table 7 for
the global hyperparameters, Table 8 per task, Appendix C.1.2-C.1.4, equations and algorithms;
the baselines' fields cite the baseline's own paper or reference code); `paper_value` is the
paper's number when it gives one. The build fails (a warning, under `strict: true`) when a
config field has no `paper`, or when its default differs from its `paper_value`.

It also gives the two public tables of the package generated descriptions:
`spar_eqx.ALGORITHMS` (the registry) and `spar_eqx.PRESETS` (Table 8 as overrides).
"""

import dataclasses
import importlib
import logging
from typing import Any

import griffe

_log = logging.getLogger("mkdocs.plugins.spar_eqx.hyper_tables")


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
        if cls.docstring is not None:  # the table replaces the docstring's own field list
            cls.docstring.value = without_fields(cls.docstring.value)
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


def without_fields(text: str) -> str:
    """`text` without its `**Fields**` paragraph and the list that follows it (a config's
    docstring lists its fields for `help()`; on the site the generated table does)."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        if not lines[i].startswith("**Fields"):
            out.append(lines[i])
            i += 1
            continue
        while i < len(lines) and lines[i].strip():  # the paragraph
            i += 1
        j = i
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j < len(lines) and lines[j].startswith("- "):  # and its list
            i = j
            while i < len(lines) and (lines[i].startswith(("- ", " ")) or not lines[i].strip()):
                i += 1
    return "\n".join(out).rstrip()


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


def _source(field: dataclasses.Field) -> tuple[str, Any] | None:
    """`(paper, paper_value)` from a field's `hyper` metadata, or None without a `paper`."""
    paper = field.metadata.get("paper")
    if not paper:
        return None
    return str(paper), field.metadata.get("paper_value")


def check_sources() -> list[str]:
    """What is wrong with the configs' sources: a field without one, or a contradicted default."""
    problems = []
    for cls in registered_configs():
        module = cls.__module__
        for field in _hyper_fields(cls):
            key = f"{cls.__name__}.{field.name}"
            source = _source(field)
            if source is None:
                problems.append(
                    f"{key} (`{field.metadata['flag']}`) has no source: give its `hyper(...)` "
                    f"in {module} a `paper=` (where its default {field.default!r} comes from)."
                )
                continue
            _, paper = source
            if paper is not None and not _same(field.default, paper):
                problems.append(
                    f"{key} defaults to {field.default!r} but its `paper_value` says the paper "
                    f"uses {paper!r}: fix the default, or `paper_value` in {module}."
                )
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
        source = _source(field)
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
        "applies to SPAR (Table 8 of the paper, and this library's choice on OGBench's "
        "environments; generated from `preset_overrides(name)`; an empty cell "
        "keeps the default):",
        "",
        "| Preset | " + " | ".join(f"`{c}`" for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, overrides in rows.items():
        cells = [_value(overrides[c]) if c in overrides else "" for c in columns]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
