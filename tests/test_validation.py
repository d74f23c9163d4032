"""The validation layer itself: YAML line numbers, one problem per mistake,
and the error's message and exit code."""

from __future__ import annotations

import pickle
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from swarmd.errors import EXIT_BAD_INPUT
from swarmd.validation import InputError, Problem, parse_yaml, validate_yaml

TEXT = """\
name: x
servers:
  - host: a
    port: 80
  -
    host: b
    port: 99999
mode: fast
"""


class Server(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str
    port: int = Field(ge=1, le=65535)
    weight: float = 1.0


class Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    servers: list[Server]
    mode: Literal["slow", "safe"]
    owner: str


def test_line_map_has_every_key_and_list_item():
    doc = parse_yaml(TEXT, "d.yaml")
    assert doc.data["servers"][1] == {"host": "b", "port": 99999}
    assert doc.lines[()] == 1 and doc.lines[("servers",)] == 2
    assert doc.lines[("servers", 0)] == 3 and doc.lines[("servers", 0, "port")] == 4
    assert doc.lines[("servers", 1)] == 6 and doc.lines[("servers", 1, "port")] == 7
    assert doc.lines[("mode",)] == 8


def test_every_problem_with_line_key_expected_found():
    with pytest.raises(InputError) as info:
        validate_yaml(Doc, parse_yaml(TEXT, "d.yaml"))
    assert info.value.problems == [
        Problem("d.yaml", 1, "owner", "this key to be set", "nothing"),
        Problem("d.yaml", 7, "servers[1].port", "a number >= 1 and <= 65535", "99999"),
        Problem("d.yaml", 8, "mode", "one of 'slow' or 'safe'", "'fast'"),
    ]
    assert str(info.value).splitlines()[1] == "d.yaml:7: servers[1].port: expected a number >= 1 and <= 65535, found 99999"
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_unknown_key_lists_the_known_ones_and_the_closest():
    text = TEXT.replace("    port: 80", "    prot: 80").replace("99999", "9") + "owner: me\nmode: safe\n"
    with pytest.raises(InputError) as info:
        validate_yaml(Doc, parse_yaml(text.replace("mode: fast\n", ""), "d.yaml"))
    (p, q) = info.value.problems
    assert (p.line, p.key, p.found) == (3, "servers[0].port", "nothing")
    assert (q.line, q.key) == (4, "servers[0].prot")
    assert q.expected == "a known key (host, port, weight)" and q.found == "unknown key 'prot' (did you mean 'port'?)"


def test_yaml_syntax_error_names_its_line():
    with pytest.raises(InputError) as info:
        parse_yaml("a: 1\nb:\n\t- x\n", "s.yaml")     # a tab cannot indent
    assert (info.value.line, info.value.expected) == (3, "valid YAML") and str(info.value).startswith("s.yaml:3: ")


def test_one_problem_error_reads_like_the_others():
    e = InputError("p.yaml", "rules", "a list", "'x' (str)", 4)
    assert str(e) == "p.yaml:4: rules: expected a list, found 'x' (str)" and e.key_path == "rules"
    assert str(InputError("p.yaml", "", "a readable YAML file", "No such file")) == (
        "p.yaml: expected a readable YAML file, found No such file")


def test_error_survives_pickling_with_every_problem():
    from swarmd.governor.policy import PolicyError
    e = PolicyError([Problem("p.yaml", 2, "a", "x", "y"), Problem("p.yaml", 5, "b", "x", "z")])
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is PolicyError and back.problems == e.problems and str(back) == str(e)
