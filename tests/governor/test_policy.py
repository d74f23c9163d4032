"""Policy loading: the shipped file is valid; each kind of mistake is reported precisely."""

from __future__ import annotations

import textwrap

import pytest

from swarmd.governor import PolicyError, load_policy, parse_policy

from .conftest import REPO

GOOD_RULE = """\
  - id: ok
    tool: shell
    program: [ls]
    decision: allow
    reason: fine
"""


def policy_text(rules: str = GOOD_RULE, extra: str = "") -> str:
    return f"version: 1\n{extra}rules:\n{rules}"


def err(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as ei:
        parse_policy(text, "p.yaml")
    return ei.value


def test_shipped_policy_loads():
    p = load_policy(REPO / "src" / "swarmd" / "policy.yaml")
    ids = [r.id for r in p.rules]
    assert "git-read" in ids and "http-allowlisted" in ids
    assert p.urls.schemes == ["https"]


def test_minimal_policy_has_defaults():
    p = parse_policy(policy_text())
    assert p.execution.timeout_s == 30 and p.urls.ports == [443]


def test_yaml_syntax_error_has_line():
    e = err("version: 1\nrules:\n  - id: x\n    tool: [shell\n")
    assert e.expected == "valid YAML" and e.line is not None and e.line >= 4
    assert str(e).startswith("p.yaml:")


def test_document_not_a_mapping():
    e = err("- just\n- a list\n")
    assert e.expected == "a mapping with keys version, files, urls, shell, execution, sandbox, admission, rules"
    assert e.found == "['just', 'a list'] (list)" and e.line == 1


def test_missing_version():
    e = err("rules: []\n")
    assert e.key_path == "version" and e.found == "nothing"


def test_wrong_version_value():
    e = err("version: 2\nrules: []\n")
    assert e.key_path == "version" and "1" in e.expected and e.found == "2" and e.line == 1


def test_unknown_top_level_key_typo():
    e = err("version: 1\nrulez: []\n")
    assert e.key_path == "rulez" and e.line == 2
    assert e.expected == "a known key (version, files, urls, shell, execution, sandbox, admission, rules)"
    assert e.found == "unknown key 'rulez' (did you mean 'rules'?)"


def test_bad_decision_value_names_index_and_line():
    rules = GOOD_RULE * 3 + "  - id: four\n    tool: shell\n    decision: permit\n    reason: r\n"
    rules = rules.replace("id: ok", "id: ok1", 1).replace("id: ok\n", "id: ok2\n", 1).replace("id: ok\n", "id: ok3\n", 1)
    e = err(policy_text(rules))
    assert e.key_path == "rules[3].decision"
    assert "'allow', 'deny' or 'ask'" in e.expected and e.found == "'permit'"
    assert e.line == 20
    assert "p.yaml:20: rules[3].decision: expected one of" in str(e)


def test_unknown_rule_key():
    e = err(policy_text(GOOD_RULE.replace("decision: allow", "decison: allow")))
    assert [(p.key, p.line, p.found) for p in e.problems] == [
        ("rules[0].decision", 3, "nothing"),
        ("rules[0].decison", 6, "unknown key 'decison' (did you mean 'decision'?)")]


def test_wrong_type():
    e = err(policy_text(extra="urls:\n  ports: [https]\n"))
    assert e.key_path == "urls.ports[0]" and e.expected == "an integer" and e.found == "'https' (str)"


def test_unknown_tool():
    e = err(policy_text(GOOD_RULE.replace("tool: shell", "tool: run_shell").replace("    program: [ls]\n", "")))
    assert e.key_path == "rules[0].tool[0]" and "'shell'" in e.expected


def test_matcher_on_wrong_tool():
    e = err(policy_text(GOOD_RULE.replace("tool: shell", "tool: read_file")))
    assert e.key_path == "rules[0].tool" and e.expected == "shell only when using program"
    assert e.found == "['read_file']" and e.line == 4


def test_duplicate_rule_ids():
    e = err(policy_text(GOOD_RULE + GOOD_RULE))
    assert (e.key_path, e.line) == ("rules[1].id", 8)
    assert e.expected == "unique rule ids" and e.found == "'ok', already the id of rules[0]"


def test_relative_outside_glob_rejected():
    e = err(policy_text(extra="files:\n  read_outside_workspace: [usr/share/**]\n"))
    assert e.key_path == "files.read_outside_workspace[0]" and "absolute" in e.expected


def test_bad_cidr():
    e = err(policy_text(extra="urls:\n  allow_networks: [127.0.0.0/33]\n"))
    assert e.key_path == "urls.allow_networks[0]" and "CIDR" in e.expected and e.found == "'127.0.0.0/33'"


def test_empty_reason_and_bad_id():
    e = err(policy_text(GOOD_RULE.replace("reason: fine", "reason: ''").replace("id: ok", "id: 'has space'")))
    assert {p.key for p in e.problems} == {"rules[0].id", "rules[0].reason"}


def test_missing_file(tmp_path):
    with pytest.raises(PolicyError) as ei:
        load_policy(tmp_path / "nope.yaml")
    assert "readable" in ei.value.expected and "nope.yaml" in ei.value.file


def test_limits_out_of_range():
    e = err(policy_text(extra="execution:\n  timeout_s: -1\n"))
    assert e.key_path == "execution.timeout_s" and e.expected == "a number > 0 and <= 3600" and e.found == "-1"


def test_multiline_message_lists_every_problem():
    e = err(textwrap.dedent("""\
        version: 1
        shell: {max_length: 0}
        rules:
          - {id: a, tool: shell, decision: nope, reason: r}
        """))
    assert len(e.problems) == 2 and len(str(e).splitlines()) == 2


def test_bad_glob_reported_with_key_path():
    e = err(policy_text(GOOD_RULE.replace("program: [ls]", "program: ['[z-a]']")))
    assert e.key_path == "rules[0].program[0]" and "valid glob" in e.expected


THREE_MISTAKES = """\
version: 1
urls:
  ports: [443, 70000]
rules:
  - id: a
    tool: shell
    decision: allow
    reason: r
  - id: a
    tool: http_get
    host: ['*.example.com']
    decision: deny
    reason: r
files:
  secrets: [relative/path]
"""


def test_three_mistakes_give_three_problems_with_their_lines():
    e = err(THREE_MISTAKES)
    assert [(p.line, p.key, p.expected) for p in e.problems] == [
        (3, "urls.ports[1]", "a number <= 65535"),
        (9, "rules[1].id", "unique rule ids"),
        (15, "files.secrets[0]", "an absolute path glob (starting with '/', '~' or '**/')"),
    ]
    assert str(e).splitlines()[0] == "p.yaml:3: urls.ports[1]: expected a number <= 65535, found 70000"


def test_duplicate_ids_are_checked_once_every_rule_is_valid():
    e = err(THREE_MISTAKES.replace("decision: deny", "decision: maybe"))
    assert [(p.line, p.key, p.found) for p in e.problems] == [
        (3, "urls.ports[1]", "70000"), (12, "rules[1].decision", "'maybe'"), (15, "files.secrets[0]", "'relative/path'")]


def test_policy_error_is_bad_input():
    from swarmd.errors import BadInput
    assert isinstance(err("version: 2\n"), BadInput)
