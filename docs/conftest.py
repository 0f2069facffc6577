"""Doctests of the documentation pages: a page that needs optional libraries names them in
an HTML comment (``<!-- requires: torch dask -->``), and its doctests are skipped, with
the reason, when one of them is missing (``pip install "einsumad[backends]"`` installs
them). Every other page runs with the core's dependencies alone.
"""

from __future__ import annotations

import importlib.util
import re

import pytest

REQUIRES = re.compile(r"<!--\s*requires:\s*([^>]*?)\s*-->")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = getattr(item, "path", None)
        if path is None or path.suffix != ".md":
            continue
        found = REQUIRES.search(path.read_text(encoding="utf-8"))
        if found is None:
            continue
        missing = [name for name in found.group(1).split() if importlib.util.find_spec(name) is None]
        if missing:
            item.add_marker(pytest.mark.skip(
                reason=f"{path.name} needs {', '.join(missing)} (pip install 'einsumad[backends]')"
            ))
