"""``swarmctl policy check`` (single and --file), ``audit``: exit codes, output, help text."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from swarmd.governor import AuditLog, Decision
from swarmd.cli import main
from swarmd.cli.governor import register

from .conftest import REPO

POLICY = str(REPO / "src" / "swarmd" / "policy.yaml")


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_register_into_foreign_parser(capsys, workspace):
    parser = argparse.ArgumentParser(prog="swarmctl")
    register(parser.add_subparsers(dest="cmd"))
    ns = parser.parse_args(["policy", "check", "--policy", POLICY, "--workspace", workspace, "--tool", "shell",
                            "--arg", "git push"])
    assert ns.func(ns) == 0
    fields = [line.split() for line in capsys.readouterr().out.splitlines()[:2]]
    assert fields == [["decision", "ask"], ["rule", "git-network"]]


def test_check_single_json(capsys, workspace):
    code, out, _ = run(capsys, "policy", "check", "--policy", POLICY, "--workspace", workspace,
                       "--tool", "read_file", "--arg", "/etc/shadow", "--json")
    assert code == 0
    obj = json.loads(out)
    assert obj["decision"] == "deny" and obj["rule"] == "files.secret"


def test_check_file(capsys, tmp_path, workspace):
    f = tmp_path / "actions.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in [
        {"id": "a1", "tool": "shell", "args": {"command": "ls -la"}},
        {"id": "a2", "tool": "write_file", "args": {"path": "../x", "content": ""}},
        {"id": "a3", "tool": "http_get", "args": {"url": "http://169.254.169.254/"}},
    ]) + "\n")
    code, out, _ = run(capsys, "policy", "check", "--policy", POLICY, "--workspace", workspace, "--file", str(f))
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["id"], r["decision"]) for r in rows] == [("a1", "allow"), ("a2", "deny"), ("a3", "deny")]
    assert set(rows[0]) == {"id", "decision", "rule", "reason"}


@pytest.mark.parametrize("line,msg", [
    ("{not json", "not JSON"), ('{"id": 1, "tool": "shell"}', "missing key(s) args"),
    ('{"id": 1, "tool": "exec", "args": {}}', "tool must be one of"),
    ('{"id": 1, "tool": "shell", "args": {"path": "x"}}', "exactly: command"),
])
def test_check_file_bad_line_names_line_number(capsys, tmp_path, line, msg):
    f = tmp_path / "actions.jsonl"
    f.write_text('{"id": "ok", "tool": "shell", "args": {"command": "ls"}}\n\n' + line + "\n")
    code, out, err = run(capsys, "policy", "check", "--policy", POLICY, "--file", str(f))
    assert code == 2 and out == ""
    assert f"actions.jsonl:3:" in err and msg in err


def test_check_file_reports_every_bad_line_and_judges_none(capsys, tmp_path):
    f = tmp_path / "actions.jsonl"
    f.write_text('[1]\n{"id": "ok", "tool": "shell", "args": {"command": "ls"}}\n{"id": 2, "tool": "shell"}\n')
    code, out, err = run(capsys, "policy", "check", "--policy", POLICY, "--file", str(f))
    assert code == 2 and out == ""
    assert "actions.jsonl:1: expected a JSON object, found list" in err
    assert "actions.jsonl:3: missing key(s) args" in err


def test_check_empty_file_judges_nothing(capsys, tmp_path):
    f = tmp_path / "actions.jsonl"
    f.write_text("\n")
    assert run(capsys, "policy", "check", "--policy", POLICY, "--file", str(f)) == (0, "", "")


def test_malformed_policy_exit_2(capsys, tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("version: 1\nrules:\n  - {id: a, tool: shell, decision: permit, reason: r}\n")
    code, out, err = run(capsys, "policy", "check", "--policy", str(bad), "--tool", "shell", "--arg", "ls")
    assert code == 2 and "p.yaml:3: rules[0].decision" in err


def test_missing_args_exit_2(capsys):
    assert run(capsys, "policy", "check", "--policy", POLICY)[0] == 2


def test_audit_command(capsys, tmp_path):
    db = tmp_path / "memory.db"
    log = AuditLog(db)
    log.record("o1", "shell", {"command": "sudo ls"}, Decision("deny", "shell.privilege-escalation", "no"))
    log.record("o2", "shell", {"command": "ls"}, Decision("allow", "shell-readonly-tools", "ok"))
    log.close()
    code, out, _ = run(capsys, "audit", "--db", str(db), "--decision", "deny", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [(r["objective_id"], r["rule"]) for r in rows] == [("o1", "shell.privilege-escalation")]
    code, out, _ = run(capsys, "audit", "--db", str(db), "--objective", "o2")
    assert code == 0 and "allow" in out and "shell-readonly-tools" in out
    assert "o1" not in out and "deny" not in out
    assert run(capsys, "audit", "--db", str(tmp_path / "none.db"))[0] == 2


def test_help_teaches_with_examples():
    r = subprocess.run([sys.executable, "-m", "swarmd.cli", "policy", "check", "--help"],
                       capture_output=True, text=True, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and "examples:" in r.stdout and "--file actions.jsonl" in r.stdout
    assert "exit codes" in r.stdout
