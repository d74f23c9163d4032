"""A request no configured model can answer is refused up front, with the reason and what to
configure, instead of ending "every tier unavailable" (issue 22): summarize / extract with no
Ollama and no API key, api_only with no key.  The embedded model is not their fallback:
bench/generative.py measured its summaries (19 of 20 looped or copied)."""

from __future__ import annotations

import httpx

from swarmd import constants as K
from swarmd.cli import swarmctl
from swarmd.router.reach import model_problems, plan_problem
from swarmd.validation import Problem
from tests.daemon.helpers import shipped_config, swarmctl_run, write_config
from tests.fakes.ollama_server import FakeOllama
from tests.wait import LONG_S

CLOSED = "http://127.0.0.1:9"          # daemon_env's Ollama: nothing listens on the discard port


def test_plan_problem_names_each_model_and_what_to_configure():
    config = shipped_config(env={"OLLAMA_HOST": CLOSED, "ANTHROPIC_API_KEY": ""})
    problems = model_problems(config, timeout_s=5)
    assert problems == {"LOCAL_QUALITY/ollama/llama3.1:8b#0": f"no Ollama host answered ({CLOSED}: ConnectError)",
                        "API_FALLBACK/anthropic/claude-sonnet-5-5#0": "no ANTHROPIC_API_KEY configured"}
    local = plan_problem(config, "summarize", "local_only", problems)
    assert local.startswith("action 'summarize' under strategy 'local_only' has no model that can answer now: "
                            f"LOCAL_QUALITY/ollama/llama3.1:8b#0: no Ollama host answered ({CLOSED}: ConnectError)")
    assert "bench/generative.py" in local
    assert local.endswith(f"To run it: start Ollama (`ollama serve`, `ollama pull llama3.1:8b`) on {CLOSED} "
                          "or point OLLAMA_HOST at one")
    api = plan_problem(config, "summarize", "api_only", problems)
    assert api.endswith("API_FALLBACK/anthropic/claude-sonnet-5-5#0: no ANTHROPIC_API_KEY configured (the embedded "
                        "model of LOCAL_FAST is not asked: on summaries it looped or copied in 19 of 20, "
                        "bench/generative.py). To run it: set ANTHROPIC_API_KEY (under systemd: in "
                        "/etc/swarmd/swarmd.env)")
    cascade = plan_problem(config, "extract", None, problems)       # both out of reach: both hints
    assert "start Ollama" in cascade and "set ANTHROPIC_API_KEY" in cascade
    # the embedded model answers classify: nothing to refuse, whatever else is down
    assert plan_problem(config, "classify", "local_only", problems) is None
    assert plan_problem(config, "classify", None, problems) is None


def test_a_reachable_ollama_or_a_key_serves_the_plan():
    with FakeOllama() as ollama:
        config = shipped_config(env={"OLLAMA_HOST": ollama.url, "ANTHROPIC_API_KEY": ""})
        problems = model_problems(config, timeout_s=30)
        assert list(problems) == ["API_FALLBACK/anthropic/claude-sonnet-5-5#0"]
        assert plan_problem(config, "summarize", "local_only", problems) is None
        assert plan_problem(config, "summarize", "local_only") is None        # probed here, lazily
        assert [r.path for r in ollama.requests] == ["/api/version", "/api/version"]
    keyed = shipped_config(env={"OLLAMA_HOST": CLOSED, "ANTHROPIC_API_KEY": "sk-ant-x"})
    assert plan_problem(keyed, "summarize", "api_only", model_problems(keyed, timeout_s=5)) is None


def _submit(monkeypatch, capsys, redis_url, config, *argv):
    return swarmctl_run(monkeypatch, capsys, redis_url, config, "submit", *argv)


