"""Nothing secret leaves: one redactor on every path out, and the git-config scrub.

:func:`redact` (strings, recursing into dicts and lists) is applied to tool outputs and errors,
audit entries, log lines (a loguru patcher, :func:`install_log_redaction`), prompts sent to
any model, and agent traces and results.  It replaces with ``[REDACTED]`` the process's own
secret values (:func:`register`, :func:`register_config`, and secret-named environment
variables and URL passwords) and credentials matched by detect-secrets' rule set plus a few
structural forms (Anthropic keys, ``Authorization:`` headers, PEM blocks).
:func:`scrub_git_config` removes credentials from a repository's config (the workspace copy
calls it).  Details: docs/design.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from typing import Any, Iterable
from urllib.parse import urlsplit

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.keyword import KeywordDetector
from detect_secrets.settings import default_settings
from loguru import logger
from pydantic import BaseModel, SecretStr

#: what a secret is replaced with
MASK = "[REDACTED]"
#: environment variable names whose values are secrets
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|_DSN|_URL\Z|\AURL\Z",
                         re.IGNORECASE)
#: shorter values are not registered (they would mask ordinary words)
MIN_SECRET_LENGTH = 6

#: forms detect-secrets does not cover (its own rules follow)
_STRUCTURAL = (
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)"),
)
#: name: value forms whose value part is replaced (group 1 kept)
_KEEP_NAME = (
    re.compile(r"(?i)(authorization\s*[:=]\s*)(?:(?:bearer|basic|token)\s+)?[^\s'\"]+"),
    re.compile(r"(?i)(x-api-key\s*[:=]\s*)[^\s'\"]+"),
    # a credential-named pair whose value looks like a literal (not code: no call, attribute or type)
    re.compile(r"(?i)\b((?:[a-z0-9]+[_-])*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|"
               r"access[_-]?token|auth[_-]?token|client[_-]?secret|private[_-]?key)(?:=|:[ \t]*))"
               r"(?![\s\"'])(?=[^\s&'\";()\[\]{}]*[^A-Za-z\s&'\";()\[\]{}])[^\s&'\";()\[\]{}]+(?=[\s&;,]|\Z)"),
    re.compile(r"(?i)([?&](?:[a-z0-9_\-]*(?:token|key|secret|sig|signature|password|auth)[a-z0-9_\-]*)=)[^&#\s]+"),
    re.compile(r"(://)[^/\s:@{}]+:[^/\s@{}]+(?=@)"),
)
#: values of code, not secrets: template placeholders and variables (``{pw}``, ``${TOKEN}``, ``%(pw)s``)
_PLACEHOLDER = re.compile(r"\A(?:\{.*\}|\$\{?\w+\}?|%\(\w+\)s|<\w+>)\Z")
#: lines worth the keyword and basic-auth detectors (cheap prefilter)
_CANDIDATE_LINE = re.compile(r"(?i)pass|pwd|secret|token|key|auth|cred|://[^/\s]*@")


def _rule_set() -> re.Pattern[str]:
    """detect-secrets' regex rules (every RegexBasedDetector's denylist), as one pattern."""
    bodies = []
    for cls in get_mapping_from_secret_type_to_class().values():
        if issubclass(cls, RegexBasedDetector) and cls not in (KeywordDetector, BasicAuthDetector):
            bodies += [f"(?:{rx.pattern})" for rx in cls().denylist]
    return re.compile("|".join(bodies))


_RULES = _rule_set()
_LINE_DETECTORS = (KeywordDetector(), BasicAuthDetector())


class Redactor:
    """Masks secrets in text (see the module docstring). Thread-safe; the values it knows
    only grow (:meth:`add`)."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self._env_seen = False

    def add(self, values: Iterable[str]) -> None:
        """Register secret values (shorter than :data:`MIN_SECRET_LENGTH` are ignored)."""
        new = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH} - self._values
        if not new:
            return
        with self._lock:
            self._values |= new
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def _environment(self) -> None:
        if self._env_seen:
            return
        self._env_seen = True
        self.add(v for k, v in os.environ.items() if SECRET_NAME.search(k) and not _is_plain_url(v))
        self.add(p for v in os.environ.values() if (p := _url_password(v)))

    def text(self, s: str) -> str:
        """``s`` with every secret replaced by :data:`MASK`."""
        self._environment()
        if self._pattern is not None:
            s = self._pattern.sub(MASK, s)
        for rx in _STRUCTURAL:
            s = rx.sub(MASK, s)
        s = _RULES.sub(MASK, s)
        for rx in _KEEP_NAME:
            s = rx.sub(lambda m: m.group(1) + MASK, s)
        if _CANDIDATE_LINE.search(s):
            s = "\n".join(self._line(line) if _CANDIDATE_LINE.search(line) else line for line in s.split("\n"))
        return s

    @staticmethod
    def _line(line: str) -> str:
        found: set[str] = set()
        with default_settings():
            for det in _LINE_DETECTORS:
                for sec in det.analyze_line(filename="output.txt", line=line, line_number=1):
                    v = sec.secret_value
                    if v and len(v) >= 4 and MASK not in v and not _PLACEHOLDER.match(v):
                        found.add(v)
        for v in sorted(found, key=len, reverse=True):
            line = line.replace(v, MASK)
        return line


