"""The per-program checks table (:data:`PROGRAM_CHECKS`: program -> check(args) -> Decision | None) and the small check factories."""

from __future__ import annotations

import re

from ..policy import Decision, strictest
from .archivers import check_tar
from .git import check_git
from .ir import verdict, gtfobins_deny
from .network import network_check
from .text import check_awk, check_date, check_sed, check_uniq


_SETUID_MODE = re.compile(r"\A(?:[ugoa]*[+=][rwxXt]*s.*|0*[2-7][0-7]{3})\Z")

def _deny_prefix(prefixes: tuple[str, ...], what: str):  # noqa: ANN202 - small factory
    def check(args: list[str]) -> Decision | None:
        bad = next((a for a in args if a.startswith(prefixes)), None)
        return gtfobins_deny(f"{what} {bad[:40]!r}") if bad else None
    return check

def _writes_via(prefixes: tuple[str, ...], what: str):  # noqa: ANN202 - small factory
    def check(args: list[str]) -> Decision | None:
        bad = next((a for a in args if a.startswith(prefixes)), None)
        return verdict("ask", "shell.writes-file", f"{what} ({bad[:40]!r}) writes a file") if bad else None
    return check

def _check_chmod(args: list[str]) -> Decision | None:
    if any(_SETUID_MODE.match(a) for a in args):
        return gtfobins_deny("chmod setting setuid/setgid bits")
    return None

def _chain(*checks):  # noqa: ANN202 - small combinator
    def check(args: list[str]) -> Decision | None:
        return strictest([d for c in checks if (d := c(args)) is not None], None)  # type: ignore[arg-type]
    return check

PROGRAM_CHECKS = {
    "awk": check_awk, "gawk": check_awk, "mawk": check_awk, "nawk": check_awk,
    "busybox-awk": check_awk, "sed": check_sed, "gsed": check_sed, "git": check_git, "tar": check_tar,
    "gtar": check_tar, "bsdtar": check_tar,
    "rg": _deny_prefix(("--pre",), "rg option runs a preprocessor command"),
    "zip": _deny_prefix(("-TT", "--unzip-command", "-T"), "zip test option runs a command"),
    "rsync": _deny_prefix(("-e", "--rsh", "--rsync-path"), "rsync option runs a remote shell"),
    "ssh": _deny_prefix(("-o", "-F"), "ssh option can run local commands"),
    "scp": _deny_prefix(("-o", "-S", "-F"), "scp option can run commands"),
    "chmod": _check_chmod, "uniq": check_uniq, "date": check_date,
    "jq": _chain(_deny_prefix(("-L", "--library-path", "import ", "include "), "jq module loading reads files"),
                 lambda args: gtfobins_deny("jq env/$ENV reads the environment") if any(
                     re.search(r"\benv\b|\$ENV|\$__loc__|input_filename", a) for a in args) else None),
    "install": _check_chmod,
    "sort": _chain(_deny_prefix(("--compress-program",), "sort option runs a program"),
                   _writes_via(("-o", "--output"), "sort -o")),
    "tree": _writes_via(("-o",), "tree -o"), "file": _writes_via(("-C", "--compile"), "file -C"),
    "split": _deny_prefix(("--filter",), "split --filter runs a shell command"),
    "man": _deny_prefix(("-P", "--pager", "-H", "--html"), "man option runs a pager/browser command"),
    "dpkg": _deny_prefix(("-i", "--install"), "dpkg install runs maintainer scripts"),
    **{n: network_check(n) for n in ("curl", "wget", "aria2c", "http", "httpie", "xh")},
}
