"""Every Python example in the docs runs as written, or says on its first line that it is a
fragment (`# Fragment: why`). Each runs in a fresh folder with the names it defines only.

`docs/deploy.md`'s control loop needs an exported policy: `tests/test_deploy.py` runs it.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"])
RUN_ELSEWHERE = {"deploy.md"}
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def examples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for number, match in enumerate(_BLOCK.finditer(page.read_text())):
            found.append((f"{page.relative_to(ROOT)}#{number}", match.group(1)))
    return found


RUNNABLE = [
    pytest.param(code, id=name)
    for name, code in examples()
    if not code.startswith("# Fragment:") and Path(name.split("#")[0]).name not in RUN_ELSEWHERE
]


def test_there_are_examples_of_both_kinds():
    codes = [code for _, code in examples()]
    assert len(RUNNABLE) >= 4 and any(c.startswith("# Fragment:") for c in codes)


@pytest.mark.parametrize("code", RUNNABLE)
def test_example_runs_as_written(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "example", "exec"), {"__name__": "example"})
