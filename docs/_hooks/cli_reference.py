"""MkDocs hook: the `spar-eqx` command-line reference, rendered from the real parsers.

`docs/cli.md` holds the prose and one marker line, `<!-- cli-reference -->`; at build time
this hook replaces the marker with a section per subcommand and a table per group of
options. Everything in those tables is read from the parsers that `spar-eqx` itself builds
(`spar_eqx._cli._build_parser(algo)`, once per registered algorithm), and the defaults of
the hyperparameter flags from the config classes behind them (`flag_table`), so a new
subcommand, flag, default or algorithm appears on the next build with no edit here.
"""

import argparse
import html
import re
from typing import Any

MARKER = "<!-- cli-reference -->"
PAGE = "cli.md"

# The suffix `_cli_train` puts on a hyperparameter flag's help: "(default: X)" and "*" when
# the flag can be given to --sweep. The table shows both in columns of their own.
_DEFAULT_SUFFIX = re.compile(r"\s*\(default: [^()]*\)\*?$")
# Subcommands documented first, in this order; any others follow in the parser's order.
_ORDER = ("train", "evaluate", "export", "collect", "diagnose")


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{PAGE} lost its `{MARKER}` line: the CLI reference has nowhere to go.")
    return markdown.replace(MARKER, render())


def render() -> str:
    """The whole reference: one `##` section per subcommand."""
    from spar_eqx._cli import _build_parser

    top = _build_parser("spar")
    subcommands = _subparsers(top)
    names = [n for n in _ORDER if n in subcommands] + [n for n in subcommands if n not in _ORDER]
    out = [
        f"`{top.prog}` has {len(names)} commands: "
        + ", ".join(f"[`{name}`](#{name})" for name in names)
        + ". Every command takes `-h`/`--help`.",
        "",
    ]
    helps = _subcommand_help(top)
    for name in names:
        out.append(f"## `{name}` {{#{name}}}")
        out.append("")
        if helps.get(name):
            out.append(f"{_sentence(helps[name])}")
            out.append("")
        parser = subcommands[name]
        if parser.description:
            out += [_text(parser.description), ""]
        if name == "train":
            out += _train_section()
        else:
            out += [f"```text\n{_usage(parser)}\n```", ""]
            for title, rows in _groups(parser, parser._actions):
                out += _table(title, rows)
    return "\n".join(out)


def _train_section() -> list[str]:
    """`train`: the options every algorithm shares, then each algorithm's own."""
    from spar_eqx._cli import _build_parser
    from spar_eqx._registry import ALGORITHMS
    from spar_eqx._run_config import flag_table, sweep_key, sweep_names

    parsers = {algo: _subparsers(_build_parser(algo))["train"] for algo in ALGORITHMS}
    signatures = {algo: {_signature(a): a for a in p._actions} for algo, p in parsers.items()}
    common = set.intersection(*(set(s) for s in signatures.values()))
    first = next(iter(parsers.values()))
    out = [
        "`--algo NAME` picks the algorithm; the options it accepts depend on it. "
        "`spar-eqx train --algo NAME --help` lists NAME's.",
        "",
        f"```text\n{_synopsis(parsers['spar'])}\n```",
        "",
        "### Options of every algorithm",
        "",
    ]
    shared = [a for a in first._actions if _signature(a) in common]
    for title, rows in _groups(first, shared, {"options": "General"}):
        out += _table(title, rows, level=4)
    for algo, parser in parsers.items():
        entry = ALGORITHMS[algo]
        own = [a for a in parser._actions if _signature(a) not in common]
        flags = flag_table(algo)
        sweepable = set(sweep_names(algo))
        out += [
            f"### `train --algo {algo}` {{#train-{algo}}}",
            "",
            f"{_sentence(entry.summary)} Stages: "
            + ", ".join(f"`{s}`" for s in entry.stages)
            + f"; hyperparameters: [`{entry.config.__name__}`]"
            + f"[spar_eqx.{entry.config.__name__}].",
            "",
        ]
        plain = [a for a in own if a.option_strings[0] not in flags]
        hyper = [a for a in own if a.option_strings[0] in flags]
        if plain:
            out += _table("Stage budgets and options of this algorithm", _rows(parser, plain), 4)
        if hyper:
            rows = []
            for action in hyper:
                flag = action.option_strings[0]
                fields = flags[flag]
                default = _code(_value(fields[0].default))
                sets = ", ".join(f"`{h.path}`" for h in fields)
                star = "yes" if sweep_key(flag) in sweepable else ""
                help_text = _DEFAULT_SUFFIX.sub("", _expanded_help(parser, action))
                rows.append([_invocation(action), default, star, sets, _text(help_text)])
            out += _markdown_table(
                "Hyperparameters",
                ["Option", "Default", "`--sweep`", "Sets", "Meaning"],
                rows,
                level=4,
            )
    return out


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _subcommand_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def _signature(action: argparse.Action) -> tuple:
    """What makes two algorithms' versions of an option the same option."""
    return (
        tuple(action.option_strings),
        action.dest,
        repr(action.default),
        action.help,
        tuple(action.choices) if action.choices else None,
        action.required,
        type(action).__name__,
    )


