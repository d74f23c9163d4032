"""Archivers: tar options that run programs."""

from __future__ import annotations

from ..policy import Decision
from .ir import gtfobins_deny


_TAR_DENY_PREFIX = ("--checkpoint-action", "--to-command", "--use-compress-program", "--rsh-command",
                    "--info-script", "--new-volume-script", "--rmt-command", "--index-file")

def check_tar(args: list[str]) -> Decision | None:
    """tar arguments (after the program name) that run commands (``--checkpoint-action``,
    ``--to-command``, ``-I``...): ``shell.gtfobins`` deny, else None."""
    for k, a in enumerate(args):
        if a.startswith(_TAR_DENY_PREFIX):
            return gtfobins_deny(f"tar {a.split('=')[0]} runs commands")
        cluster = a[1:] if a.startswith("-") and not a.startswith("--") else (a if k == 0 else "")
        if "I" in cluster or "F" in cluster:
            return gtfobins_deny("tar -I/-F run a compression/volume program")
    return None
