"""The agent's copy gets the workspace's latest commits, with every secret path left out of all of them.

:func:`import_history` reads ``git fast-export --no-data`` of the real repository's last N
commits (commits, trees and paths only: no file content), drops every file change whose path
is secret (any commit, any time), and writes what is left with ``git fast-import`` into the
copy's fresh repository, after giving it only the blobs that a kept path names (``git
pack-objects`` of exactly those ids, ``git index-pack`` in the copy). So the copy's object store never receives a secret file's bytes, in any version:
``git log -p``, ``git show``, ``git cat-file --batch-all-objects`` have nothing to reveal.
Anything in the stream it does not understand (renames, copies, tags, unknown commands) fails
the import, and the caller falls back to one snapshot commit (fail closed). Commit ids differ
from the real repository's (rewritten history); the oldest imported commit holds its whole tree.
Measured against a shallow clone plus rewrite in ``bench/workspace_history.py``.
Errors: :class:`HistoryError`.
"""

from __future__ import annotations

import subprocess
from typing import Callable

from swarmd.errors import SwarmdError

#: file modes whose data is a blob (160000, a gitlink, names a commit of another repository)
BLOB_MODES = (b"100644", b"100755", b"120000", b"644", b"755")


class HistoryError(SwarmdError, RuntimeError):
    """The history cannot be imported (names the step and why); the copy then gets a snapshot."""


def unquote(raw: bytes) -> bytes:
    """A path as git's fast-export writes it: C-style quoted when it holds special bytes."""
    if not raw.startswith(b'"'):
        return raw
    body, out, i = raw[1:-1], bytearray(), 0
    esc = {ord("n"): 10, ord("t"): 9, ord('"'): 34, ord("\\"): 92, ord("a"): 7, ord("b"): 8, ord("f"): 12,
           ord("r"): 13, ord("v"): 11}
    while i < len(body):
        c = body[i]
        if c != 92:
            out.append(c)
            i += 1
        elif body[i + 1:i + 2].isdigit():
            out.append(int(body[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(esc.get(body[i + 1], body[i + 1]))
            i += 2
    return bytes(out)


def _filtered(stream: bytes, branch: bytes, secret: Callable[[str], bool]) -> tuple[list[bytes], dict[bytes, int], int]:
    """Parse ``fast-export --no-data`` output: returns (lines of the filtered stream, the ids of
    every blob a kept path names, in order of first use, how many file changes were dropped)."""
    out: list[bytes] = []
    blobs: dict[bytes, int] = {}
    dropped = 0
    pos, n = 0, len(stream)
    while pos < n:
        end = stream.find(b"\n", pos)
        end = n if end < 0 else end
        line = stream[pos:end]
        pos = end + 1
        if line.startswith(b"data "):
            size = int(line[5:])
            out.append(line + b"\n" + stream[pos:pos + size])
            pos += size
            continue
        if line.startswith(b"commit ") or line.startswith(b"reset "):
            out.append(line.split(b" ", 1)[0] + b" refs/heads/" + branch)
            continue
        if line.startswith((b"mark :", b"author ", b"committer ", b"from ", b"merge ", b"encoding ")) \
                or line in (b"", b"deleteall"):
            out.append(line)
            continue
        if line.startswith(b"M "):
            _, mode, ref, path = line.split(b" ", 3)
            if secret(unquote(path).decode("utf-8", "surrogateescape")):
                dropped += 1
                continue
            if mode in BLOB_MODES:
                blobs.setdefault(ref, len(blobs))
            elif mode != b"160000":
                raise HistoryError(f"fast-export: unknown file mode {mode[:20]!r}")
            out.append(line)
            continue
        if line.startswith(b"D "):
            if secret(unquote(line[2:]).decode("utf-8", "surrogateescape")):
                dropped += 1
                continue
            out.append(line)
            continue
        raise HistoryError(f"fast-export: unexpected command {line[:40]!r} (renames, copies and tags are not imported)")
    return out, blobs, dropped


def import_history(real: str, tree: str, branch: str, commits: int, secret: Callable[[str], bool],
                   git: list[str], env: dict[str, str], timeout: float = 300) -> int:
    """Import the last ``commits`` commits of ``HEAD`` of repository ``real`` into the
    freshly initialised repository at ``tree``, on ``refs/heads/<branch>``, leaving out every
    file change whose workspace-relative path ``secret(path)`` calls secret. ``git``: the
    command prefix (``["git", "-c", ...]``), ``env``: its environment. Returns how many file
    changes were left out. Raises :class:`HistoryError` (nothing usable imported: the caller
    makes a snapshot instead) when a git step fails or the stream holds what is not understood;
    ``subprocess.TimeoutExpired`` after ``timeout`` seconds per step."""
    exp = subprocess.run([*git, "fast-export", "--no-data", "--signed-tags=strip", "--tag-of-filtered-object=drop",
                          "--reencode=yes", f"--max-count={commits}", "HEAD"],
                         cwd=real, env=env, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if exp.returncode != 0:
        raise HistoryError(f"git fast-export in {real} failed: {exp.stderr.decode('utf-8', 'replace').strip()[:300]}")
    lines, blobs, dropped = _filtered(exp.stdout, branch.encode("utf-8", "surrogateescape"), secret)
    # exactly the kept blobs, as one pack (compressed data and deltas reused only when their base
    # is among them: pack-objects never writes an object it was not given)
    pack = subprocess.Popen([*git, "pack-objects", "--stdout", "-q", "--window=0"], cwd=real, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    index = subprocess.Popen([*git, "index-pack", "--stdin"], cwd=tree, env=env, stdin=pack.stdout,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert pack.stdin is not None and pack.stdout is not None
    pack.stdout.close()
    try:
        pack.stdin.write(b"".join(oid + b"\n" for oid in blobs))
        pack.stdin.close()
    except BrokenPipeError:
        pass
    for proc, what, where in ((pack, "pack-objects", real), (index, "index-pack", tree)):
        err = proc.stderr.read() if proc.stderr else b""     # a few lines at most (-q)
        if proc.wait(timeout=timeout) != 0:
            raise HistoryError(f"git {what} in {where} failed: {err.decode('utf-8', 'replace').strip()[:300]}")
    imp = subprocess.run([*git, "fast-import", "--quiet", "--done"], cwd=tree, env=env, capture_output=True,
                         input=b"\n".join(lines) + b"\ndone\n", timeout=timeout)
    if imp.returncode != 0:
        raise HistoryError(f"git fast-import in {tree} failed: {imp.stderr.decode('utf-8', 'replace').strip()[:300]}")
    return dropped

