"""URL judging for ``http_get`` (and each redirect hop).

:func:`judge_url` decides without DNS: built-in checks deny malformed URLs, schemes and
ports not listed (``urls.schemes``, ``urls.ports``), user-info, odd numeric host encodings,
IPv6 forms embedding IPv4, ``localhost`` and ``urls.deny_hosts``, and literal addresses
that are not public unless in ``urls.allow_networks`` (rule ids ``url.*``); then policy
rules with ``host`` globs decide, and no rule -> ``ask`` (``default.http_get``).

:func:`resolve_checked` resolves a name only when an allowed request runs: every address
must be public, and the connection is pinned to a checked one.  DNS goes through the
injectable ``resolver`` (host -> list of IP strings; default :func:`default_resolver`,
``socket.getaddrinfo``).  IP literals are never resolved.  Each check: docs/design.md.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urljoin, urlsplit

from .policy import Decision, Policy, rule_decision

Resolver = Callable[[str], list[str]]
IP = ipaddress.IPv4Address | ipaddress.IPv6Address

_BAD_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_NUMERIC_LABEL = re.compile(r"\A(?:0x[0-9a-f]*|[0-9]+)\Z")
_CANONICAL_V4 = re.compile(r"\A(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}\Z")
_LABEL = re.compile(r"\A[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\Z")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4COMPAT = ipaddress.ip_network("::/96")
_DEFAULT_PORTS = {"https": 443, "http": 80}
MAX_URL_LENGTH = 4096


def default_resolver(host: str) -> list[str]:
    """Resolve ``host`` with ``socket.getaddrinfo``; returns unique IP strings ([] on failure)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(str(i[4][0]) for i in infos))


@dataclass(frozen=True, slots=True)
class UrlVerdict:
    """Result of :func:`judge_url`: the decision plus what execution must use.

    ``ips`` are the checked addresses to connect to (pinning against DNS
    rebinding); ``host``/``port``/``scheme`` are normalised.
    """

    decision: Decision
    scheme: str = ""
    host: str = ""
    port: int = 0
    ips: tuple[str, ...] = field(default_factory=tuple)


def _deny(rule: str, reason: str) -> UrlVerdict:
    return UrlVerdict(Decision("deny", rule, reason))


def _embedded_v4(ip: ipaddress.IPv6Address) -> bool:
    return bool(ip.ipv4_mapped or ip.sixtofour or ip.teredo or ip in _NAT64 or (ip in _V4COMPAT and int(ip) > 1))


def is_public(ip: IP, policy: Policy) -> bool:
    """True if ``ip`` is globally routable (or inside ``urls.allow_networks``)."""
    if any(ip.version == n.version and ip in n for n in policy.fast.allow_networks):
        return True
    if ip.version == 6 and _embedded_v4(ip):  # type: ignore[arg-type]
        return False
    return bool(ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified
                                      or ip.is_loopback or ip.is_link_local or ip.is_private))


def parse_host(host: str) -> tuple[str, IP | None]:
    """Normalise a URL host. Returns ``(host, ip_or_None)``.

    Raises ``ValueError`` with a rule id as ``args[0]`` and a reason as
    ``args[1]`` for odd IP encodings, IPv6 zones/embedded IPv4 and bad names.
    """
    if host.startswith("["):
        inner = host[1:-1]
        if "%" in inner:
            raise ValueError("url.odd-ip-encoding", "IPv6 zone ids are not allowed")
        try:
            ip6 = ipaddress.IPv6Address(inner)
        except ValueError:
            raise ValueError("url.malformed", f"bad IPv6 literal {inner!r}") from None
        if _embedded_v4(ip6):
            raise ValueError("url.ipv6-embedded-ipv4", f"IPv6 address {ip6} embeds an IPv4 address")
        return str(ip6), ip6
    try:
        name = host.encode("idna").decode("ascii").lower() if not host.isascii() else host.lower()
    except UnicodeError:
        raise ValueError("url.malformed", f"host {host!r} is not a valid international name") from None
    if name.endswith("."):
        name = name[:-1]
    labels = name.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        if _CANONICAL_V4.match(name):
            return name, ipaddress.IPv4Address(name)
        raise ValueError("url.odd-ip-encoding",
                         f"host {host!r} is a numeric address in a non-canonical form (decimal/octal/hex/short)")
    if not name or len(name) > 253 or not all(_LABEL.match(lab) for lab in labels):
        raise ValueError("url.malformed", f"host {host!r} is not a valid host name")
    return name, None


