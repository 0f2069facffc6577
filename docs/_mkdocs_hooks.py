"""MkDocs hook: render einsumad's docstrings, written for doctest, as Markdown.

The package's docstrings are Google style with bare ``>>>`` examples (no
``Examples:`` header) and a few Sphinx roles (``:func:`grad```). Python-Markdown
would turn ``>>>`` into nested block quotes and ``[...]`` outputs into link
references, so this hook adds a Markdown preprocessor that

* wraps each run of doctest lines (``>>>`` up to the next blank line) that is
  not already inside a fenced block in a ```` ```python ```` fence;
* turns ``:func:`x``` (and ``:class:``, ``:meth:``, ``:mod:``, ``:attr:``,
  ``:data:``) into a cross-reference when ``x`` is documented in the API
  reference, and into inline code otherwise;
* turns a reStructuredText literal-block marker (a line ending in ``::``) into
  an ordinary colon (the indented block after it is already a code block).

It applies to every page and to every docstring rendered by mkdocstrings (which
reuses the site's Markdown extensions). Markdown is imported lazily, so pytest's
``--doctest-modules`` can import this file without the ``docs`` extra.

Mathematics: ``pymdownx.arithmatex`` marks ``$...$`` and ``$$...$$``, and MathJax
typesets them in the browser. MathJax is served by the site itself (no network
needed to read the docs): :func:`on_files` adds MathJax's ``tex-svg.js``, which the
``docs`` extra installs from PyPI (the ``django-static-mathjax`` package ships the
built MathJax 3 files), as ``javascripts/mathjax/tex-svg.js``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc):`(~?)([\w.]+)`")
_FENCE = re.compile(r"^\s*(```|~~~)")
_PROMPT = re.compile(r"^(\s*)>>>( |$)")


def _public_names() -> set[str]:
    import einsumad

    return set(einsumad.__all__)


def _role(match: re.Match[str], public: set[str]) -> str:
    target = match.group(2)
    short = target.rsplit(".", 1)[-1]
    bare = target.removeprefix("einsumad.")
    if bare in public:
        return f"[`{short if match.group(1) else bare}`][einsumad.{bare}]"
    if target.startswith("einsumad.") and short in public:  # ~einsumad._matrix.matrix_form
        return f"[`{short if match.group(1) else target}`][einsumad.{short}]"
    if bare.startswith("optim.") and bare.count(".") == 1:
        return f"[`{bare}`][einsumad.{bare}]"
    return f"`{short if match.group(1) else target}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def convert(lines: list[str], public: set[str]) -> list[str]:
    """Wrap bare doctest runs in fences; replace Sphinx roles and ``::`` markers."""
    out: list[str] = []
    in_fence = False
    in_doctest = False
    indent = ""
    for n, line in enumerate(lines):
        if in_doctest:
            if line.strip():
                out.append(line)
                continue
            out.append(indent + "```")
            in_doctest = False
        if _FENCE.match(line):
            in_fence = not in_fence
            out.append(line)
            continue
        if in_fence:
            out.append(line)
            continue
        prompt = _PROMPT.match(line)
        if prompt:
            indent = prompt.group(1)
            out.append(indent + "```python")
            out.append(line)
            in_doctest = True
            continue
        line = _ROLE.sub(lambda m: _role(m, public), line)
        if line.rstrip().endswith("::") and not line.rstrip().endswith(":::"):
            following = next((x for x in lines[n + 1 :] if x.strip()), "")
            if _indent(following) > _indent(line):
                line = line.rstrip()[:-1]
        out.append(line)
    if in_doctest:
        out.append(indent + "```")
    return out


def on_config(config: Any) -> Any:
    """Register the preprocessor with the site's (and mkdocstrings') Markdown."""
    from markdown import Extension
    from markdown.preprocessors import Preprocessor

    public = _public_names()

    class _DoctestPreprocessor(Preprocessor):
        def run(self, lines: list[str]) -> list[str]:
            return convert(lines, public)

    class DoctestBlocks(Extension):
        def extendMarkdown(self, md: Any) -> None:
            # Before fenced_code (priority 25), so fences are still plain text.
            md.preprocessors.register(_DoctestPreprocessor(md), "einsumad_doctest_blocks", 30)

    config.markdown_extensions.append(DoctestBlocks())
    return config


MATHJAX = "javascripts/mathjax/tex-svg.js"


def mathjax_source() -> Path | None:
    """MathJax's self-contained TeX-to-SVG component, as installed by the ``docs`` extra."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "static" / "mathjax" / "es5" / "tex-svg.js"
        if path.is_file():
            return path
    return None


def on_files(files: Any, config: Any) -> Any:
    """Serve MathJax from the site: add ``tex-svg.js`` to the built files."""
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    source = mathjax_source()
    if source is None:
        raise PluginError(
            "MathJax is missing: install the documentation extra, pip install '.[docs]' "
            "(it brings MathJax from PyPI as the django-static-mathjax package)"
        )
    files.append(File.generated(config, MATHJAX, abs_src_path=str(source)))
    return files
