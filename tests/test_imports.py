"""No import circles among the project's modules, read from the source with ``ast`` (nothing is imported).

Every ``import`` statement counts wherever it stands: at the top of a module, inside a function (a lazy
import still closes a circle once it runs), ``from . import x`` and ``from .. import x`` alike. An import
under ``if TYPE_CHECKING:`` does not count: it never runs, it only names types for the checker. Importing a
submodule also runs its package's ``__init__``, but Python settles that order itself, so only the module an
import statement names is an edge: ``from generation.model import engine`` is an edge to
``generation.model.engine``, ``from generation import ServerConfig`` an edge to ``generation``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("generation", "serving", "benchmarks")  # walked whole; beside them, every top-level module (app.py...)


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the project by dotted name: the packages' files and the top-level ``*.py`` files."""
    files = [path for package in PACKAGES for path in sorted((root / package).rglob("*.py"))]
    files += sorted(root.glob("*.py"))
    modules = {}
    for path in files:
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.AST):
    """Every import statement in ``tree``, at any depth, except those in an ``if TYPE_CHECKING:`` body."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # the ``else`` of ``if TYPE_CHECKING`` runs
                yield from _statements(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _statements(node)


def _project_module(name: str, modules: dict[str, Path]) -> str | None:
    """The longest dotted prefix of ``name`` that is a project module (``a.b.func`` -> ``a.b``), or None."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def imports_of(name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules that module ``name`` imports."""
    path = modules[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _statements(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".") if package else []
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from pkg import x``: the submodule pkg.x when there is one, else pkg itself
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        found |= {target for target in map(lambda t: _project_module(t, modules), targets) if target}
    found.discard(name)
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per group of modules that import each other (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_circle_in(group, graph) for group in groups]


def _circle_in(group: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group: a circle to name."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no circle through {start}")  # a strongly connected group always has one


def test_no_module_of_the_project_is_part_of_an_import_circle():
    modules = project_modules()
    assert {"app", "generation.settings", "generation.audio.export", "serving.deployment"} <= set(modules)
    graph = {name: imports_of(name, modules) for name in modules}
    assert "generation.settings" in graph["generation.recipe"], "the walk must see the imports it is testing"
    cycles = find_cycles(graph)
    assert not cycles, "import circles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_the_walk_sees_relative_function_level_and_type_checking_imports(tmp_path):
    package = tmp_path / "generation"
    (package / "audio").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "audio" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from .audio import b\n")
    (package / "audio" / "b.py").write_text("from .. import c\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\nelse:\n    import os\n"
    )
    modules = project_modules(tmp_path)
    graph = {name: imports_of(name, modules) for name in modules}
    assert graph["generation.a"] == {"generation.audio.b"} and graph["generation.audio.b"] == {"generation.c"}
    assert find_cycles(graph) == [], "an import under TYPE_CHECKING closes no circle"
    (package / "c.py").write_text("from generation.a import f\n")
    graph = {name: imports_of(name, project_modules(tmp_path)) for name in modules}
    assert find_cycles(graph) == [["generation.a", "generation.audio.b", "generation.c", "generation.a"]]
