"""Small programs the file and fetch tools run INSIDE the sandbox, so that the worker never
opens a path an agent chose nor parses a reply a server sent.

Each is Python source run as ``/usr/bin/python3 -I -S -c SOURCE ARGS...`` through the same
sandbox, limits and timeout as a shell command (output: stdout+stderr):

- ``FILE_TOOL read PATH LIMIT`` / ``FILE_TOOL write PATH`` (stdin is the content): regular
  files only (``O_NOFOLLOW``, ``fstat``), else exit :data:`REFUSED`; other errors exit
  :data:`FAILED` with ``ErrorName: message``.
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

FILE_TOOL = r"""
import os, stat, sys
KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
         (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"))
def refuse(mode):
    kind = next((n for f, n in KINDS if f(mode)), "not a regular file")
    sys.stdout.write("refused: %s is %s; only regular files are read or written\n" % (sys.argv[2], kind))
    sys.exit(3)
op, path = sys.argv[1], sys.argv[2]
flags = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
try:
    try:
        st = os.lstat(path)  # sockets and FIFOs are refused before any open() (ENXIO, blocking)
        if not stat.S_ISREG(st.st_mode):
            refuse(st.st_mode)
    except FileNotFoundError:
        if op == "read":
            raise
        os.makedirs(os.path.dirname(path), exist_ok=True)
    if op == "read":
        limit = int(sys.argv[3])
        fd = os.open(path, os.O_RDONLY | flags)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            refuse(st.st_mode)
        out, left = sys.stdout.buffer, limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 65536))
            if not chunk:
                break
            out.write(chunk)
            left -= len(chunk)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o644)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            refuse(st.st_mode)
        os.ftruncate(fd, 0)
        data = sys.stdin.buffer.read()
        while data:
            data = data[os.write(fd, data):]
except OSError as e:
    sys.stdout.write("%s: %s\n" % (type(e).__name__, e.strerror or e))
    sys.exit(2)
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
