"""Execution of allowed actions: real subprocesses, real files, a real loopback HTTP server."""

from __future__ import annotations

import http.server
import os
import sys
import threading
import time

import pytest
import yaml

from swarmd.governor import Decision, Governor, parse_policy
from swarmd.governor.execute import run_argv, run_tool, scrubbed_env
from swarmd.governor.sandbox import NONE, SANDBOX_HOME, probe

from .conftest import REPO, make_workspace, table_resolver

ALLOW = Decision("allow", "test", "test")
# an interpreter visible inside bwrap too (the venv's lives outside /usr)
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SECRET_VARS = {"ANTHROPIC_API_KEY": "sk-ant-api03-abcdefghijklmnop", "OPENAI_API_KEY": "sk-abcdefghijklmnopqrstu",
               "REDIS_URL": "redis://:hunter2@127.0.0.1:6379/0", "GITHUB_TOKEN": "ghp_abcdefghijklmnopqrstuvwxyz",
               "DB_PASSWORD": "hunter2", "MY_SECRET": "s3cr3t", "AWS_SECRET_ACCESS_KEY": "abc/def"}


def policy_with(**changes):
    data = yaml.safe_load((REPO / "src" / "swarmd" / "policy.yaml").read_text())
    for key, value in changes.items():
        if key == "extra_rules":
            data["rules"] = value + data["rules"]
        else:
            data.setdefault(key.split("__")[0], {})[key.split("__")[1]] = value
    return parse_policy(yaml.safe_dump(data))


@pytest.fixture()
def ws(tmp_path):
    return str(make_workspace(tmp_path))


@pytest.fixture()
def limits(policy):
    return policy.execution.model_copy(update={"timeout_s": 10, "max_output_bytes": 4096})


@pytest.fixture(params=["rlimits", "bwrap"])
def conf(request):
    """Each confinement: none (as on a machine without bubblewrap: rlimits
    only) and bwrap (skipped where it is not usable)."""
    if request.param == "rlimits":
        return NONE
    if not probe().available:
        pytest.skip("bwrap not installed or not usable here")
    return probe()


@pytest.fixture()
def cgov(policy, conf):
    return Governor(policy, resolver=table_resolver, confinement=conf)


def test_plain_command_runs_without_shell(cgov, ws, conf):
    r = run_tool(cgov, "shell", {"command": "ls -a src"}, ws)
    assert r.ran and r.exit_code == 0 and r.decision.decision == "allow"
    assert r.output.split() == [".", "..", "app.py", "env.py", "util.py"]
    assert r.confinement == ("bwrap" if conf.available else "rlimits")


def test_glob_expanded_in_the_sandbox(gov, ws):
    r = run_tool(gov, "shell", {"command": "ls src/*.py"}, ws)
    assert r.exit_code == 0 and sorted(r.output.split()) == ["src/app.py", "src/env.py", "src/util.py"]


def test_pipeline_of_allowed_parts_runs(cgov, ws):
    r = run_tool(cgov, "shell", {"command": "cat notes.txt | sort | uniq -c | sort -rn | head -1"}, ws)
    assert r.exit_code == 0 and r.output.split() == ["2", "b"]


def test_redirect_inside_workspace(gov, ws):
    r = run_tool(gov, "shell", {"command": "echo hello > build/out.txt && cat build/out.txt"}, ws)
    assert r.output == "hello\n"
    assert open(os.path.join(ws, "build", "out.txt")).read() == "hello\n"


def test_not_allowed_is_not_run(gov, ws):
    for cmd in ["rm -rf src", "touch x; sh -c 'rm -rf src'", "mkdir made && rm -rf src"]:
        r = run_tool(gov, "shell", {"command": cmd}, ws)
        assert not r.ran and r.output == "" and r.decision.decision in ("deny", "ask")
    assert os.path.isdir(os.path.join(ws, "src")) and not os.path.exists(os.path.join(ws, "made"))


def test_env_is_scrubbed(ws, limits, monkeypatch, conf):
    for k, v in SECRET_VARS.items():
        monkeypatch.setenv(k, v)
    r = run_argv(["env"], ws, limits, ALLOW, confinement=conf)
    assert r.exit_code == 0
    names = {line.split("=", 1)[0] for line in r.output.splitlines() if "=" in line}
    assert names and not names & set(SECRET_VARS)
    for v in SECRET_VARS.values():
        assert v not in r.output
    home = next(line[5:] for line in r.output.splitlines() if line.startswith("HOME="))
    assert home != ws and (home == SANDBOX_HOME) == conf.available
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in r.output.splitlines()


