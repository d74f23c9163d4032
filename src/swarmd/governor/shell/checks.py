"""The per-program checks table (:data:`_GTFO_CHECKS`: program -> check(args) -> Decision | None) and the small check factories."""

from __future__ import annotations

import re

from ..policy import Decision, strictest
from .archivers import _check_tar
from .git import _check_git
from .ir import _d, _gtfo
from .network import _net_check
from .text import _check_awk, _check_date, _check_sed, _check_uniq


_SETUID_MODE = re.compile(r"\A(?:[ugoa]*[+=][rwxXt]*s.*|0*[2-7][0-7]{3})\Z")

def _deny_prefix(prefixes: tuple[str, ...], what: str):  # noqa: ANN202 - small factory
    def check(args: list[str]) -> Decision | None:
        bad = next((a for a in args if a.startswith(prefixes)), None)
        return _gtfo(f"{what} {bad[:40]!r}") if bad else None
    return check

def _writes_via(prefixes: tuple[str, ...], what: str):  # noqa: ANN202 - small factory
    def check(args: list[str]) -> Decision | None:
        bad = next((a for a in args if a.startswith(prefixes)), None)
        return _d("ask", "shell.writes-file", f"{what} ({bad[:40]!r}) writes a file") if bad else None
    return check

def _check_chmod(args: list[str]) -> Decision | None:
    if any(_SETUID_MODE.match(a) for a in args):
        return _gtfo("chmod setting setuid/setgid bits")
    return None

def _chain(*checks):  # noqa: ANN202 - small combinator
    def check(args: list[str]) -> Decision | None:
        return strictest([d for c in checks if (d := c(args)) is not None], None)  # type: ignore[arg-type]
    return check

_GTFO_CHECKS = {
    "awk": _check_awk, "gawk": _check_awk, "mawk": _check_awk, "nawk": _check_awk,
    "busybox-awk": _check_awk, "sed": _check_sed, "gsed": _check_sed, "git": _check_git, "tar": _check_tar,
    "gtar": _check_tar, "bsdtar": _check_tar,
    "rg": _deny_prefix(("--pre",), "rg option runs a preprocessor command"),
    "zip": _deny_prefix(("-TT", "--unzip-command", "-T"), "zip test option runs a command"),
    "rsync": _deny_prefix(("-e", "--rsh", "--rsync-path"), "rsync option runs a remote shell"),
    "ssh": _deny_prefix(("-o", "-F"), "ssh option can run local commands"),
    "scp": _deny_prefix(("-o", "-S", "-F"), "scp option can run commands"),
    "chmod": _check_chmod, "uniq": _check_uniq, "date": _check_date,
    "jq": _chain(_deny_prefix(("-L", "--library-path", "import ", "include "), "jq module loading reads files"),
                 lambda args: _gtfo("jq env/$ENV reads the environment") if any(
                     re.search(r"\benv\b|\$ENV|\$__loc__|input_filename", a) for a in args) else None),
    "install": _check_chmod,
    "sort": _chain(_deny_prefix(("--compress-program",), "sort option runs a program"),
                   _writes_via(("-o", "--output"), "sort -o")),
    "tree": _writes_via(("-o",), "tree -o"), "file": _writes_via(("-C", "--compile"), "file -C"),
    "split": _deny_prefix(("--filter",), "split --filter runs a shell command"),
    "man": _deny_prefix(("-P", "--pager", "-H", "--html"), "man option runs a pager/browser command"),
    "dpkg": _deny_prefix(("-i", "--install"), "dpkg install runs maintainer scripts"),
    **{n: _net_check(n) for n in ("curl", "wget", "aria2c", "http", "httpie", "xh")},
}