def test_submit_refuses_what_the_daemon_cannot_answer(echo_swarmd, redis_url, redis_conn, monkeypatch, capsys):
    """A real daemon with no Ollama (closed port) and no API key, LOCAL_FAST echo (no model loaded)."""
    config = echo_swarmd(workers=0)
    code, out = _submit(monkeypatch, capsys, redis_url, config, "--action", "summarize", "--input",
                        "a long text to summarize", "--strategy", "local_only", "--id", "sum-local")
    assert code == 2, out
    assert "nothing submitted:\nobjective sum-local: strategy: expected a plan with a model the running daemon " \
           "can reach, found action 'summarize' under strategy 'local_only' has no model that can answer now" \
           in out.err
    assert "no Ollama host answered" in out.err and "ollama serve" in out.err
    code, out = _submit(monkeypatch, capsys, redis_url, config, "--action", "summarize", "--input", "text",
                        "--strategy", "api_only", "--id", "sum-api")
    assert code == 2 and "no ANTHROPIC_API_KEY configured" in out.err and "set ANTHROPIC_API_KEY" in out.err
    code, out = _submit(monkeypatch, capsys, redis_url, config, "--action", "extract", "--input", "text",
                        "--id", "ext-cascade")
    assert code == 2 and "objective ext-cascade: strategy: " in out.err and "under strategy 'cascade'" in out.err
    assert redis_conn.xlen(K.OBJECTIVE_STREAM) == 0           # nothing reached the daemon
    assert not redis_conn.exists(K.objective_key("sum-local"))
    code, out = _submit(monkeypatch, capsys, redis_url, config, "--action", "classify", "--labels", "feat,fix",
                        "--input", "fix crash", "--strategy", "local_only", "--id", "cls-local")
    assert code == 0 and out.out.strip() == "cls-local"       # the embedded (here echo) model answers it


def test_api_submit_refuses_as_swarmctl_does(echo_swarmd, tmp_path, redis_url, redis_conn, monkeypatch, capsys):
    """POST /api/v1/objectives runs the same reach check as ``swarmctl submit`` (one implementation,
    :func:`swarmd.daemon.control.push`): a batch holding an api_only objective with no API key
    configured is refused whole, 422 naming its index and field, and swarmctl prints the same problem."""
    config = echo_swarmd(workers=0)
    data = tmp_path / "data"
    fine = {"id": "ok-1", "action": "classify", "labels": ["feat", "fix"], "input": "fix crash"}
    bad = {"id": "api-1", "action": "classify", "labels": ["feat", "fix"], "input": "fix crash",
           "strategy": "api_only"}
    with httpx.Client(base_url=(data / "api.url").read_text().strip(), timeout=LONG_S,
                      headers={"Authorization": f"Bearer {(data / 'api.token').read_text().strip()}"}) as api:
        r = api.post("/api/v1/objectives", json=[fine, bad])
    assert r.status_code == 422, r.text
    [detail] = r.json()["detail"]
    assert (detail["index"], detail["field"]) == (1, "strategy")
    assert detail["found"].startswith("action 'classify' under strategy 'api_only' has no model that can answer now")
    assert "no ANTHROPIC_API_KEY configured" in detail["found"]
    assert redis_conn.xlen(K.OBJECTIVE_STREAM) == 0 and not redis_conn.exists(K.objective_key("ok-1"))

    code, out = _submit(monkeypatch, capsys, redis_url, config, "--action", "classify", "--labels", "feat,fix",
                        "--input", "fix crash", "--strategy", "api_only", "--id", "api-1")
    expected = Problem("objective api-1", None, detail["field"], detail["expected"], detail["found"])
    assert code == 2 and out.err.replace("\n", " ").split() == f"bad input: nothing submitted: {expected}".split(), \
        out.err
    assert redis_conn.xlen(K.OBJECTIVE_STREAM) == 0


def _ask(tmp_path, monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    """``swarmctl ask`` with no Ollama (closed port), no API key, no Redis, LOCAL_FAST echo."""
    monkeypatch.setenv("OLLAMA_HOST", CLOSED)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "")
    monkeypatch.delenv("REDIS_URL", raising=False)
    config = write_config(tmp_path, fast_provider="echo")
    (tmp_path / "data").mkdir()
    capsys.readouterr()
    code = swarmctl.main(["--config", str(config), "--data-dir", str(tmp_path / "data"), "ask", *argv])
    return code, capsys.readouterr().err


def test_ask_refuses_a_summary_no_model_can_give(tmp_path, monkeypatch, capsys):
    code, err = _ask(tmp_path, monkeypatch, capsys, "--action", "summarize", "--input", "some text",
                     "--strategy", "local_only")
    assert code == 2 and "has no model that can answer now" in err and "ollama serve" in err, err
    assert "every tier unavailable" not in err


def test_ask_api_only_without_a_key_is_refused(tmp_path, monkeypatch, capsys):
    code, err = _ask(tmp_path, monkeypatch, capsys, "--action", "classify", "--labels", "feat,fix", "--input", "x",
                     "--strategy", "api_only")
    assert code == 2 and "no ANTHROPIC_API_KEY configured" in err, err
