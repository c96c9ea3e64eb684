"""The API reference covers the public API: every name `spar_eqx`, `spar_eqx.data` and
`spar_eqx.theory` re-export (and `spar_eqx.diagnostics`, once it exists) is documented by a
`::: name` directive on exactly one page under `docs/api/`, every directive names something
that exists, and every class directive lists its members explicitly.

The public names are read from each package's `__init__.py` (what it imports from its own
modules, defines, or lists in `__all__`), so a new re-export without a page fails here.
"""

import ast
import dataclasses
import importlib
import importlib.util
import inspect
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API_PAGES = ROOT / "docs" / "api"
IGNORED = {"__version__"}

_DIRECTIVE = re.compile(r"^(?P<indent>\s*):::\s+(?P<name>[\w.]+)\s*$")


def packages() -> list[str]:
    found = ["spar_eqx", "spar_eqx.data", "spar_eqx.theory"]
    if importlib.util.find_spec("spar_eqx.diagnostics") is not None:
        found.append("spar_eqx.diagnostics")
    return found


def public_names(package: str) -> set[str]:
    """What `package/__init__.py` makes public: relative imports, definitions, `__all__`."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None, package
    with warnings.catch_warnings():  # a docstring's invalid escape is not this test's business
        warnings.simplefilter("ignore")
        tree = ast.parse(Path(spec.origin).read_text())
    names: set[str] = set()
    # Names imported lazily are listed under `if TYPE_CHECKING:` (PEP 562 `__getattr__`).
    lazy = [n for node in tree.body if isinstance(node, ast.If) for n in node.body]
    for node in [*tree.body, *lazy]:
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            names |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id == "__all__":
                    names |= set(ast.literal_eval(node.value))
                elif isinstance(target, ast.Name):
                    names.add(target.id)
    return {n for n in names if not n.startswith("_") and n not in IGNORED}


@dataclasses.dataclass
class Directive:
    page: str
    line: int
    name: str
    members: list[str] | bool | None  # None: no `members:` option


def _members(block: list[str]) -> list[str] | bool | None:
    """The `members:` option of a directive's indented options block (a YAML subset)."""
    for i, line in enumerate(block):
        match = re.match(r"^(\s*)members:\s*(.*?)\s*$", line)
        if not match:
            continue
        value = match.group(2)
        if value.lower() in ("false", "true"):
            return value.lower() == "true"
        if value.startswith("["):
            return [m.strip().strip("'\"") for m in value.strip("[]").split(",") if m.strip()]
        items = []
        for item in block[i + 1 :]:
            if not item.strip():
                continue
            bullet = re.match(r"^\s*-\s*(\S+)\s*$", item)
            if not bullet:
                break
            items.append(bullet.group(1).strip("'\""))
        return items
    return None


def directives(pages: list[Path]) -> list[Directive]:
    """Every `::: name` directive of `pages`, with its members option."""
    found = []
    for page in pages:
        lines = page.read_text().splitlines()
        for number, line in enumerate(lines, start=1):
            match = _DIRECTIVE.match(line)
            if not match:
                continue
            indent = len(match.group("indent"))
            block = []
            for following in lines[number:]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                block.append(following)
            found.append(Directive(page.name, number, match.group("name"), _members(block)))
    return found


def documented(found: list[Directive], package_names: list[str]) -> dict[str, list[str]]:
    """`"package.name" -> ["page:line", ...]` for every top-level name the directives cover.

    `::: package.name` covers `name`; `::: package` (a whole module) covers its `members`.
    """
    out: dict[str, list[str]] = {}
    for d in found:
        where = f"{d.page}:{d.line}"
        if d.name in package_names and isinstance(d.members, list):
            for member in d.members:
                out.setdefault(f"{d.name}.{member}", []).append(where)
            continue
        package, _, name = d.name.rpartition(".")
        if package in package_names:
            out.setdefault(d.name, []).append(where)
    return out


def coverage_problems(found: list[Directive], package_names: list[str]) -> list[str]:
    """Public names documented nowhere or more than once, and directives naming no public name."""
    covered = documented(found, package_names)
    problems = []
    public = {f"{p}.{n}" for p in package_names for n in public_names(p)}
    for name in sorted(public):
        places = covered.get(name, [])
        if not places:
            problems.append(f"{name} is on no page under docs/api/")
        elif len(places) > 1:
            problems.append(f"{name} is documented {len(places)} times: {', '.join(places)}")
    for name, places in sorted(covered.items()):
        if name not in public:
            problems.append(f"{name} ({', '.join(places)}) is not a public name")
    return problems


def resolve(identifier: str):
    """The object `identifier` names: the longest importable module, then attributes."""
    parts = identifier.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(identifier)


def api_pages() -> list[Path]:
    return sorted(API_PAGES.glob("*.md"))


def test_every_public_name_is_on_exactly_one_api_page():
    problems = coverage_problems(directives(api_pages()), packages())
    assert not problems, "\n".join(problems)


def test_every_directive_names_an_existing_object():
    missing = []
    for d in directives(api_pages()):
        try:
            resolve(d.name)
        except (ImportError, AttributeError):
            missing.append(f"{d.page}:{d.line}: {d.name}")
    assert not missing, "\n".join(missing)


def test_class_directives_list_their_members():
    """Explicit `members:` on every class (a list, or false), as in the Equinox docs."""
    implicit = []
    for d in directives(api_pages()):
        obj = resolve(d.name)
        if inspect.isclass(obj) and d.members is None:
            implicit.append(f"{d.page}:{d.line}: {d.name}")
        if isinstance(d.members, list):
            for member in d.members:
                if not (inspect.ismodule(obj) or hasattr(obj, member) or _is_field(obj, member)):
                    implicit.append(f"{d.page}:{d.line}: {d.name} has no member {member!r}")
    assert not implicit, "\n".join(implicit)


def _is_field(cls, name: str) -> bool:
    annotations = {}
    for base in reversed(getattr(cls, "__mro__", ())):
        annotations.update(getattr(base, "__annotations__", {}))
    return name in annotations


@pytest.mark.parametrize("case", ["missing", "twice", "stale", "module"])
def test_the_coverage_check_can_fail(tmp_path, case):
    """The checker itself: it reports a missing, a duplicated and a stale name."""
    names = sorted(public_names("spar_eqx.theory"))
    lines = [f"::: spar_eqx.theory.{n}" for n in names]
    if case == "missing":
        lines = lines[1:]
    elif case == "twice":
        lines.append(lines[0])
    elif case == "stale":
        lines.append("::: spar_eqx.theory.no_such_function")
    else:  # a module directive with a members list covers those members
        lines = ["::: spar_eqx.theory", "    options:", "      members:"]
        lines += [f"        - {n}" for n in names]
    page = tmp_path / "theory.md"
    page.write_text("\n\n".join(lines) + "\n")
    problems = coverage_problems(directives([page]), ["spar_eqx.theory"])
    expected = {
        "missing": [f"spar_eqx.theory.{names[0]} is on no page under docs/api/"],
        "twice": [f"spar_eqx.theory.{names[0]} is documented 2 times: theory.md:1, theory.md:"],
        "stale": ["spar_eqx.theory.no_such_function (theory.md:"],
        "module": [],
    }[case]
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problems
