"""The loopback filtering proxy (netproxy.py): real unix socket, real loopback HTTP server, real bwrap.

DNS is the only fake (``table_resolver``: these machines have no DNS). The
allowed-host case reaches a loopback server by an allowlisted name, which
needs ``allow_private_addresses_for_tests``; every other test runs with the
public-address check on.
"""

from __future__ import annotations

import http.server
import os
import socket
import threading

import pytest
import yaml

from swarmd.governor import Decision, parse_policy
from swarmd.governor.execute import run_argv
from swarmd.governor.netproxy import PROXY_ENV, SANDBOX_SOCKET, NetProxy, decision_for, shared
from swarmd.governor.sandbox import bwrap_argv, probe, workspace_masks

from .conftest import REPO, make_workspace, table_resolver

ALLOW = Decision("allow", "test", "test")


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.hits.append((self.path, self.headers.get("Host"), self.headers.get("Proxy-Authorization")))
        body = f"hello from {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a: object) -> None:
        pass


@pytest.fixture()
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.hits = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def proxy_policy(port: int, network: bool = False):
    data = yaml.safe_load((REPO / "src" / "swarmd" / "policy.yaml").read_text())
    data["urls"].update({"schemes": ["http", "https"], "ports": [443, port]})
    data["rules"].insert(0, {"id": "test-hosts", "tool": "http_get", "decision": "allow", "reason": "test",
                             "host": ["site.test", "rebind.example", "internal.corp.example",
                                      "metadata.attacker.example", "mixed.example"]})
    data.setdefault("sandbox", {})["network"] = network
    return parse_policy(yaml.safe_dump(data))