def test_env_scrubbed_through_run_tool(ws, monkeypatch):
    for k, v in SECRET_VARS.items():
        monkeypatch.setenv(k, v)
    p = policy_with(extra_rules=[{"id": "printenv", "tool": "shell", "program": ["printenv"], "decision": "allow",
                                  "reason": "test"}])
    r = run_tool(Governor(p, resolver=table_resolver), "shell", {"command": "printenv"}, ws)
    assert r.ran and r.exit_code == 0 and "GIT_CONFIG_COUNT" in r.output
    assert not any(v in r.output for v in SECRET_VARS.values())


def test_scrubbed_env_drops_secret_looking_allowlisted_names():
    env = scrubbed_env("/w", {"LC_API_KEY": "x", "LANG": "C.UTF-8", "TOKEN": "t", "LC_ALL": "C"})
    assert "LC_API_KEY" not in env and "TOKEN" not in env and env["LC_ALL"] == "C"


def test_timeout_kills_process_group(ws, limits, conf):
    t = time.monotonic()
    r = run_argv(["sleep", "30"], ws, limits.model_copy(update={"timeout_s": 1}), ALLOW, confinement=conf)
    assert r.ran and r.timed_out and r.exit_code == -9 and "timed out" in r.error
    assert time.monotonic() - t < 25          # killed at the 1 s timeout, not after sleep's 30 s (margin: a busy machine)


def test_timeout_kills_children_of_a_pipeline(ws, limits, conf):
    t = time.monotonic()
    r = run_argv(["/bin/sh", "-c", "sleep 30 | cat"], ws, limits.model_copy(update={"timeout_s": 1}), ALLOW,
                 confinement=conf)
    assert r.timed_out and time.monotonic() - t < 25   # not after sleep's 30 s


def test_output_truncated(cgov, ws, limits):
    r = run_tool(cgov, "shell", {"command": "seq 1 30000"}, ws, limits=limits.model_copy(update={"max_output_bytes": 1000}))
    assert r.truncated and len(r.output.encode()) == 1000 and r.output.startswith("1\n2\n3\n")
    r = run_tool(cgov, "shell", {"command": "seq 1 3"}, ws, limits=limits)
    assert not r.truncated and r.output == "1\n2\n3\n"


def test_rlimits_applied(ws, limits, conf):
    lim = limits.model_copy(update={"cpu_s": 7, "memory_mb": 512, "file_size_mb": 3, "max_processes": 50})
    r = run_argv(["cat", "/proc/self/limits"], ws, lim, ALLOW, confinement=conf)
    rows = {line[:26].strip(): line[26:].split() for line in r.output.splitlines()[1:]}
    assert rows["Max cpu time"][:2] == ["7", "8"]
    assert rows["Max address space"][:2] == [str(512 * 1024 * 1024)] * 2
    assert rows["Max file size"][:2] == [str(3 * 1024 * 1024)] * 2
    assert rows["Max processes"][:2] == ["50", "50"]
    assert rows["Max core file size"][:2] == ["0", "0"]
    assert rows["Max open files"][:2] == ["1024", "1024"]


def test_cpu_limit_kills_busy_loop(ws, limits, conf):
    t = time.monotonic()
    r = run_argv(["sha256sum", "/dev/zero"], ws,
                 limits.model_copy(update={"cpu_s": 1, "timeout_s": 20}), ALLOW, confinement=conf)
    assert not r.timed_out and r.exit_code in (-24, -9)  # SIGXCPU (soft) or SIGKILL (hard), before the 20 s timeout


def test_memory_limit(ws, limits, conf):
    r = run_argv([PY, "-c", "b = bytearray(700 * 1024 * 1024)"], ws,
                 limits.model_copy(update={"memory_mb": 256}), ALLOW, confinement=conf)
    assert r.exit_code == 1 and "MemoryError" in r.output


def test_file_size_limit(ws, limits, conf):
    r = run_argv(["head", "-c", "3000000", "/dev/zero"], ws, limits.model_copy(update={"file_size_mb": 1}), ALLOW,
                 confinement=conf)
    assert r.exit_code == 0  # stdout is a pipe: not limited
    big = os.path.join(ws, "big")
    r = run_argv(["dd", "if=/dev/zero", f"of={big}", "bs=1M", "count=3"], ws,
                 limits.model_copy(update={"file_size_mb": 1}), ALLOW, confinement=conf)
    assert r.exit_code != 0 and os.path.getsize(big) <= 1024 * 1024


def test_read_and_write_file(gov, ws, limits):
    w = run_tool(gov, "write_file", {"path": "build/new/x.txt", "content": "héllo"}, ws)
    assert w.ran and w.error is None
    r = run_tool(gov, "read_file", {"path": "build/new/x.txt"}, ws)
    assert r.output == "héllo" and not r.truncated
    (open(os.path.join(ws, "long.txt"), "w")).write("a" * 5000)
    r = run_tool(gov, "read_file", {"path": "long.txt"}, ws, limits=limits.model_copy(update={"max_output_bytes": 300}))
    assert r.truncated and r.output == "a" * 300


