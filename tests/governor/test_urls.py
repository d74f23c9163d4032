"""URL checks: schemes, odd IP encodings, non-public addresses; no DNS while deciding,
names resolved (through the injected resolver) and checked only when a request runs."""

from __future__ import annotations

import pytest

from swarmd.governor import Governor, parse_policy
from swarmd.governor.urls import resolve_checked

from .conftest import table_resolver


def get(gov, url):
    return gov.decide("http_get", {"url": url}, "/")


@pytest.mark.parametrize("url", ["https://2130706433/", "https://0x7f000001/", "https://0x7f.1/",
                                 "https://0177.0.0.1/", "https://127.1/", "https://017700000001/",
                                 "https://127.0.0.01/", "https://0x7f.0x0.0x0.0x1/", "https://1.2.3/"])
def test_odd_ipv4_encodings_denied(gov, url):
    d = get(gov, url)
    assert d.decision == "deny" and d.rule == "url.odd-ip-encoding", d


@pytest.mark.parametrize("url", ["https://[::ffff:127.0.0.1]/", "https://[::ffff:7f00:1]/", "https://[::ffff:8.8.8.8]/",
                                 "https://[64:ff9b::7f00:1]/", "https://[2002:7f00:1::]/", "https://[::127.0.0.1]/"])
def test_ipv6_embedding_ipv4_denied(gov, url):
    assert get(gov, url).rule == "url.ipv6-embedded-ipv4"


@pytest.mark.parametrize("url", ["https://127.0.0.1/", "https://169.254.169.254/latest/meta-data/",
                                 "https://[fd00:ec2::254]/", "https://[::1]/", "https://0.0.0.0/", "https://[::]/",
                                 "https://10.1.2.3/", "https://192.168.0.1/", "https://172.31.0.1/",
                                 "https://100.64.0.1/", "https://[fe80::1]/", "https://224.0.0.1/"])
def test_non_public_literals_denied(gov, url):
    assert get(gov, url).rule == "url.non-public-address"


@pytest.mark.parametrize("host", ["rebind.example", "metadata.attacker.example", "internal.corp.example",
                                  "mixed.example", "v6local.example"])
def test_names_resolving_to_non_public_refused_when_run(policy, gov, host):
    assert (get(gov, f"https://{host}/").decision, get(gov, f"https://{host}/").rule) == ("ask", "default.http_get")
    bad, ips = resolve_checked(policy, host, table_resolver)
    assert bad is not None and bad.rule == "url.non-public-address" and ips == ()


def test_allowlisted_hosts_allowed_others_asked(policy, gov):
    assert get(gov, "https://example.com/").rule == "http-allowlisted"
    assert get(gov, "https://nxdomain.example/").rule == "default.http_get"
    assert get(gov, "https://93.184.216.34/").rule == "default.http_get"
    assert resolve_checked(policy, "nxdomain.example", table_resolver)[0].rule == "url.unresolvable"
    assert resolve_checked(policy, "example.com", table_resolver) == (None, ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"))


def test_deciding_never_resolves(policy):
    calls = []

    def recording(host):
        calls.append(host)
        return table_resolver(host)

    g = Governor(policy, resolver=recording)
    for url in ("https://93.184.216.34/", "https://[2606:2800:220:1:248:1893:25c8:1946]/", "https://example.com/",
                "https://rebind.example/", "https://evil.example/"):
        get(g, url)
    g.check_redirect("https://example.com/a", "https://rebind.example/")
    assert calls == []


def test_resolver_errors_refuse(policy):
    def broken(host):
        raise OSError("dns down")
    assert resolve_checked(policy, "example.com", broken)[0].rule == "url.unresolvable"
    assert resolve_checked(policy, "example.com", lambda h: ["not-an-ip"])[0].rule == "url.unresolvable"


@pytest.mark.parametrize("url,rule", [
    ("http://example.com/", "url.scheme"), ("file:///etc/passwd", "url.scheme"), ("ftp://example.com/", "url.scheme"),
    ("https://user:pw@example.com/", "url.userinfo"), ("https://example.com@127.0.0.1/", "url.userinfo"),
    ("https://example.com:22/", "url.port"), ("https://example.com\\@127.0.0.1/", "url.malformed"),
    ("https://exa mple.com/", "url.malformed"), ("https://localhost/", "url.denied-host"),
    ("https://foo.localhost/", "url.denied-host"), ("https://metadata.google.internal/", "url.denied-host"),
    ("https://[fe80::1%25eth0]/", "url.odd-ip-encoding"), ("", "url.malformed"), ("https:///x", "url.malformed"),
    ("https://" + "a" * 5000 + ".com/", "url.malformed"),
])
def test_builtin_url_rules(gov, url, rule):
    d = get(gov, url)
    assert d.decision == "deny" and d.rule == rule, d


def test_fullwidth_digits_normalised_then_denied(gov):
    assert get(gov, "https://\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11/").decision == "deny"


def test_http_only_when_policy_says_so():
    p = parse_policy("version: 1\nurls: {schemes: [https, http]}\nrules:\n"
                     "  - {id: any, tool: http_get, host: ['*'], decision: allow, reason: r}\n")
    g = Governor(p, resolver=table_resolver)
    assert get(g, "http://example.com/").decision == "allow"
    assert get(g, "http://169.254.169.254/").decision == "deny"


def test_no_rule_means_ask():
    g = Governor(parse_policy("version: 1\n"), resolver=table_resolver)
    assert get(g, "https://example.com/").rule == "default.http_get"


def test_redirect_hops_rechecked(gov):
    assert gov.check_redirect("https://example.com/a", "/b").decision == "allow"
    assert gov.check_redirect("https://example.com/a", "https://docs.python.org/3/").decision == "allow"
    assert gov.check_redirect("https://example.com/a", "http://169.254.169.254/").decision == "deny"
    assert gov.check_redirect("https://example.com/a", "https://rebind.example/").rule == "default.http_get"
    assert gov.check_redirect("https://example.com/a", "//127.0.0.1/x").decision == "deny"