def ask(proxy: NetProxy, raw: bytes) -> bytes:
    """Send ``raw`` to the proxy's unix socket; everything it answers until it closes."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(proxy.socket_path)
        s.sendall(raw)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_refuses_a_host_not_on_the_allowlist(server):
    port = server.server_address[1]
    with NetProxy(proxy_policy(port), table_resolver, allow_private_addresses_for_tests=True) as p:
        for raw in (f"GET http://evil.example:{port}/x HTTP/1.1\r\nHost: evil.example\r\n\r\n".encode(),
                    b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
                    b"CONNECT webhook.site:443 HTTP/1.1\r\n\r\n",
                    b"CONNECT site.test:22 HTTP/1.1\r\n\r\n"):
            out = ask(p, raw)
            assert out.startswith(b"HTTP/1.1 403 "), out
        assert b"X-Proxy-Error: url.port" in out
        assert b"X-Proxy-Error: default.http_get" in ask(p, b"CONNECT evil.example:443 HTTP/1.1\r\n\r\n")
    assert server.hits == []


@pytest.mark.parametrize("host, addr", [("rebind.example", "127.0.0.1"), ("internal.corp.example", "10.0.0.5"),
                                        ("metadata.attacker.example", "169.254.169.254"),
                                        ("mixed.example", "10.1.1.1"), ("site.test", "127.0.0.1")])
def test_refuses_allowlisted_names_resolving_to_non_public_addresses(server, host, addr):
    port = server.server_address[1]
    with NetProxy(proxy_policy(port), table_resolver) as p:
        out = ask(p, f"GET http://{host}:{port}/ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.1 403 ") and b"X-Proxy-Error: url.non-public-address" in out, out
        assert addr.encode() in out
        assert ask(p, f"CONNECT {host}:443 HTTP/1.1\r\n\r\n".encode()).startswith(b"HTTP/1.1 403 ")
        assert decision_for(p, f"https://{host}/").decision == "deny"
    assert server.hits == []


def test_unresolvable_and_malformed_requests_are_refused(server):
    port = server.server_address[1]
    with NetProxy(proxy_policy(port), lambda host: []) as p:
        assert b"url.unresolvable" in ask(p, b"CONNECT www.python.org:443 HTTP/1.1\r\n\r\n")
        assert ask(p, b"GET /relative HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        assert ask(p, b"CONNECT nocolon HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        assert ask(p, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_forwards_to_an_allowed_host_at_the_pinned_address(server):
    port = server.server_address[1]
    with NetProxy(proxy_policy(port), table_resolver, allow_private_addresses_for_tests=True) as p:
        out = ask(p, f"GET http://site.test:{port}/a?b=1 HTTP/1.1\r\nHost: site.test:{port}\r\n"
                     f"Proxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.0 200 ") or out.startswith(b"HTTP/1.1 200 "), out
        assert out.endswith(b"hello from /a?b=1")
        assert server.hits == [("/a?b=1", f"site.test:{port}", None)]  # origin form; Proxy-* dropped
        # CONNECT: a tunnel to the pinned address (the request inside it is the client's own)
        out = ask(p, f"CONNECT site.test:{port} HTTP/1.1\r\n\r\nGET /t HTTP/1.0\r\nHost: site.test\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.1 200 Connection Established\r\n\r\nHTTP/1.0 200 ")
        assert out.endswith(b"hello from /t")
        assert decision_for(p, f"http://site.test:{port}/").reason.endswith("-> 127.0.0.1")


def test_without_network_the_sandbox_gets_no_proxy(tmp_path):
    pol = proxy_policy(8080, network=False)
    conf = probe() if probe().available else None
    if conf is None:
        pytest.skip("bwrap not usable here: " + probe().reason)
    a = bwrap_argv(conf, str(tmp_path), pol, workspace_masks(str(tmp_path), pol))
    assert a[-1] == "--" and SANDBOX_SOCKET not in a and "--share-net" not in a and "--setenv" not in a


@pytest.mark.skipif(not probe().available, reason="bwrap not usable here: " + probe().reason)
def test_with_network_the_sandbox_gets_the_shared_proxy_of_its_policy(tmp_path):
    pol = proxy_policy(8080, network=True)
    a = bwrap_argv(probe(), str(tmp_path), pol, workspace_masks(str(tmp_path), pol))
    assert "--share-net" not in a and ("--unshare-all" in a or "--unshare-net" in a)
    sock = a[a.index(SANDBOX_SOCKET) - 1]
    assert a[a.index(SANDBOX_SOCKET) - 2] == "--bind" and sock == shared(pol).socket_path
    assert a[-1] == SANDBOX_SOCKET and a[-3] == "-c"  # the bridge execs the command appended after it
    p = shared(pol)
    assert ask(p, b"CONNECT evil.example:443 HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 403 ")


@pytest.mark.skipif(not probe().available, reason="bwrap not usable here: " + probe().reason)
def test_sandbox_reaches_the_network_only_through_the_proxy(server, tmp_path):
    port = server.server_address[1]
    pol = proxy_policy(port, network=True)
    ws = str(make_workspace(tmp_path))
    lim = pol.execution.model_copy(update={"timeout_s": 30})
    script = (f"env | grep -i _proxy= | sort; curl -sS -m 10 http://site.test:{port}/via-proxy; echo; "
              f"curl -sS -m 10 http://evil.example:{port}/refused; echo; "
              f"curl -sS -m 5 --noproxy '*' http://127.0.0.1:{port}/direct; echo direct=$?; "
              "cat /proc/net/dev | tail -n +3 | cut -d: -f1")
    with NetProxy(pol, table_resolver, allow_private_addresses_for_tests=True) as p:
        r = run_argv(["/bin/sh", "-c", script], ws, lim, ALLOW, policy=pol, confinement=probe(),
                     proxy_socket=p.socket_path)
    assert r.exit_code == 0, r.output
    for k, v in PROXY_ENV.items():
        assert f"{k}={v}\n" in r.output
    assert "hello from /via-proxy\n" in r.output
    assert "swarmd proxy: no rule covers host 'evil.example'" in r.output
    assert "direct=7" in r.output  # curl: could not connect (the netns has no route out)
    assert r.output.split()[-1] == "lo" and r.output.split().count("lo") == 1
    assert [h[0] for h in server.hits] == ["/via-proxy"]
    assert not os.path.exists(p.socket_path)
