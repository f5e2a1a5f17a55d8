"""The shape of the package: imports go one way, modules stay small.

The layers themselves are checked by import-linter (``make lint``, contract in
``pyproject.toml``); these tests catch what it does not see: imports hidden inside
functions, cycles through them, and modules growing past a readable size.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

import flask_imagekit

PACKAGE = Path(flask_imagekit.__file__).parent
MAX_LINES = 450
MAX_FUNCTION_IMPORTS = 3


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_modules(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The package modules an import statement of ``module`` loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in MODULES]
    if node.level:
        is_package = MODULES[module].name == "__init__.py"
        base = module.split(".")[: None if is_package else -1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, *([node.module] if node.module else [])])
    else:
        target = node.module or ""
    if not target.startswith(PACKAGE.name):
        return []
    found = []
    for alias in node.names:
        child = f"{target}.{alias.name}"
        found.append(child if child in MODULES else target)
    return found


def package_imports() -> list[tuple[str, str, bool, int]]:
    """Every (importer, imported, inside a function, line) of the package.

    Imports under ``if TYPE_CHECKING:`` are left out: they never run.
    """
    edges: list[tuple[str, str, bool, int]] = []
    for module, path in MODULES.items():

        def visit(node: ast.AST, in_function: bool, module: str = module) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    for statement in child.orelse:
                        visit(statement, in_function)
                    continue
                inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                if isinstance(child, ast.Import | ast.ImportFrom):
                    for target in imported_modules(module, child):
                        edges.append((module, target, in_function, child.lineno))
                visit(child, inside)

        visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return edges


def cycles(edges: list[tuple[str, str, bool, int]]) -> list[list[str]]:
    """Strongly connected groups of modules (Tarjan), ignoring a package's own children."""
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for source, target, _, _ in edges:
        # A package importing its submodules to re-export them is not a cycle.
        if source != target and not target.startswith(source + "."):
            graph[source].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(set(graph)):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycle_even_through_imports_inside_functions() -> None:
    assert cycles(package_imports()) == []


def test_imports_inside_functions_are_rare() -> None:
    inside = [
        (source, target, line) for source, target, nested, line in package_imports() if nested
    ]
    assert len(inside) <= MAX_FUNCTION_IMPORTS, inside


def test_no_module_is_longer_than_a_reader_can_hold() -> None:
    long = {
        name: count
        for name, path in MODULES.items()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_cycle_finder_finds_cycles() -> None:
    edges = [("a", "b", False, 1), ("b", "c", True, 1), ("c", "a", False, 1), ("c", "d", False, 1)]
    assert cycles(edges) == [["a", "b", "c"]]
