"""CONTRIBUTING's layout map matches the folders: every module is listed, every
listed path exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / "CONTRIBUTING.md").read_text()


def test_every_module_is_in_the_layout_map() -> None:
    listed = TEXT.split("## Layout", 1)[1].split("## Conventions", 1)[0]
    missing = []
    for path in sorted((ROOT / "einsumad").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if path.name == "__init__.py" and path.parent.name != "einsumad":
            continue  # a layer's __init__ only describes the layer
        folder = path.parent.relative_to(ROOT).as_posix() + "/"
        if f"`{relative}`" in listed or f"`{path.name}`" in listed or (folder in listed and path.parent.name == "derive"):
            continue
        missing.append(relative)
    assert not missing, f"modules missing from CONTRIBUTING's layout map: {missing}"


def test_every_path_in_the_layout_map_exists() -> None:
    for path in re.findall(r"`(einsumad/[\w/]+(?:\.py)?/?)`", TEXT):
        assert (ROOT / path).exists(), f"CONTRIBUTING names {path}, which does not exist"