def judge_url(policy: Policy, url: object, resolver: Resolver | None = None) -> UrlVerdict:
    """Judge one URL against the built-in checks and the policy (see module docstring).

    Without ``resolver`` (how the governor decides) a host name is not looked
    up and ``ips`` stays empty; with one, the name is resolved and every
    address checked as :func:`resolve_checked` does. Never raises; a failing
    ``resolver`` counts as "does not resolve".
    """
    if not isinstance(url, str) or not url:
        return _deny("url.malformed", "url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        return _deny("url.malformed", f"url longer than {MAX_URL_LENGTH} characters")
    if _BAD_CHARS.search(url):
        return _deny("url.malformed", "url contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
    except ValueError as e:
        return _deny("url.malformed", f"unparseable url: {e}")
    scheme = parts.scheme.lower()
    if scheme not in policy.urls.schemes:
        return _deny("url.scheme", f"scheme {scheme or '(none)'!r} not in urls.schemes {policy.urls.schemes}")
    netloc = parts.netloc
    if "@" in netloc:
        return _deny("url.userinfo", "user-info (user@host) in URLs is not allowed")
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            return _deny("url.malformed", "unterminated IPv6 literal")
        host_part, rest = netloc[:end + 1], netloc[end + 1:]
    else:
        host_part, _, port_s = netloc.partition(":")
        rest = ":" + port_s if _ else ""
    port = _DEFAULT_PORTS[scheme]
    if rest:
        if not rest.startswith(":") or not rest[1:].isdigit() or not 0 < int(rest[1:]) < 65536:
            return _deny("url.malformed", f"bad port in {netloc!r}")
        port = int(rest[1:])
        if port != _DEFAULT_PORTS[scheme] and port not in policy.urls.ports:
            return _deny("url.port", f"port {port} not in urls.ports {policy.urls.ports}")
    if not host_part:
        return _deny("url.malformed", "url has no host")
    try:
        host, ip = parse_host(host_part)
    except ValueError as e:
        return _deny(e.args[0], e.args[1])
    deny_hosts = policy.fast.deny_hosts
    if host == "localhost" or host.endswith(".localhost") or (deny_hosts is not None and deny_hosts.match(host)):
        return _deny("url.denied-host", f"host {host!r} is denied")
    ips: tuple[str, ...] = ()
    if ip is not None or resolver is not None:
        bad, ips = resolve_checked(policy, host, resolver or default_resolver, ip)
        if bad is not None:
            return UrlVerdict(bad)
    matched = [r for r in policy.rules_for("http_get") if r.matches_host(host)]
    d = rule_decision(matched, Decision("ask", "default.http_get", f"no rule covers host {host!r}"))
    return UrlVerdict(d, scheme, host, port, ips)


def resolve_checked(policy: Policy, host: str, resolver: Resolver,
                    ip: IP | None = None) -> tuple[Decision | None, tuple[str, ...]]:
    """Addresses to connect to for ``host`` (normalised by :func:`parse_host`;
    ``ip``: its literal address, then nothing is resolved).

    Returns ``(None, ips)`` when every address is public (or inside
    ``urls.allow_networks``), else ``(deny decision, ())``: ``url.unresolvable``
    (no address, a failing resolver, a non-address answer) or
    ``url.non-public-address``. Never raises.
    """
    if ip is not None:
        addrs: list[IP] = [ip]
    else:
        try:
            raw_ips = list(resolver(host) or [])
        except Exception as e:  # noqa: BLE001 - a failing resolver means "does not resolve"
            return Decision("deny", "url.unresolvable", f"host {host!r} did not resolve ({type(e).__name__})"), ()
        if not raw_ips:
            return Decision("deny", "url.unresolvable", f"host {host!r} did not resolve"), ()
        addrs = []
        for r in raw_ips:
            try:
                addrs.append(ipaddress.ip_address(str(r).split("%", 1)[0]))
            except ValueError:
                return Decision("deny", "url.unresolvable", f"resolver returned a non-address {r!r}"), ()
    for a in addrs:
        if not is_public(a, policy):
            return Decision("deny", "url.non-public-address",
                            f"{host!r} -> {a}: not a public address (loopback/private/link-local/metadata)"), ()
    return None, tuple(str(a) for a in addrs)


def redirect_target(current_url: str, location: str) -> str:
    """Absolute URL a redirect ``Location`` header points to (relative to ``current_url``)."""
    return urljoin(current_url, location)
