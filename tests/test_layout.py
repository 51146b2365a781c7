"""Pins the layout's import rules, by reading the source (AST), not by running it.

* ``protocols/`` is sans-IO: it imports no trio (nor anything that does).
* ``runtime/`` is the local kernel: it imports neither ``remote/`` nor
  ``transports/``, not even for type checking.
* ``actors/`` and ``supervisors/`` sit below the runtime: they import no
  ``runtime/`` at module load (only inside functions or under TYPE_CHECKING).
* No subsystem reaches into another's private attributes: outside
  ``trouper.runtime``, nothing touches a runtime object's ``_underscored``
  attributes (the documented interface is ``Kernel``, ``Cell``, ``cell_of``...).
* ``import trouper`` loads no aioquic (transports are imported per scheme).
* Modules stay under about 400 lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "trouper"


def modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


def imported(path: Path, *, at_load_only: bool = False) -> set[str]:
    """Absolute names of what ``path`` imports (relative imports resolved).

    With ``at_load_only``, imports inside functions and under
    ``if TYPE_CHECKING:`` are left out: they do not run at module load.
    """
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(SRC.parent).parts[:-1])
    found: set[str] = set()

    def visit(node: ast.AST, skip: bool) -> None:
        for child in ast.iter_child_nodes(node):
            lazy = skip
            if at_load_only and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                lazy = True
            if (
                at_load_only
                and isinstance(child, ast.If)
                and "TYPE_CHECKING" in ast.unparse(child.test)
            ):
                lazy = True
            if not lazy:
                if isinstance(child, ast.Import):
                    found.update(alias.name for alias in child.names)
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        parts = package.split(".")
                        parts = parts[: len(parts) - child.level + 1]
                        base = ".".join([*parts, base] if base else parts)
                    found.add(base)
                    found.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child, lazy)

    visit(tree, False)
    return found


def _offenders(package: str, forbidden: tuple[str, ...], at_load_only: bool) -> list[str]:
    bad = []
    for path in modules(package):
        for name in imported(path, at_load_only=at_load_only):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(SRC)} imports {name}")
    return sorted(set(bad))


def test_protocols_import_no_trio() -> None:
    assert _offenders("protocols", ("trio", "trouper.runtime", "trouper.remote"), False) == []


def test_runtime_imports_neither_remote_nor_transports() -> None:
    forbidden = ("trouper.remote", "trouper.transports", "trouper.web")
    assert _offenders("runtime", forbidden, False) == []


@pytest.mark.parametrize("package", ["actors", "supervisors"])
def test_actors_and_supervisors_import_no_runtime_at_load(package: str) -> None:
    assert _offenders(package, ("trouper.runtime", "trouper.remote"), True) == []


def _private_reaches(path: Path) -> list[str]:
    """Attribute reads like ``x._cell`` / ``node._paths`` on another object."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            out.append(f"{path.relative_to(SRC)}:{node.lineno} .{node.attr}")
    return out


RUNTIME_PRIVATES = {
    # attributes of runtime objects (Cell, Node, Kernel, ActorRef...)
    "_cell", "_via", "_state", "_actor", "_mailbox", "_waiters", "_sysq", "_children",
    "_paths", "_names", "_remote", "_system_root", "_user", "_system", "_nursery",
    "_timers", "_register", "_unregister", "_system_spawn", "_gen", "_info", "_bg",
    "_scope", "_watchers", "_watching", "_enqueue", "_terminated_event",
}  # fmt: skip


@pytest.mark.parametrize(
    "package",
    [
        "web",
        "remote",
        "actors",
        "supervisors",
        "transports",
        "services",
        "observability",
        "pools",
        "persistence",
    ],
)
def test_no_subsystem_reads_the_runtimes_private_attributes(package: str) -> None:
    bad = [
        reach
        for path in modules(package)
        for reach in _private_reaches(path)
        if reach.rsplit(".", 1)[1] in RUNTIME_PRIVATES
    ]
    # Two documented exceptions: the ActorRef's wire-form cache, read by the
    # remote layer's own codec glue (remote/_wire.py, wire_ref).
    allowed = {"remote/_wire.py"}
    assert [b for b in bad if b.split(":")[0] not in allowed] == []


def test_import_trouper_loads_no_aioquic() -> None:
    code = "import sys, trouper, trouper.web; print('aioquic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_modules_stay_small() -> None:
    big = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 420
    }
    assert big == {}
