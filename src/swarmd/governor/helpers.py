"""Small programs the file and fetch tools run INSIDE the sandbox, so that the worker never
opens a path an agent chose nor parses a reply a server sent.

The file tool is a POSIX shell script run as ``/bin/sh -c FILE_TOOL sh ARGS...``, the fetch
Python source run as ``/usr/bin/python3 -I -S -c FETCH ARGS...``, both through the same
sandbox, envelope, limits and timeout as a shell command (output: stdout+stderr):

- ``FILE_TOOL read PATH LIMIT`` / ``FILE_TOOL write PATH`` (stdin is the content): regular
  files only (anything else is refused before it is opened), else exit :data:`REFUSED`;
  other errors exit :data:`FAILED` with ``ErrorName: message``.
- ``FETCH FD SCHEME HOST PORT TARGET LIMIT TIMEOUT_S``: one ``GET`` over the socket FD the
  worker connected (TLS verified for https); one JSON line ``{"status", "location",
  "truncated"}`` then at most LIMIT body bytes; errors exit :data:`FAILED`.
Details: docs/design.md.
"""

from __future__ import annotations

#: interpreter inside the sandbox (``/usr`` is mounted read-only there)
PYTHON = "/usr/bin/python3"
#: exit status: the path is not a regular file
REFUSED = 3
#: exit status: an OSError, TLS or HTTP error (the message is the output)
FAILED = 2

#: the file tool, a POSIX shell script (``sh -c FILE_TOOL sh read|write PATH [LIMIT]``) with coreutils
#: (started in a fraction of Python's time; a write execs only ``cat``, plus ``mkdir`` for a new
#: directory: every fork counts under load). Nothing else runs in the sandbox meanwhile (each sandbox
#: is one command's, its PID namespace dies with it), so the checks before the open cannot be raced.
FILE_TOOL = r"""
op=$1 p=$2
if [ -L "$p" ]; then k="a symbolic link"
elif [ -p "$p" ]; then k="a FIFO"
elif [ -S "$p" ]; then k="a socket"
elif [ -c "$p" ]; then k="a character device"
elif [ -b "$p" ]; then k="a block device"
elif [ -d "$p" ]; then k="a directory"
elif [ -e "$p" ] && [ ! -f "$p" ]; then k="not a regular file"
else k=""; fi
if [ -n "$k" ]; then echo "refused: $p is $k; only regular files are read or written"; exit 3; fi
if [ "$op" = read ]; then
    [ -e "$p" ] || { echo "FileNotFoundError: No such file or directory"; exit 2; }
    [ -r "$p" ] || { echo "PermissionError: Permission denied"; exit 2; }
    exec head -c "$(($3 + 1))" -- "$p"
fi
d=${p%/*}; d=${d:-/}
[ -d "$d" ] || mkdir -p -- "$d" 2>/dev/null || { echo "PermissionError: cannot create $d"; exit 2; }
{ [ ! -e "$p" ] || [ -w "$p" ]; } && [ -w "$d" ] || { echo "PermissionError: Permission denied"; exit 2; }
cat > "$p" || { echo "OSError: write failed"; exit 2; }
"""

FETCH = r"""
import http.client, json, socket, ssl, sys
fd, scheme, host, port, target, limit, timeout = sys.argv[1:8]
limit = int(limit)
try:
    sock = socket.socket(fileno=int(fd))
    sock.settimeout(float(timeout))
    if scheme == "https":
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    conn = http.client.HTTPConnection(host, int(port), timeout=float(timeout))
    conn.sock = sock
    conn.request("GET", target, headers={"User-Agent": "swarmd-governor/1", "Accept-Encoding": "identity"})
    resp = conn.getresponse()
    body = resp.read(limit + 1)
    head = {"status": resp.status, "location": resp.getheader("Location"), "truncated": len(body) > limit}
    sys.stdout.buffer.write(json.dumps(head).encode() + b"\n" + body[:limit])
except (OSError, http.client.HTTPException, ValueError) as e:
    sys.stdout.write("%s: %s\n" % (type(e).__name__, e))
    sys.exit(2)
"""
