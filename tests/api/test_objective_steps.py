"""The one-objective page and GET /api/v1/objectives/{id} show an agent's steps, each with the
governor's decision (allow/deny/ask) and the policy rule that decided it, and the tiers its
requests skipped (issue 23, sections 2 and 4).

A real ``swarmd --workers 1`` whose agent runs on the loopback Anthropic fake (the daemon of
tests/api/test_cancel_races.py): one allowed write, then a denied shell line.  The expected rows
come from ``swarmctl audit`` (the audit log read by another path), not from the page's code.
"""

from __future__ import annotations

import json

import yaml

from swarmd import cli
from tests.api.html import table_rows
from tests.api.test_cancel_races import swarm  # noqa: F401 - the module's daemon (a fixture)
from tests.daemon.helpers import wait_final
from tests.daemon.test_agent_governor import DENIED, done, step


def test_objective_page_lists_steps_with_decision_and_rule(swarm, capsys):  # noqa: F811
    m = "case-steps"
    swarm.model.script(m, step("write_file", path="a.txt", content="first\n"), step("shell", command=DENIED),
                       done("never asked: the denial ends it"))
    swarm.submit("ag-steps", f"{m}: write a file, then fetch the metadata")
    assert wait_final(swarm.data / "memory.db", ["ag-steps"])["ag-steps"]["state"] == "failed"
    capsys.readouterr()
    assert cli.main(["--config", str(swarm.config), "--data-dir", str(swarm.data), "audit", "--objective",
                     "ag-steps", "--json"]) == 0
    audit = [json.loads(line) for line in reversed(capsys.readouterr().out.splitlines())]   # oldest first
    assert [(r["tool"], r["decision"]) for r in audit] == [("write_file", "allow"), ("shell", "deny")]
    assert audit[1]["rule"] == "url.non-public-address"

    api = swarm.http.get("/api/v1/objectives/ag-steps").json()
    assert [(s["tool"], s["args"], s["decision"], s["rule"], s["reason"]) for s in api["steps"]] == \
        [(r["tool"], r["args"], r["decision"], r["rule"], r["reason"]) for r in audit]
    page = swarm.http.get("/objectives/ag-steps")
    assert page.status_code == 200
    rows = table_rows(page.text, "steps")
    assert [(r["#"], r["tool"], r["decision"], r["rule"], r["reason"]) for r in rows] == \
        [(str(n), r["tool"], r["decision"], r["rule"], r["reason"]) for n, r in enumerate(audit, 1)]
    assert json.loads(rows[1]["args"]) == {"command": DENIED}


def test_an_agent_objective_keeps_the_tiers_its_requests_skipped(swarm):  # noqa: F811
    """Under strategy api_only every request of the agent (plan, steps) passes over the models that
    are not APIs (here LOCAL_QUALITY's Ollama; LOCAL_FAST is the Anthropic fake); the objective
    stores each skipped model once, with its reason, and the page lists them."""
    config = yaml.safe_load(swarm.config.read_text())
    local = {(tier, m["model"]) for tier, models in config["tiers"].items() for m in models
             if m["provider"] != "anthropic"}
    assert local                                          # something for api_only to exclude
    m = "case-api-only"
    swarm.model.script(m, step("write_file", path="b.txt", content="api\n"), done("wrote b.txt"))
    swarm.submit("ag-api", f"{m}: write b.txt", strategy="api_only")
    record = wait_final(swarm.data / "memory.db", ["ag-api"])["ag-api"]
    assert record["state"] == "done", record
    assert len(record["attempts"]) >= 2                   # the plan and the steps: several requests
    assert sorted((s["tier"], s["model"]) for s in record["skipped"]) == sorted(local)     # each once
    assert {s["reason_kind"] for s in record["skipped"]} == {"strategy"}
    shown = table_rows(swarm.http.get("/objectives/ag-api").text, "skipped")
    assert sorted((r["tier"], r["model"], r["why"]) for r in shown) == sorted((t, mo, "strategy") for t, mo in local)
