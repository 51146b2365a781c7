"""The package's contract: its public names, and that it stays sans-IO."""

from __future__ import annotations

import ast
from pathlib import Path

import trouper.protocols as protocols

PACKAGE_DIR = Path(protocols.__file__).parent

# Modules that would mean I/O, clocks, ambient randomness or unsafe decoding.
FORBIDDEN = {
    "trio",
    "anyio",
    "asyncio",
    "socket",
    "ssl",
    "selectors",
    "time",
    "datetime",
    "os",
    "random",
    "secrets",
    "threading",
    "pickle",
    "marshal",
    "shelve",
}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_modules_are_sans_io() -> None:
    modules = sorted(PACKAGE_DIR.glob("*.py"))
    assert len(modules) >= 8
    for module in modules:
        bad = imported_roots(module) & FORBIDDEN
        assert not bad, f"{module.name} imports {sorted(bad)}"
        assert len(module.read_text().splitlines()) < 500, module.name


def test_public_names() -> None:
    assert sorted(protocols.__all__) == sorted(set(protocols.__all__))
    for name in protocols.__all__:
        assert hasattr(protocols, name), name
    public = {name for name in vars(protocols) if not name.startswith("_")}
    assert public == set(protocols.__all__)
