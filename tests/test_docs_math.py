"""The documentation's mathematics: typeset, and the tutorial's derivation is derive's own.

* The tutorial's typeset block is exactly ``d.latex`` of the derivation the page
  computes (the page's examples are run here to get ``d``).
* The built site serves MathJax itself and marks every formula for it; a slow test
  opens the tutorial in headless Chromium (``apt install chromium``) and finds the
  formulas typeset, no raw TeX left; without a browser it checks the built HTML.
"""

from __future__ import annotations

import doctest
import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial" / "backprop.md"


def _run_page(path: Path) -> dict:
    """Run every example of a page in one namespace (as the doctest of the page does)."""
    text = path.read_text(encoding="utf-8")
    parser = doctest.DocTestParser()
    globs: dict = {}
    for block in re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        for example in parser.get_examples(block):
            exec(compile(example.source, str(path), "single"), globs)  # noqa: S102
    return globs


def test_the_tutorials_typeset_block_is_derives_latex(capsys) -> None:
    text = TUTORIAL.read_text(encoding="utf-8")
    match = re.search(r"<!-- derive-latex -->\n\$\$\n(.*?)\n\$\$", text, re.DOTALL)
    assert match, "the tutorial has no typeset derivation"
    globs = _run_page(TUTORIAL)
    capsys.readouterr()
    assert match.group(1) == globs["d"].latex
    assert "\\text{BP1}" in match.group(1) and "\\text{BP4}" in match.group(1)


def _build(site: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("pymdownx")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _formulas(page: str) -> int:
    return len(re.findall(r'class="arithmatex"', page))


def _visible_text(page: str) -> str:
    page = re.sub(r"<(script|style|pre|code)\b.*?</\1>", " ", page, flags=re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.mark.slow
def test_the_tutorial_shows_typeset_mathematics(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _build(site)
    page_path = site / "tutorial" / "backprop" / "index.html"
    page = page_path.read_text(encoding="utf-8")
    # the page loads MathJax from the site itself, and the site has it
    assert 'src="../../javascripts/mathjax/tex-svg.js"' in page
    assert (site / "javascripts" / "mathjax" / "tex-svg.js").stat().st_size > 1_000_000
    formulas = _formulas(page)
    assert formulas >= 20
    # no formula is left as raw dollars outside the marked formulas: arithmatex took them all
    outside = _visible_text(re.sub(r'<(div|span) class="arithmatex">.*?</\1>', " ", page, flags=re.DOTALL))
    assert "$$" not in outside and not re.search(r"\$[^$\s][^$]*\$", outside)
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium on the PATH (apt install chromium): checked the built HTML only")
    profile = tmp_path / "profile"
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=20000", "--dump-dom", page_path.as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    )
    dom = done.stdout
    assert "<body" in dom, done.stderr[-2000:]
    typeset = len(re.findall(r"<mjx-container", dom))
    assert typeset >= formulas, f"{typeset} formulas typeset of {formulas}"
    text = _visible_text(re.sub(r"<mjx-container.*?</mjx-container>", " ", dom, flags=re.DOTALL))
    assert "\\begin{alignedat}" not in text and "\\delta" not in text and "\\(" not in text
    assert "<svg" in dom  # MathJax drew the formulas
