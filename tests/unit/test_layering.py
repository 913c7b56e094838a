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


def sibling_commands(source: str, names: set[str]) -> set[str]:
    """The modules of ``tradeloop.commands`` (among ``names``) that a command module's ``source`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if (node.level == 1 and not module) or (node.level == 0 and module == "tradeloop.commands"):
                found.update(alias.name for alias in node.names if alias.name in names)
            elif node.level == 1:
                found.add(module.split(".")[0])
            elif module.startswith("tradeloop.commands."):
                found.add(module.split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[2] for a in node.names if a.name.startswith("tradeloop.commands."))
    return found & names


def test_the_command_check_catches_synthetic_imports() -> None:
    names = {"up", "status", "train"}
    source = "from tradeloop.commands.status import x\nfrom . import train\nfrom .up import y\nimport tradeloop.ops.up\n"
    assert sibling_commands(source, names) == {"status", "train", "up"}
    assert (
        sibling_commands("from tradeloop.ops import status\nfrom tradeloop.ui import panel\n", names) == set()
    )


def test_command_modules_do_not_import_each_other() -> None:
    """Shared behaviour of the CLI lives in ``tradeloop/ops`` and ``tradeloop/ui``, not in a sibling command."""
    modules = sorted(p for p in (ROOT / "tradeloop" / "commands").glob("*.py") if p.stem != "__init__")
    names = {path.stem for path in modules}
    assert names, "no command modules found"
    found = {
        path.name: sorted(bad)
        for path in modules
        if (bad := sibling_commands(path.read_text(encoding="utf-8"), names) - {path.stem})
    }
    assert found == {}, f"command modules import each other (the registry in __init__.py may): {found}"
