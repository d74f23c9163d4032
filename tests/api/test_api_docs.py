"""docs/api.md is what scripts/api_docs.py generates from the API's OpenAPI schema (not stale)."""

from __future__ import annotations

import importlib.util

from tests.daemon.helpers import ROOT


def _script():
    spec = importlib.util.spec_from_file_location("api_docs", ROOT / "scripts" / "api_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_api_md_is_current():
    script = _script()
    assert (ROOT / "docs" / "api.md").read_text() == script.generate(), \
        "docs/api.md is stale: run python scripts/api_docs.py"


def test_check_fails_on_a_stale_file(tmp_path, monkeypatch):
    script = _script()
    stale = tmp_path / "api.md"
    stale.write_text(script.generate().replace("## GET `/api/v1/status`", "## GET `/api/v1/old`"))
    monkeypatch.setattr(script, "DOC", stale)
    assert script.main(["--check"]) == 1
    assert script.main([]) == 0 and script.main(["--check"]) == 0
    assert "## GET `/api/v1/status`" in stale.read_text()
