"""MkDocs hook: the site's math rendered at build time as MathML, which browsers display
natively, so the site needs no script from a CDN and works offline.

`pymdownx.arithmatex` (generic mode) wraps every `$...$`, `\\(...\\)` and `$$...$$` span of
the pages and docstrings in `<span class="arithmatex">` / `<div class="arithmatex">`; this
hook replaces each with the MathML `latex2mathml` (the `docs` extra) converts it to. A span it
cannot convert fails the (strict) build with the page and the TeX, instead of showing raw TeX.
"""

import html
import re

from latex2mathml.converter import convert

_MATH = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.S)
_DELIMITERS = {"\\(": "\\)", "\\[": "\\]"}


def to_mathml(tag: str, body: str, where: str) -> str:
    """The MathML of one arithmatex element (`tag` span: inline, div: display)."""
    tex = html.unescape(body).strip()
    if tex[:2] in _DELIMITERS and tex.endswith(_DELIMITERS[tex[:2]]):
        tex = tex[2:-2]
    display = "block" if tag == "div" else "inline"
    try:
        out = convert(tex, display=display)
    except Exception as error:  # latex2mathml raises several kinds on TeX it does not know
        raise ValueError(f"{where}: cannot render the math {tex!r} ({error}).") from None
    unknown = re.search(r">(\\[A-Za-z]+)<", out)  # a command it did not know, shown raw
    if "<merror" in out or unknown:
        what = f" (no MathML for {unknown.group(1)})" if unknown else ""
        raise ValueError(f"{where}: cannot render the math {tex!r}{what}.")
    return out


def on_page_content(content: str, page, config, files) -> str:
    where = page.file.src_uri
    return _MATH.sub(lambda m: to_mathml(m.group(1), m.group(2), where), content)
