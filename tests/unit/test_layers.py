"""The hexagon holds: domain and application import only the standard library (and the layers below them)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ALLOWED = {"domain": {"domain"}, "application": {"domain", "application"}}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_inner_layers_import_only_the_standard_library(layer):
    offenders = {}
    for path in sorted((SRC / layer).rglob("*.py")):
        foreign = {r for r in imported_roots(path) if r not in sys.stdlib_module_names and r not in ALLOWED[layer]}
        if foreign:
            offenders[str(path.relative_to(SRC))] = sorted(foreign)
    assert offenders == {}


def test_the_import_linter_contracts_hold():
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(SRC.parent / "pyproject.toml")) == 0