def test_file_tools_refuse_escapes(gov, ws):
    assert not run_tool(gov, "write_file", {"path": "link_out/evil", "content": "x"}, ws).ran
    assert not run_tool(gov, "read_file", {"path": "secrets_link/id_rsa"}, ws).ran
    assert not os.path.exists("/etc/evil")


def test_read_missing_file_reports_error(gov, ws):
    r = run_tool(gov, "read_file", {"path": "nope.txt"}, ws)
    assert r.ran and r.error and "FileNotFoundError" in r.error


# ---------------------------------------------------------------- http_get against a loopback server

class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        routes = {"/redir-ok": "/hello", "/redir-meta": "http://169.254.169.254/latest/meta-data/",
                  "/redir-loop": "/redir-loop", "/redir-other-port": "http://site.test:1/x"}
        if self.path in routes:
            self.send_response(302)
            self.send_header("Location", routes[self.path])
            self.end_headers()
            return
        body = (b"hello from " + self.headers.get("Host", "").encode()) if self.path == "/hello" else b"x" * 10000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture()
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def loopback_gov(port):
    # explicitly allows loopback for this test only: http scheme, the server's port, 127.0.0.0/8
    p = policy_with(urls__schemes=["https", "http"], urls__ports=[443, port], urls__allow_networks=["127.0.0.0/8"],
                    urls__max_redirects=3, extra_rules=[{"id": "site-test", "tool": "http_get", "host": ["site.test"],
                                                         "decision": "allow", "reason": "test server"}])
    return Governor(p, resolver=table_resolver)


def test_http_get_and_redirects(server):
    g = loopback_gov(server)
    base = f"http://site.test:{server}"
    r = run_tool(g, "http_get", {"url": base + "/hello"}, "/")
    assert r.ran and r.exit_code == 200 and r.output == f"hello from site.test:{server}"
    r = run_tool(g, "http_get", {"url": base + "/redir-ok"}, "/")
    assert r.exit_code == 200 and r.output.startswith("hello from")
    r = run_tool(g, "http_get", {"url": base + "/redir-meta"}, "/")
    assert r.exit_code == 302 and r.output == "" and "refused" in r.error and r.decision.decision == "deny"
    r = run_tool(g, "http_get", {"url": base + "/redir-other-port"}, "/")
    assert "refused" in r.error and r.decision.rule == "url.port"
    r = run_tool(g, "http_get", {"url": base + "/redir-loop"}, "/")
    assert r.error == "too many redirects"
    r = run_tool(g, "http_get", {"url": base + "/big"}, "/",
                 limits=g.policy.execution.model_copy(update={"max_output_bytes": 500}))
    assert r.truncated and len(r.output) == 500


def test_http_get_loopback_denied_by_default_policy(server, gov):
    r = run_tool(gov, "http_get", {"url": f"https://site.test:{server}/hello"}, "/")
    assert not r.ran and r.decision.decision == "deny"


def test_http_get_checks_addresses_when_it_runs(server):
    """Deciding does not resolve names; running does, and refuses a name that
    resolves to a non-public address even when the host is allowed."""
    p = policy_with(urls__schemes=["https", "http"], urls__ports=[443, server],
                    extra_rules=[{"id": "site-test", "tool": "http_get", "host": ["site.test"], "decision": "allow",
                                  "reason": "test server"}])
    g = Governor(p, resolver=table_resolver)
    url = f"http://site.test:{server}/hello"
    assert g.decide("http_get", {"url": url}, "/").decision == "allow"
    r = run_tool(g, "http_get", {"url": url}, "/")
    assert not r.ran and r.decision.rule == "url.non-public-address" and "refused at connect" in r.error


def test_fail_closed_without_a_sandbox(tmp_path):
    ws = str(make_workspace(tmp_path))
    gov = Governor(policy_with(), resolver=table_resolver, confinement=NONE)
    d = gov.decide("shell", {"command": "echo hi > build/x.txt"}, ws)
    assert (d.decision, d.rule) == ("ask", "sandbox.unavailable")
    for cmd in ("ls -la src", "grep -rn TODO src | head -3", "cat README.md 2>/dev/null"):
        assert gov.decide("shell", {"command": cmd}, ws).decision == "allow", cmd
    for cmd in ("ls -L src", "cat $(echo README.md)", "python3 src/app.py", "make test"):
        assert gov.decide("shell", {"command": cmd}, ws).rule == "sandbox.unavailable", cmd
    r = run_tool(gov, "shell", {"command": "ls src"}, ws)
    assert r.ran and r.confinement == "rlimits" and r.output.split() == ["app.py", "env.py", "util.py"]
