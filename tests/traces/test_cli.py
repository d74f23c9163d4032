"""``swarmctl traces``: list, show, disable, export over a real store."""

from __future__ import annotations

import json

import pytest

from swarmd.cli.swarmctl import main
from swarmd.agent.traces import TraceStore, learn
from tests.traces.test_store import ran


@pytest.fixture
def store_dir(tmp_path):
    store = TraceStore(tmp_path / "memory.db")
    good = learn("Count the 'TODO' markers in src/", [ran(1, "grep -ro TODO src | wc -l", "7\n")], "7 markers",
                 model="claude-fake", tier="API_FALLBACK", cost_usd=0.0123)
    bad = learn("Show me the file docs/notes", [ran(1, "", "hi", tool="read_file", path="docs/notes")], "done")
    [(good_id, _)] = store.apply({"learn": good.model_dump(by_alias=True)}, 0.8)
    [(bad_id, _)] = store.apply({"learn": bad.model_dump(by_alias=True)}, 0.8)
    store.conn.execute("UPDATE traces SET body=replace(body, '\"exit_code\"', '\"exit_kode\"') WHERE id=?", (bad_id,))
    store.close()
    return tmp_path, good_id, bad_id


def ctl(capsys, data, *argv):
    capsys.readouterr()
    code = main(["--data-dir", str(data), "traces", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_shows_usable_and_unusable_traces(capsys, store_dir):
    data, good, bad = store_dir
    code, out, _ = ctl(capsys, data, "list", "--json")
    rows = {r["id"]: r for r in map(json.loads, out.splitlines())}
    assert code == 0 and set(rows) == {good, bad}
    assert (rows[good]["confidence"], rows[good]["cost_usd"], rows[good]["steps"]) == (0.75, 0.0123, 1)
    assert rows[bad]["unusable"].startswith(f"trace {bad} v1: steps[0].expect[0]")
    code, out, err = ctl(capsys, data, "list")
    assert code == 0 and "unusable" in out and f"{bad} v1 unusable" in err


def test_show_disable_export(capsys, store_dir):
    data, good, bad = store_dir
    code, out, _ = ctl(capsys, data, "show", good, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["trace"]["steps"][0]["args"] == {"command": "grep -ro {{quoted1}} {{path1}} | wc -l"}
    code, out, _ = ctl(capsys, data, "show", good)
    assert code == 0 and "{{out1}} markers" in out and "API_FALLBACK/claude-fake for $0.012300" in out
    code, _, err = ctl(capsys, data, "show", bad)
    assert code == 2 and f"trace {bad} v1: steps[0].expect[0]" in " ".join(err.split())
    assert ctl(capsys, data, "show", "trace-nope")[0] == 2
    assert ctl(capsys, data, "disable", good)[:2] == (0, f"disabled {good} (1 version)\n")
    store = TraceStore(data / "memory.db")
    assert store.match("Count the 'FIXME' markers in lib/", 0.8, 0.0, 0.0) is None
    store.close()
    code, out, _ = ctl(capsys, data, "export")
    exported = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [e["id"] for e in exported] == [good, bad]
    assert exported[0]["disabled"] and exported[0]["trace"]["goal"] == "Count the 'TODO' markers in src/"
    assert '"exit_kode"' in exported[1]["body"]


def test_missing_store_is_bad_input(capsys, tmp_path):
    code, _, err = ctl(capsys, tmp_path / "nowhere", "list")
    assert code == 2 and "does not exist" in err