def _url_password(v: str) -> str | None:
    if "://" not in v or "@" not in v:
        return None
    try:
        return urlsplit(v.strip()).password
    except ValueError:
        return None


def _is_plain_url(v: str) -> bool:
    """A URL-valued variable without a password (e.g. OLLAMA_URL): not itself a secret."""
    return "://" in v and _url_password(v) is None and "?" not in v


REDACTOR = Redactor()


def redact(value: Any) -> Any:
    """``value`` with secrets masked in every string, recursing into dicts, lists and
    tuples (lists come back as lists); other values unchanged. Never raises."""
    if isinstance(value, str):
        return REDACTOR.text(value)
    if isinstance(value, dict):
        return {str(k): redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def refresh_environment() -> None:
    """Read the environment's secret values again (after it changed; done once at first use)."""
    REDACTOR._env_seen = False


def register(*values: str) -> None:
    """Add the process's own secret values (API keys, passwords, tokens) to the redactor."""
    REDACTOR.add(values)
    REDACTOR.add(p for v in values if (p := _url_password(v)))


def register_config(config: Any) -> None:
    """Register every secret of a loaded configuration (a pydantic model): ``SecretStr``
    fields and passwords of URL fields (``redis_url``...), recursively."""
    def walk(obj: Any) -> None:
        if isinstance(obj, SecretStr):
            register(obj.get_secret_value())
        elif isinstance(obj, str):
            if (p := _url_password(obj)) is not None:
                register(p)
        elif isinstance(obj, BaseModel):
            for name in type(obj).model_fields:
                walk(getattr(obj, name, None))
        elif isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)
    walk(config)


_installed = [False]


def install_log_redaction() -> None:
    """Redact every loguru log line's message (a patcher; idempotent)."""
    if _installed[0]:
        return

    def patch(record: dict) -> None:
        record["message"] = REDACTOR.text(record["message"])

    logger.configure(patcher=patch)
    _installed[0] = True


def scrub_git_config(repo: str) -> list[str]:
    """Remove credentials from the git repository at ``repo`` (a work tree or a bare/``.git``
    directory): userinfo in every ``remote.*.url``/``pushurl`` and ``url.*.insteadOf``, and
    every ``http.extraheader`` / ``http.<url>.extraheader``. Returns the keys changed.
    Raises ``subprocess.CalledProcessError`` when git cannot read the config."""
    env = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": "/nonexistent"}
    git = ["git", "-C", repo, "config", "--local"]
    listed = subprocess.run([*git, "--null", "--list"], env=env, capture_output=True, check=True).stdout
    changed = []
    for item in listed.decode("utf-8", "replace").split("\0"):
        key, _, value = item.partition("\n")
        low = key.lower()
        if (low.startswith("http.") and low.endswith(".extraheader")) or (low.startswith("url.") and _userinfo(key[4:])):
            subprocess.run([*git, "--unset-all", key], env=env, capture_output=True, check=False)
            changed.append(key)
        elif low.endswith((".url", ".pushurl", ".insteadof", ".pushinsteadof")) and _userinfo(value):
            subprocess.run([*git, "--replace-all", key, _strip_userinfo(value), "^" + re.escape(value) + "$"],
                           env=env, capture_output=True, check=False)
            changed.append(key)
    return changed


def _userinfo(url: str) -> bool:
    return re.match(r"\A[a-z][a-z0-9+.-]*://[^/@]+@", url, re.IGNORECASE) is not None


def _strip_userinfo(url: str) -> str:
    return re.sub(r"\A([a-z][a-z0-9+.-]*://)[^/@]+@", r"\1", url, flags=re.IGNORECASE)
