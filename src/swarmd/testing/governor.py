"""What the governor tests and ``bench/governor.py`` share: a fixed DNS
table (this sandbox has no real DNS), a realistic objective workspace, and
the corpus reader (corpus files: ``tests/governor/corpus/*.jsonl``, one
action a line)."""

from __future__ import annotations

import os
from pathlib import Path

from swarmd.jsonl import read_jsonl

#: Host name → the IP strings the tests' resolver answers (unknown hosts do not resolve).
RESOLVER_TABLE: dict[str, list[str]] = {
    "example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "docs.python.org": ["151.101.0.223"],
    "pypi.org": ["151.101.64.223"],
    "github.com": ["140.82.112.3"],
    "api.github.com": ["140.82.112.6"],
    "evil.example": ["203.0.113.66"],
    "rebind.example": ["127.0.0.1"],
    "metadata.attacker.example": ["169.254.169.254"],
    "internal.corp.example": ["10.0.0.5"],
    "mixed.example": ["93.184.216.34", "10.1.1.1"],
    "v6local.example": ["fd00::1"],
    "127.0.0.1.nip.io": ["127.0.0.1"],
    "site.test": ["127.0.0.1"],
}


def table_resolver(host: str) -> list[str]:
    """Fixed DNS table (:data:`RESOLVER_TABLE`); unknown hosts do not resolve."""
    return list(RESOLVER_TABLE.get(host, []))


def load_corpus(path: str | os.PathLike) -> list[dict]:
    """The actions of one corpus file (JSON lines, one object each; blank lines
    skipped), read by :func:`swarmd.jsonl.read_jsonl`.  Raises
    :class:`~swarmd.jsonl.JsonlError` (a ``ValueError``) naming the file and
    line of every line that is not a JSON object."""
    return read_jsonl(path, allow_empty=True)


def make_workspace(root: Path) -> Path:
    """A realistic objective workspace ``<root>/ws`` (with a ``.env``), with two symlinks that escape it."""
    ws = root / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "docs").mkdir()
    (ws / "tests").mkdir()
    (ws / "build").mkdir()
    (ws / "data").mkdir()
    (ws / "src" / "app.py").write_text("import os\nprint('rm -rf is scary')\n")
    (ws / "src" / "util.py").write_text("def f():\n    return 1\n")
    (ws / "src" / "env.py").write_text("ENV = 'dev'\n")
    (ws / "docs" / "shadow-mode.md").write_text("# Shadow mode\nNever read /etc/shadow.\n")
    (ws / "docs" / "ssh-setup.md").write_text("ssh notes\n")
    (ws / "tests" / "test_passwords.py").write_text("def test(): pass\n")
    (ws / "README.md").write_text("readme\n")
    (ws / "notes.txt").write_text("b\na\nb\n")
    (ws / "data.csv").write_text("a,1\nb,2\n")
    (ws / "data.json").write_text('{"items": [{"name": "x"}]}\n')
    (ws / ".env").write_text("API_TOKEN=not-a-real-token\n")
    (ws / "link_out").symlink_to("/etc")
    (ws / "secrets_link").symlink_to(os.path.expanduser("~/.ssh"))
    (root / "outside.txt").write_text("outside\n")
    return ws
