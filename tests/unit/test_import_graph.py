"""The import rules read from the source: every import statement of engine/, sessions/
and nebtui/, the ones inside functions too (most imports here are lazy, and importing a
module runs none of them, so tests/unit/test_import_rules.py cannot see them).

Between packages: engine imports neither sessions nor nebtui, sessions does not import
nebtui, and neither imports the terminal UI stack. Inside engine, its rooms (engine.band,
engine.paths, engine.landscape, ...) may not import one another both ways, directly or
through others (engine's own lazy table counts as an import of every room it names).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("engine", "sessions", "nebtui")
UI = ("textual", "rich", "textual_serve", "plotext")
FORBIDDEN = {"engine": {"sessions", "nebtui", *UI}, "sessions": {"nebtui", *UI}}
# Rooms of engine that import each other both ways: none, and none may appear.
KNOWN_CYCLES: set[frozenset[str]] = set()


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) of every import statement in the file, wherever it stands; a
    relative import resolved against the file's own package."""
    module = module_name(path, root)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                found.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            else:
                found.append((node.lineno, node.module or ""))
    return found


def wrong_imports(root: Path) -> list[str]:
    """Every import that goes against the rules between packages, as 'file:line imports name'."""
    wrong = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, name in imported_names(path, root):
                if name.split(".")[0] in forbidden:
                    wrong.append(f"{path.relative_to(root)}:{line} imports {name}")
    return wrong


def room(module: str) -> str:
    """engine.landscape.graph -> engine.landscape; engine.events -> engine.events; engine -> engine."""
    return ".".join(module.split(".")[:2])


def room_cycles(root: Path, package: str) -> set[frozenset[str]]:
    """The pairs of rooms of ``package`` of which each imports the other, directly or not."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted((root / package).rglob("*.py")):
        here = room(module_name(path, root))
        for _line, name in imported_names(path, root):
            if name.split(".")[0] == package and room(name) != here:
                edges[here].add(room(name))

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(edges.get(node, ()))
        return False

    return {frozenset({a, b}) for a in edges for b in edges[a] if reaches(b, a)}


def test_no_package_imports_upwards_not_even_inside_a_function():
    assert wrong_imports(ROOT) == []


def test_engine_rooms_gain_no_new_cycle():
    cycles = room_cycles(ROOT, "engine")
    assert cycles <= KNOWN_CYCLES, sorted(map(sorted, cycles - KNOWN_CYCLES))


@pytest.mark.parametrize("where, statement", [
    ("engine/neb/late.py", "def later():\n    from sessions.disk.folder import SessionFolder\n    return SessionFolder\n"),
    ("engine/late.py", "def later():\n    import nebtui.cli\n"),
    ("sessions/late.py", "def later():\n    from nebtui.app import app\n"),
    ("sessions/deep/late.py", "def later():\n    from ...nebtui import cli\n"),
    ("engine/late.py", "def later():\n    import textual\n"),
])
def test_a_lazy_upward_import_is_caught(tmp_path, where, statement):
    for package in OURS:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    path = tmp_path / where
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "__init__.py").touch()
    path.write_text(statement)
    assert wrong_imports(tmp_path) == [f"{where}:2 imports {imported_names(path, tmp_path)[0][1]}"]


def test_a_new_cycle_between_rooms_is_caught(tmp_path):
    for folder, text in [("engine/energy", "from engine.alignment import x\n"),
                         ("engine/alignment", "def f():\n    from engine.energy.network import y\n")]:
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text(text)
    (tmp_path / "engine" / "__init__.py").write_text("")
    assert room_cycles(tmp_path, "engine") == {frozenset({"engine.energy", "engine.alignment"})}


def test_sessions_rooms_import_one_way():
    """sessions' rooms (disk, problem, processes, analysis, and the modules at its top:
    errors, events, view) import one another one way only: disk <- problem <- processes,
    and analysis and the view above them."""
    assert room_cycles(ROOT, "sessions") == set()


def test_a_lazy_import_back_between_rooms_is_caught(tmp_path):
    for where, statement in [
        ("sessions/disk/folder.py", "def config():\n    from sessions.problem.build import build\n"),
        ("sessions/problem/build.py", "from sessions.disk.folder import SessionFolder\n"),
    ]:
        path = tmp_path / where
        path.parent.mkdir(parents=True, exist_ok=True)
        for package in (tmp_path / "sessions", path.parent):
            (package / "__init__.py").touch()
        path.write_text(statement)
    assert room_cycles(tmp_path, "sessions") == {frozenset({"sessions.disk", "sessions.problem"})}
