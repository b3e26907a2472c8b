"""The synthetic renderer is its own package above the data layer, in modules of readable size."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import pipa_video.synthetic as syn

PACKAGE = Path(__file__).resolve().parents[2] / "pipa_video"
MAX_MODULE_LINES = 500  # the house rule for every module in pipa_video/


def imported(path: Path) -> set[str]:
    """Absolute module names imported by ``path`` (``from pipa_video import x`` counts as pipa_video.x)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}: relative import; the package uses absolute imports")
    return names


def test_the_data_layer_never_imports_the_synthetic_package():
    offenders = {f"{path.relative_to(PACKAGE)}: {name}" for path in (PACKAGE / "data").rglob("*.py")
                 for name in imported(path) if name.split(".")[:2] == ["pipa_video", "synthetic"]}
    assert not offenders


def test_the_synthetic_package_depends_on_the_data_layer_only():
    # and on pipa_video.atomic, the package's one writer of whole files (below the data layer)
    allowed = (["pipa_video", "data"], ["pipa_video", "synthetic"], ["pipa_video", "atomic"])
    offenders = {f"{path.name}: {name}" for path in (PACKAGE / "synthetic").rglob("*.py")
                 for name in imported(path) if name.startswith("pipa_video") and name.split(".")[:2] not in allowed}
    assert not offenders


def test_no_module_in_the_package_is_over_the_house_limit():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_the_public_names_come_from_the_package():
    for name in syn.__all__:
        assert getattr(syn, name) is not None
    assert syn.ensure_synthetic.__module__ == "pipa_video.synthetic.api"
    with pytest.raises(ModuleNotFoundError):  # moved, no shim left in the data layer
        importlib.import_module("pipa_video.data.synthetic")