def _groups(
    parser: argparse.ArgumentParser, actions, titles: dict[str, str] | None = None
) -> list[tuple[str, list[list[str]]]]:
    """`actions` by their argparse group, in the parser's order, `--help` left out."""
    titles = {"options": "Options", "positional arguments": "Arguments", **(titles or {})}
    wanted = {id(a) for a in actions if not isinstance(a, argparse._HelpAction)}
    out = []
    for group in parser._action_groups:
        members = [a for a in group._group_actions if id(a) in wanted]
        if members:
            out.append((titles.get(group.title, group.title), _rows(parser, members)))
    return out


def _rows(parser: argparse.ArgumentParser, actions) -> list[list[str]]:
    rows = []
    for action in actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        rows.append([_invocation(action), _default(action), _text(_describe(parser, action))])
    return rows


def _table(title: str, rows: list[list[str]], level: int = 3) -> list[str]:
    first = "Argument" if title == "Arguments" else "Option"
    return _markdown_table(title, [first, "Default", "Meaning"], rows, level)


def _markdown_table(title: str, header: list[str], rows: list[list[str]], level: int):
    if not rows:
        return []
    lines = [f"{'#' * level} {_text(title[:1].upper() + title[1:])}", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(" --- " for _ in header) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _usage(parser: argparse.ArgumentParser) -> str:
    """The usage line, wrapped at 88 columns whatever the terminal of the build."""
    formatter = parser.formatter_class(prog=parser.prog, width=88)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip().removeprefix("usage: ")


def _synopsis(parser: argparse.ArgumentParser) -> str:
    """`prog` with its required options; the full list is too long to read as usage."""
    required = [
        f"{a.option_strings[0]} {a.metavar or a.dest.upper()}"
        for a in parser._actions
        if a.required and a.option_strings
    ]
    return " ".join([parser.prog, "[--algo NAME]", *required, "[OPTIONS]"])


def _invocation(action: argparse.Action) -> str:
    """`--flag METAVAR`, with a long list of choices named rather than spelt out."""
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    if action.nargs == 0:
        metavar = ""
    elif action.choices and len(",".join(map(str, action.choices))) <= 30:
        metavar = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        metavar = action.metavar or action.dest.upper()
        if isinstance(metavar, tuple):
            metavar = " ".join(metavar)
        if action.nargs in ("+", "*"):
            metavar = f"{metavar} [{metavar} ...]"
    flags = ", ".join(action.option_strings)
    return f"`{flags} {metavar}`" if metavar else f"`{flags}`"


def _default(action: argparse.Action) -> str:
    if action.required:
        return "required"
    if not action.option_strings:
        if action.nargs not in ("?", "*"):
            return "required"
        return "optional" if action.default is None else _code(_value(action.default))
    if action.nargs == 0:
        return "off" if not action.default else "on"
    if action.default is None or action.default == argparse.SUPPRESS:
        return "—"
    if isinstance(action.default, list) and not action.default:
        return "—"
    return _code(_value(action.default))


def _describe(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    text = _expanded_help(parser, action)
    if action.choices and _invocation(action).count("{") == 0 and action.nargs != 0:
        text += ". One of: " + ", ".join(f"`{c}`" for c in action.choices)
    if action.nargs in ("+", "*"):
        text += " (one or more values)"
    return text


def _expanded_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help:
        return ""
    return parser._get_formatter()._expand_help(action)


def _value(value: Any) -> str:
    """A default as a user would type it: `3e-4`, `1000000`, `mlp`."""
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            mantissa, exponent = f"{value:.6e}".split("e")
            return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return repr(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _code(text: str) -> str:
    return f"`{text}`"


def _sentence(text: str) -> str:
    text = _text(text.strip())
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _text(text: str) -> str:
    """`text` safe in a Markdown table cell: code spans kept, everything else escaped."""
    parts = re.split(r"(`[^`]*`)", " ".join(text.split()))
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(part.replace("|", "\\|"))
        else:
            part = html.escape(part, quote=False)
            out.append(re.sub(r"([*_|\[\]])", r"\\\1", part))
    return "".join(out)
