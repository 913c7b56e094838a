"""The package layering: ``streams`` is the base, ``agents`` and ``trainers`` build on it and never
import each other, and ``streams`` imports neither.

Every ``.py`` file of the three packages is parsed with :mod:`ast`; the root of every
``import x.y`` and ``from x.y import z`` (at any depth: in functions, under ``TYPE_CHECKING``) must
not be a package the file's own package may not depend on. Relative imports stay inside the
file's own package and are allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> the first-party packages it must never import
FORBIDDEN: dict[str, frozenset[str]] = {
    "streams": frozenset({"agents", "trainers"}),
    "agents": frozenset({"trainers"}),
    "trainers": frozenset({"agents"}),
}


def imported_roots(source: str) -> set[str]:
    """The top-level package of every absolute import in ``source``."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def violations(package: str, source: str) -> set[str]:
    """The packages ``source`` (a module of ``package``) imports although the layering forbids it."""
    return imported_roots(source) & FORBIDDEN[package]


def test_the_check_catches_synthetic_violations() -> None:
    source = """
import numpy as np
from streams.clock import now_us
from . import sibling

def late():
    import trainers.registry
    from agents.inference import updates
"""
    assert imported_roots(source) == {"numpy", "streams", "trainers", "agents"}
    assert violations("streams", source) == {"agents", "trainers"}
    assert violations("agents", source) == {"trainers"}
    assert violations("trainers", source) == {"agents"}
    assert violations("trainers", "from trainers.run.loop import TrainerLoop\nimport streams") == set()
    assert violations("agents", "if TYPE_CHECKING:\n    from trainers import metrics\n") == {"trainers"}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_the_layering(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    found = {
        str(path.relative_to(ROOT)): sorted(bad)
        for path in files
        if (bad := violations(package, path.read_text(encoding="utf-8")))
    }
    assert found == {}, f"{package}/ imports packages it must not: {found}"
