"""The one JSONL reader (every bad line named by its line number, all of them
reported, nothing returned from a bad file) and the one mapping from errors to
exit codes (0 ok, 1 unresolved, 2 bad input, 3 unreachable)."""

from __future__ import annotations

import argparse
import io
import sys

import pytest

from swarmd.cli.common import run
from swarmd.errors import BadInput, SwarmdError, Unreachable, exit_code_for
from swarmd.jsonl import MAX_SHOWN, JsonlError, read_jsonl, require_strings


def write(tmp_path, data: bytes):
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    return path


def test_objects_in_file_order_blank_lines_skipped(tmp_path):
    path = write(tmp_path, b'{"a": 1}\n\n   \n{"a": 2}\n')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


def test_every_bad_line_is_reported_with_its_line_number(tmp_path):
    path = write(tmp_path, b'{"a": 1}\n\n{not json\n"text"\n\xff\xfe\n{"a": 2}\n')
    with pytest.raises(JsonlError) as info:
        read_jsonl(path)
    assert [p.split(": ", 1)[0] for p in info.value.problems] == [f"{path}:3", f"{path}:4", f"{path}:5"]
    assert "not JSON" in info.value.problems[0]
    assert "expected a JSON object, found str" in info.value.problems[1]
    assert info.value.problems[2].endswith("not UTF-8")


def test_parse_problems_are_named_by_line_too(tmp_path):
    path = write(tmp_path, b'{"id": "a", "text": "x"}\n{"id": "b"}\n{"id": "", "text": "y"}\n')
    with pytest.raises(JsonlError) as info:
        read_jsonl(path, require_strings("id", "text"))
    assert info.value.problems == [f"{path}:2: missing or empty string field(s): text",
                                   f"{path}:3: missing or empty string field(s): id"]

    def parse(obj):
        if obj["id"] == "a":
            raise BadInput("a is taken")
        return obj["id"]
    with pytest.raises(JsonlError, match=r"in.jsonl:1: a is taken"):
        read_jsonl(write(tmp_path, b'{"id": "a"}\n{"id": "b"}\n'), parse)


def test_long_lists_are_cut_with_a_count(tmp_path):
    path = write(tmp_path, b"x\n" * (MAX_SHOWN + 5))
    with pytest.raises(JsonlError) as info:
        read_jsonl(path)
    assert len(info.value.problems) == MAX_SHOWN + 5
    lines = str(info.value).splitlines()
    assert len(lines) == MAX_SHOWN + 1 and lines[-1] == "... and 5 more"


def test_empty_or_unreadable_file(tmp_path):
    empty = write(tmp_path, b"\n\n")
    with pytest.raises(JsonlError, match="no items"):
        read_jsonl(empty)
    assert read_jsonl(empty, allow_empty=True) == []
    with pytest.raises(JsonlError, match="cannot read"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_dash_reads_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"a": 1}\n')))
    assert read_jsonl("-") == [{"a": 1}]


def test_jsonl_error_is_bad_input_and_a_value_error():
    err = JsonlError(["f:1: why"])
    assert isinstance(err, ValueError) and exit_code_for(err) == 2


@pytest.mark.parametrize("exc, code, label", [
    (BadInput("b"), 2, "bad input"), (Unreachable("u"), 3, "unreachable"),
    (SwarmdError("s"), 1, "error"),
])
def test_each_error_category_has_its_exit_code_and_label(exc, code, label, capsys):
    def command(_args):
        raise exc
    parser = argparse.ArgumentParser()
    parser.set_defaults(func=command)
    assert run(parser, []) == code
    assert capsys.readouterr().err.startswith(f"{label}: {exc}")


def test_markup_in_a_message_is_printed_as_is(capsys):
    def command(_args):
        raise BadInput("rules[0].decision: expected [bold] or [red]x[/red]")
    parser = argparse.ArgumentParser()
    parser.set_defaults(func=command)
    assert run(parser, []) == 2
    assert "rules[0].decision: expected [bold] or [red]x[/red]" in capsys.readouterr().err


def test_a_bug_is_not_turned_into_an_exit_code():
    def command(_args):
        raise KeyError("bug")
    parser = argparse.ArgumentParser()
    parser.set_defaults(func=command)
    with pytest.raises(KeyError):
        run(parser, [])
    with pytest.raises(TypeError):
        exit_code_for(KeyError("bug"))


def test_usage_errors_and_help_return_argparse_codes(capsys):
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int)
    parser.set_defaults(func=lambda _args: 0)
    assert run(parser, ["--n", "x"]) == 2
    assert run(parser, ["--help"]) == 0
