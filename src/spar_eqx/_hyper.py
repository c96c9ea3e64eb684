"""Hyperparameter fields: defaults, command-line flags and checks shared by every config.

A config is an `eqx.Module` whose fields are declared with `hyper(...)`. Float fields
are leaves (the trainer makes them arrays, and a sweep stacks them along a grid axis);
fields that decide shapes or control flow are `static=True`. Each field carries the
command-line flag that sets it, a one-line help, and the paper source of its default, so
the CLI, `--help`, `--sweep` and the API reference's tables are generated from the configs,
never listed twice.
"""

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import equinox as eqx
from jaxtyping import Array, Float

# A float hyperparameter: a Python number as configured, a 0-d array once the trainer
# has turned it into a leaf it can trace and vmap.
Scalar = float | int | Float[Array, ""]


def hyper(
    default: Any,
    flag: str | None,
    help: str,
    *,
    static: bool = False,
    choices: tuple | None = None,
    kind: type | None = None,
    paper: str | None = None,
    paper_value: Any = None,
):
    """A config field with its default, its CLI `flag` (None: not on the command line) and help.

    **Arguments:**

    - `default`: the field's default value.
    - `flag`: the `spar-eqx train` flag that sets it, or None when it is not on the command line.
    - `help`: one line for `--help` and the API table.
    - `static`: whether the field decides shapes or control flow (then it is no leaf, and a
      sweep cannot grid it).
    - `choices`: the values the field accepts, when they are few.
    - `kind`: the type the command line parses (default: the default's type; give it when the
      default is None).
    - `paper`: where the default comes from (a table, section or equation of the paper, or the
      reference code), in Markdown; the API reference shows it, and the strict docs build fails
      on a config field without it.
    - `paper_value`: the value the source gives, when it gives one number or mode; the strict
      docs build fails when `default` differs from it. None: the source gives no single value
      (it varies by task, or the paper is silent).
    """
    metadata = {
        "flag": flag,
        "help": help,
        "choices": choices,
        "kind": kind,
        "paper": paper,
        "paper_value": paper_value,
    }
    return eqx.field(default=default, static=static, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Hyperparameter:
    """One settable field of a (possibly nested) config."""

    path: str  # "anchor.expectile"
    flag: str | None
    help: str
    default: Any
    static: bool
    kind: type
    choices: tuple | None
    paper: str | None = None  # where the default comes from
    paper_value: Any = None  # the source's value, when it gives one


def _kind(field: dataclasses.Field) -> type:
    """The type a field's values have: `hyper(kind=...)`, else its default's (str for None)."""
    default = field.default
    return field.metadata.get("kind") or (type(default) if default is not None else str)


def hyperparameters(config_cls: type, prefix: str = "") -> Iterator[Hyperparameter]:
    """Every field of `config_cls`, recursing into nested configs, with its flag and default."""
    for field in dataclasses.fields(config_cls):
        default = field.default
        if dataclasses.is_dataclass(default):
            yield from hyperparameters(type(default), f"{prefix}{field.name}.")
            continue
        meta = field.metadata
        if "flag" not in meta:
            continue
        yield Hyperparameter(
            path=f"{prefix}{field.name}",
            flag=meta["flag"],
            help=meta["help"],
            default=default,
            static=bool(meta.get("static", False)),
            kind=_kind(field),
            choices=meta.get("choices"),
            paper=meta.get("paper"),
            paper_value=meta.get("paper_value"),
        )


def to_dict(config) -> dict[str, Any]:
    """A config as plain JSON-ready values (arrays become floats)."""
    out = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            out[field.name] = to_dict(value)
        elif hasattr(value, "item") and getattr(value, "ndim", None) == 0:
            out[field.name] = value.item()
        elif isinstance(value, tuple):
            out[field.name] = list(value)
        else:
            out[field.name] = value
    return out


def from_dict(config_cls: type, data: dict[str, Any]):
    """The inverse of `to_dict`: unknown or missing keys are refused by the constructor."""
    kwargs = {}
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    for name, value in data.items():
        field = fields.get(name)
        if field is None:
            raise ValueError(f"{config_cls.__name__} has no hyperparameter {name!r}.")
        if dataclasses.is_dataclass(field.default):
            if not isinstance(value, dict):
                raise ValueError(f"{name} must be a mapping of hyperparameters, got {value!r}.")
            value = from_dict(type(field.default), value)
        else:
            value = _typed(config_cls.__name__, name, field, value)
        kwargs[name] = value
    return config_cls(**kwargs)


def _typed(owner: str, name: str, field: dataclasses.Field, value: Any) -> Any:
    """`value` as the type of `field`'s default (an int for a float is fine), or refused."""
    kind = _kind(field)
    if value is None and field.default is None:
        return None
    if kind is float and is_number(value):
        return float(value)
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    if isinstance(value, list):
        return tuple(value)
    if kind in (float, int, bool, str):
        raise ValueError(
            f"{owner}.{name} must be a {kind.__name__} (default {field.default!r}), got {value!r}."
        )
    return value


def replace(config, overrides: dict[str, Any]):
    """A copy of `config` with `overrides` applied; keys are field paths (`"anchor.x"`)."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    names = {f.name for f in dataclasses.fields(config)}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if head not in names:
            raise ValueError(f"unknown hyperparameter {key!r} for {type(config).__name__}.")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            top[head] = value
    for head, fields in nested.items():
        top[head] = replace(getattr(config, head), fields)
    return dataclasses.replace(config, **top)


def is_number(value: Any) -> bool:
    """True for a Python int or float (checks skip arrays, which may be traced)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(name: str, value: Any) -> None:
    if is_number(value) and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}.")


def check_positive(**values) -> None:
    for name, value in values.items():
        _finite(name, value)
        if is_number(value) and not value > 0:
            raise ValueError(f"{name} must be positive, got {value}.")


def check_non_negative(**values) -> None:
    for name, value in values.items():
        _finite(name, value)
        if is_number(value) and not value >= 0:
            raise ValueError(f"{name} must be non-negative, got {value}.")


def check_unit(**values) -> None:
    for name, value in values.items():
        _finite(name, value)
        if is_number(value) and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value}.")


def check_open_unit(**values) -> None:
    for name, value in values.items():
        _finite(name, value)
        if is_number(value) and not 0.0 < value < 1.0:
            raise ValueError(f"{name} must lie in (0, 1), got {value}.")


def check_count(**values) -> None:
    for name, value in values.items():
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")
