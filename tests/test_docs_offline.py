"""The documentation site works offline: mkdocs.yml loads no script, style or font from the
network, and the math is MathML written at build time (`docs/_hooks/mathml.py`)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _hook():
    pytest.importorskip("latex2mathml")
    spec = importlib.util.spec_from_file_location("mathml_hook", ROOT / "docs/_hooks/mathml.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mkdocs_yml_fetches_nothing():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    for key in ("extra_javascript", "extra_css"):
        for entry in config.get(key, []):
            assert "://" not in str(entry), (key, entry)
    assert config["theme"].get("font") is False  # Material loads Google Fonts otherwise
    assert "docs/_hooks/mathml.py" in config["hooks"]


def test_math_becomes_mathml():
    hook = _hook()

    class Page:
        class file:
            src_uri = "x.md"

    html = (
        '<p>a <span class="arithmatex">\\(Q_{rob} = \\bar Q - \\lambda_u \\sigma\\)</span> b</p>'
        '<div class="arithmatex">\\[w = \\exp(\\tilde A / T) &lt; 1\\]</div>'
    )
    out = hook.on_page_content(html, Page, None, None)
    assert "arithmatex" not in out and out.count("<math") == 2
    assert out.count('display="block"') == 1 and "<mo>&#x0003C;</mo>" in out
    with pytest.raises(ValueError, match="x.md: cannot render the math"):
        hook.on_page_content(
            '<span class="arithmatex">\\(\\notacommand x\\)</span>', Page, None, None
        )


def test_a_configs_hand_written_field_list_gives_way_to_the_generated_table():
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location(
        "hyper_tables_hook", ROOT / "docs/_hooks/hyper_tables.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (
        "Stage I.\n\nWhy it is so.\n\n**Fields** (flag, default):\n\n- `a` (`--a`, 1)\n"
        "- `b`, `c` (`--b` 2,\n  `--c` 3)\n\nAfter the list."
    )
    assert module.without_fields(text) == "Stage I.\n\nWhy it is so.\n\nAfter the list."
    one = "Whole.\n\n**Fields:** `anchor` (`AnchorConfig`), `gate`\n(`GateConfig`)."
    assert module.without_fields(one) == "Whole."
