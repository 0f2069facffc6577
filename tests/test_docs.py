"""The documentation site: every code block runs, and the site builds in strict mode.

Conventions for code blocks in ``docs/**/*.md`` (and ``README.md``), so that the
docs cannot drift from the code:

* ```` ```python ```` blocks are doctests (``>>>`` prompts with their expected
  output, then a blank line before the closing fence). pytest runs them through
  ``--doctest-glob='*.md'`` with ``docs`` in ``testpaths`` (pyproject.toml); the
  test below checks that no python block escapes that (no prompt, no blank line).
* ```` ```bash ```` blocks whose every command starts with ``python -m einsumad``
  are run here, one command per line (``#`` comments are ignored). A command must
  exit with status 0, unless its line carries the comment ``# exit status N``.
  When a ```` ```text ```` block follows the bash block directly, it is the
  expected standard output of the block's commands, compared line by line
  (trailing spaces ignored). Other bash blocks (``pip install .``) are
  instructions and are not run.
* ```` ```text ```` blocks elsewhere are formulas or prose, not checked.

The strict build (``mkdocs build --strict``) runs when the ``docs`` extra is
installed (``pip install ".[docs]"``) and is skipped otherwise.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
CLI = "python -m einsumad"
EXIT = re.compile(r"#\s*exit status (\d+)")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    body: str
    end: int  # offset just after the closing fence


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [
        Block(path, text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2), m.end())
        for m in FENCE.finditer(text)
    ]


def _id(block: Block) -> str:
    return f"{block.page.relative_to(ROOT)}:{block.line}"


def commands(block: Block) -> list[str]:
    return [ln for ln in block.body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def cli_blocks() -> list[tuple[Block, str | None]]:
    """Each CLI bash block with the ``text`` block right after it (or None)."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        page_blocks = blocks(page)
        for n, block in enumerate(page_blocks):
            cmds = commands(block)
            if block.lang != "bash" or not cmds or not all(c.startswith(CLI) for c in cmds):
                continue
            expected = None
            if n + 1 < len(page_blocks):
                nxt = page_blocks[n + 1]
                gap = text[block.end : text.index("```", block.end + 1)]
                if nxt.lang == "text" and not gap.strip():
                    expected = nxt.body
            found.append((block, expected))
    return found


def test_docs_pages_exist() -> None:
    names = {str(p.relative_to(DOCS)) for p in PAGES}
    assert {"index.md", "tutorial/backprop.md", "guide/verifying.md", "guide/models.md",
            "algebra.md", "api.md"} <= names


@pytest.mark.parametrize(
    "page", PAGES + [ROOT / "README.md"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_python_block_is_a_doctest(page: Path) -> None:
    for block in blocks(page):
        if block.lang not in ("python", "py", "pycon"):
            continue
        assert block.lang == "python", f"{_id(block)}: use ```python for examples"
        assert block.body.lstrip().startswith(">>>"), (
            f"{_id(block)}: a python block must be a doctest (start with >>>) so that it runs"
        )
        assert block.body.endswith("\n\n"), (
            f"{_id(block)}: leave a blank line before the closing fence, or the fence "
            "becomes part of the expected output"
        )


def test_cli_blocks_are_found() -> None:
    assert len(cli_blocks()) >= 3  # guide/verifying.md shows `check` and `vjp`


@pytest.mark.parametrize(
    "block,expected", [pytest.param(b, e, id=_id(b)) for b, e in cli_blocks()]
)
def test_cli_block_runs(block: Block, expected: str | None) -> None:
    output = []
    for line in commands(block):
        status = EXIT.search(line)
        argv = shlex.split(line, comments=True)
        assert argv[:3] == ["python", "-m", "einsumad"], line
        done = subprocess.run(
            [sys.executable, *argv[1:]],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )
        want = int(status.group(1)) if status else 0
        assert done.returncode == want, (
            f"{_id(block)}: `{line}` exited with {done.returncode}, expected {want}\n"
            f"{done.stdout}\n{done.stderr}"
        )
        output.append(done.stdout)
    if expected is not None:
        got = [_rounding(ln.rstrip()) for ln in "".join(output).rstrip("\n").splitlines()]
        want_lines = [_rounding(ln.rstrip()) for ln in expected.rstrip("\n").splitlines()]
        assert got == want_lines, f"{_id(block)}: output differs from the text block after it"


ROUNDING = re.compile(r"\b\d\.\de-1[0-9]\b")


def _rounding(line: str) -> str:
    """A line with rounding-level errors (``4.0e-11``) masked: their digits depend on
    the machine's BLAS kernels, not on einsumad."""
    return ROUNDING.sub("<rounding>", line)


def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for page in ("index.html", "tutorial/backprop/index.html", "algebra/index.html",
                 "guide/verifying/index.html", "guide/models/index.html", "api/index.html"):
        assert (tmp_path / page).is_file(), page
    api = (tmp_path / "api" / "index.html").read_text(encoding="utf-8")
    import einsumad

    for name in einsumad.__all__:
        assert f'id="einsumad.{name}"' in api, f"{name} is missing from the API reference"
