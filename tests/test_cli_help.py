"""`spar-eqx --help` and `--version` answer without importing JAX, and every option's
placeholder says what to type (not an internal destination name)."""

import argparse
import subprocess
import sys

import pytest

import spar_eqx
from spar_eqx._cli import _build_parser, main
from spar_eqx._registry import ALGORITHMS

_PROBE = """
import sys
from spar_eqx._cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = [m for m in ("jax", "equinox", "gymnasium", "minari", "matplotlib") if m in sys.modules]
print("HEAVY", heavy, "CODE", code)
"""


@pytest.mark.parametrize("argv", [["--help"], ["--version"], [], ["no-such-command"]])
def test_no_command_imports_nothing_heavy(argv):
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=120
    )
    assert "HEAVY [] CODE" in done.stdout, done.stdout + done.stderr
    if argv == ["--version"]:
        assert f"spar-eqx {spar_eqx.__version__}" in done.stdout
    if argv == ["--help"]:
        for command in ("train", "evaluate", "export", "diagnose", "collect"):
            assert command in done.stdout


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"spar-eqx {spar_eqx.__version__}"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_every_placeholder_says_what_to_type(algo):
    for name, parser in _subparsers(_build_parser(algo)).items():
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0 or action.choices:
                continue
            # argparse's own placeholder is the destination in capitals (STEPS_STAGE1).
            derived = action.dest.upper()
            assert action.metavar is not None or "_" not in derived, (name, action.option_strings)
