"""House rule 7: a module docstring states the module's contract in <= 15 lines
(rationale goes to docs/design.md)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "swarmd"
MAX_LINES = 15


def long_module_docstrings(root: Path) -> dict[str, int]:
    """``{path relative to root: lines}`` of the module docstrings over :data:`MAX_LINES` lines."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text()), clean=False)
        if doc and len(doc.splitlines()) > MAX_LINES:
            out[str(path.relative_to(root))] = len(doc.splitlines())
    return out


def test_module_docstrings_fit_in_15_lines(tmp_path):
    (tmp_path / "long.py").write_text('"""' + "line\n" * 16 + '"""\n')
    (tmp_path / "short.py").write_text('"""' + "line\n" * 15 + '"""\n')
    assert long_module_docstrings(tmp_path) == {"long.py": 16}
    assert long_module_docstrings(SRC) == {}
