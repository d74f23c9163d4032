"""Network clients (curl, wget...): rerouting options, addresses without a scheme, upload options."""

from __future__ import annotations

import re

from ..policy import Decision
from ..urls import judge_url
from .ir import URL_SCHEME, BUILTIN_URL_POLICY, verdict


#: programs that talk to the network by URL
NET_CLIENTS = frozenset({"curl", "wget", "aria2c", "http", "https", "httpie", "xh", "lynx", "links", "w3m", "fetch"})

_NET_REDIRECT = {
    "curl": ("--resolve", "--connect-to", "--dns-servers", "--doh-url", "--unix-socket", "--abstract-unix-socket",
             "--proxy", "--preproxy", "-x", "--socks4", "--socks5", "-K", "--config"),
    "wget": ("-e", "--execute", "-i", "--input-file", "--config", "--use-askpass"),
}

_BARE_HOST = re.compile(r"\A(?:\[[0-9A-Fa-f:.%]+\]|[0-9A-Za-z.]+)(?::[0-9]+)?(?:/.*)?\Z", re.DOTALL)

def network_check(program: str):  # noqa: ANN202 - small factory
    """The argument check of network client ``program`` (curl, wget...): ``check(args)`` denies
    proxies and resolver overrides (``shell.network-redirect``) and refused address literals."""
    redirect = _NET_REDIRECT.get(program, ())

    def check(args: list[str]) -> Decision | None:
        """curl/wget: options that reroute connections (``--resolve``, proxies,
        config files, wget ``-e``) deny; addresses given without a scheme
        (``169.254.169.254/x``, ``2130706433``) are judged like URLs."""
        for a in args:
            opt = a.split("=", 1)[0]
            if opt in redirect or (not a.startswith("--") and a[:2] in redirect and len(a) > 2):
                return verdict("deny", "shell.network-redirect",
                          f"{program} {opt[:20]}: reroutes the connection or reads options from a file")
        for a in args:
            if a.startswith("-") or URL_SCHEME.match(a) or not _BARE_HOST.match(a):
                continue
            host = a.split("/", 1)[0]
            if host[:1].isdigit() or host.startswith("["):  # names are not resolved while deciding
                v = judge_url(BUILTIN_URL_POLICY, "https://" + host + "/")
                if v.decision.decision == "deny":
                    return v.decision
        return None
    return check

UPLOAD_STDIN = re.compile(r"\A(?:-d|--data(?:-binary|-raw|-urlencode|-ascii)?|-T|--upload-file|-F|--form|"
                           r"--post-file|--body-file|--json)=?(?:@?-|.*=@-|/dev/stdin|@/dev/stdin)\Z")

UPLOAD_OPTIONS = ("-d", "--data", "-T", "--upload-file", "-F", "--form", "--post-data", "--post-file", "--body-data",
                "--body-file", "--json")
