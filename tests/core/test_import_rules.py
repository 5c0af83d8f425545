"""The package's import rules, read from the source: one direction, public names only.

core (prefect_venice/*.py) <- blocks <- tasks <- flows <- deployments; the emulator stands
apart. Nothing imports the CLI; nothing imports an underscore name or module of another
package; the core and the emulator never import Prefect.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = {
    "prefect_venice": REPO / "prefect_venice",
    "prefect_venice.emulator": REPO / "prefect_venice" / "emulator",
    "prefect_venice.blocks": REPO / "blocks",
    "prefect_venice.tasks": REPO / "tasks",
    "prefect_venice.flows": REPO / "flows",
    "deployments": REPO / "deployments",
}
LAYER = {
    "prefect_venice": 0,
    "prefect_venice.blocks": 1,
    "prefect_venice.tasks": 2,
    "prefect_venice.flows": 3,
    "deployments": 4,
}


@dataclass(frozen=True)
class Import:
    source: str  # file, relative to the repository
    package: str  # the importing module's package
    target: str  # absolute module imported from
    names: tuple[str, ...]  # names taken from it (empty for `import x`)
    nested: bool = False  # inside a function: loaded only when that runs


def _package_of(target: str) -> str:
    """Return the package a module belongs to (the longest known package prefix)."""
    best = ""
    for package in PACKAGE_DIRS:
        if (target == package or target.startswith(package + ".")) and len(package) > len(best):
            best = package
    return best or target.split(".")[0]


def _imports() -> list[Import]:
    found: list[Import] = []
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted(folder.glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            nested = {
                id(inner)
                for outer in ast.walk(tree)
                if isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef))
                for inner in ast.walk(outer)
            }
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        found.append(
                            Import(
                                str(path.relative_to(REPO)),
                                package,
                                alias.name,
                                (),
                                id(node) in nested,
                            )
                        )
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        parts = package.split(".")
                        parts = parts[: len(parts) - (node.level - 1)]
                        base = ".".join([*parts, base] if base else parts)
                    names = tuple(alias.name for alias in node.names)
                    found.append(
                        Import(
                            str(path.relative_to(REPO)), package, base, names, id(node) in nested
                        )
                    )
    return found


IMPORTS = _imports()


def _ours(imp: Import) -> bool:
    return imp.target.split(".")[0] == "prefect_venice"


def test_the_rules_see_the_source() -> None:
    sources = {imp.source for imp in IMPORTS}
    assert "flows/video.py" in sources
    assert "tasks/video.py" in sources
    assert any(imp.target == "prefect_venice.generation" for imp in IMPORTS)


def test_nothing_imports_the_cli() -> None:
    offenders = [
        imp.source
        for imp in IMPORTS
        if imp.target == "prefect_venice.cli"
        or (imp.target == "prefect_venice" and "cli" in imp.names)
    ]
    assert offenders == []


def test_no_underscore_names_cross_packages() -> None:
    offenders: list[str] = []
    for imp in IMPORTS:
        if not _ours(imp) or _package_of(imp.target) == imp.package:
            continue
        private_module = any(part.startswith("_") for part in imp.target.split("."))
        private_names = [name for name in imp.names if name.startswith("_")]
        if private_module or private_names:
            offenders.append(f"{imp.source}: {imp.target} {private_names}")
    assert offenders == []


@pytest.mark.parametrize("package", ["prefect_venice", "prefect_venice.emulator"])
def test_the_core_and_the_emulator_never_import_prefect(package: str) -> None:
    offenders = [
        f"{imp.source}: {imp.target}"
        for imp in IMPORTS
        if imp.package == package
        and imp.target.split(".")[0] == "prefect"
        # The package's __init__ names the block for type checkers only.
        and imp.source != "prefect_venice/__init__.py"
    ]
    assert offenders == []


def test_the_emulator_imports_nothing_of_the_client() -> None:
    offenders = [
        f"{imp.source}: {imp.target}"
        for imp in IMPORTS
        if imp.package == "prefect_venice.emulator"
        and _ours(imp)
        and _package_of(imp.target) != "prefect_venice.emulator"
    ]
    assert offenders == []


def test_dependencies_point_one_way() -> None:
    offenders: list[str] = []
    for imp in IMPORTS:
        if imp.package not in LAYER or not _ours(imp):
            continue
        target = _package_of(imp.target)
        if imp.source == "prefect_venice/cli.py" and imp.nested:
            continue  # the CLI's Prefect-only commands load the Prefect layer when they run
        if target in LAYER and LAYER[target] > LAYER[imp.package]:
            offenders.append(f"{imp.source} ({imp.package}) imports {imp.target}")
    # The core's __init__ re-exports the block lazily (for `from prefect_venice import
    # VeniceCredentials`); that is the one sanctioned upward reference.
    assert [o for o in offenders if not o.startswith("prefect_venice/__init__.py")] == []
