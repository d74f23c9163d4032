"""The import graph of ``src/swarmd``, for tests/test_imports.py and tests/test_layers.py.

One node per module of ``src/swarmd``; an edge for every ``import``/``from
... import`` of another swarmd module anywhere in the file (module level and
inside functions alike).  ``from pkg import name`` counts as importing
``pkg.name`` when that is a module, else ``pkg``.  Imports under ``if
TYPE_CHECKING:`` are left out unless ``type_checking=True``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "swarmd"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules() -> dict[str, Path]:
    """Every module of the swarmd source tree: dotted name (a package by its
    own name, not ``.__init__``) -> its file, sorted by path."""
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def imports_of(tree: ast.Module, type_checking: bool = False):
    """(import node, at module level?) for every import that runs; those under
    ``if TYPE_CHECKING:`` too (as module level) when ``type_checking``."""
    def walk(node: ast.AST, top: bool):
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child) and not type_checking:
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, top
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from walk(child, inner)
    yield from walk(tree, True)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    """Absolute names of what ``node`` imports (swarmd modules resolved as far as they exist)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix for a in node.names]


def graph(type_checking: bool = False):
    """(edges: module -> set of swarmd modules it imports, lazy: [(module, line, target, source line)]);
    ``type_checking``: count the imports under ``if TYPE_CHECKING:`` too."""
    modules = source_modules()
    known = set(modules)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    lazy = []
    for module, path in modules.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node, top in imports_of(ast.parse(source, str(path)), type_checking):
            for target in _targets(node, module, path.name == "__init__.py", known):
                if not top:
                    lazy.append((module, node.lineno, target, lines[node.lineno - 1]))
                resolved = target
                while resolved and resolved not in known:      # swarmd.x.Name -> swarmd.x
                    resolved = resolved.rpartition(".")[0]
                if resolved and resolved != module and resolved.startswith(PACKAGE):
                    edges[module].add(resolved)
    return edges, lazy


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found
