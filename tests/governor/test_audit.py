"""Audit rows: written for every decision, secrets redacted, queryable; loguru line emitted."""

from __future__ import annotations

import sqlite3

from loguru import logger

from swarmd.governor import AuditLog, Decision, Governor, query_audit, redact
from swarmd.governor.execute import run_tool

from .conftest import table_resolver

SECRETS = ["sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv", "hunter2pass", "ghp_abcdefghijklmnopqrstuvwx12",
           "AKIAABCDEFGHIJKLMNOP", "tok_live_123456", "s3cretpw", "eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.sflKxwRJSMeKKF2QT4f"]


def test_redact_patterns():
    text = ("curl -H 'Authorization: Bearer tok_live_123456' -H 'x-api-key: sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv' "
            "https://u:s3cretpw@example.com/?access_token=ghp_abcdefghijklmnopqrstuvwx12&q=1 "
            "password=hunter2pass AKIAABCDEFGHIJKLMNOP eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.sflKxwRJSMeKKF2QT4f")
    out = redact(text)
    for s in SECRETS:
        assert s not in out, s
    assert "q=1" in out and "example.com" in out and "curl" in out
    assert redact({"a": ["password: x1", 3]}) == {"a": ["password: [REDACTED]", 3]}


def test_decisions_recorded_with_redaction(tmp_path, policy, workspace):
    db = tmp_path / "memory.db"
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO")
    try:
        gov = Governor(policy, resolver=table_resolver, audit=AuditLog(db))
        gov.decide("shell", {"command": "curl -H 'Authorization: Bearer tok_live_123456' https://example.com"},
                   workspace, objective_id="obj-1")
        gov.decide("http_get", {"url": "https://example.com/?token=tok_live_123456"}, workspace, objective_id="obj-1")
        gov.decide("write_file", {"path": ".env", "content": "ANTHROPIC_API_KEY=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv"},
                   workspace, objective_id="obj-2")
        gov.decide("shell", {"command": "ls"}, workspace, objective_id="obj-2")
    finally:
        logger.remove(sink)
    raw = sqlite3.connect(db).execute("SELECT * FROM audit_log").fetchall()
    assert len(raw) == 4
    dump = repr(raw) + "".join(lines)
    for s in SECRETS:
        assert s not in dump, s
    assert len(lines) == 4 and "governor deny" in "".join(lines) and "obj-2" in "".join(lines)
    rows = query_audit(db, objective_id="obj-2")
    assert [r.decision for r in rows] == ["allow", "deny"]  # newest first
    assert rows[1].rule == "files.secret" and rows[1].tool == "write_file"
    assert "[REDACTED]" in rows[1].args["content"] and rows[1].args["path"] == ".env"
    allowed = query_audit(db, decision="allow")
    assert {(r.objective_id, r.tool) for r in allowed} == {("obj-1", "http_get"), ("obj-2", "shell")}
    assert query_audit(db, objective_id="obj-1", decision="deny") == []
    assert all(r.ts.endswith("+00:00") for r in rows)


def test_run_tool_audits_once(tmp_path, policy, workspace):
    log = AuditLog(tmp_path / "a.db")
    gov = Governor(policy, resolver=table_resolver, audit=log)
    run_tool(gov, "shell", {"command": "ls"}, workspace, objective_id="o")
    run_tool(gov, "shell", {"command": "sudo ls"}, workspace, objective_id="o")
    assert [(r.decision, r.rule) for r in log.query("o")] == [("deny", "shell.privilege-escalation"),
                                                              ("allow", "shell-readonly-tools")]


def test_audit_table_coexists_with_other_tables(tmp_path):
    db = tmp_path / "memory.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE memories (id INTEGER PRIMARY KEY, text TEXT)")
    con.commit()
    AuditLog(db).record(None, "shell", {"command": "ls"}, Decision("allow", "r", "why"))
    AuditLog(db).record(None, "shell", {"command": "ls"}, Decision("ask", "r", "why"))
    assert len(query_audit(db)) == 2
    assert con.execute("SELECT count(*) FROM memories").fetchone() == (0,)
