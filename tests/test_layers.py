"""The package's layers, as an import contract (import-linter, configured in pyproject.toml).

algebra < core < ops < transforms < tools: a module never imports from a higher
layer, not even inside a function. The contract is checked on the package as it
is, and shown to fail on a copy with one back-import planted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(tree: Path) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=tree, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "einsumad", tmp_path / "einsumad", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_package_keeps_its_layers(tree: Path) -> None:
    done = _lint(tree)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    "module, back_import",
    [
        ("core/tape.py", "from ..ops import arith"),  # the core reaching up to the ops
        ("algebra/swap.py", "from ..core import backend"),  # strings reaching up to arrays
    ],
)
def test_a_back_import_breaks_the_contract_even_inside_a_function(tree: Path, module: str, back_import: str) -> None:
    path = tree / "einsumad" / module
    path.write_text(path.read_text() + f"\n\ndef _planted():\n    {back_import}\n")
    done = _lint(tree)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout and "0 kept, 1 broken" in done.stdout, done.stdout


def test_no_consumer_recognises_a_primitive_by_its_name():
    """Consumers read ``prim.declaration``; comparing ``prim.name`` with a string would
    bring back the drift this layout removed (derive, codegen and fusion disagreeing)."""
    import re
    from pathlib import Path

    pattern = re.compile(r"\bprim\w*\.name\s*(==|!=|\bin\b)|\.prim\.name\s*(==|!=|\bin\b)")
    package = Path(__file__).resolve().parent.parent / "einsumad"
    found = [
        f"{path.relative_to(package.parent)}:{number}: {line.strip()}"
        for path in sorted(package.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)
