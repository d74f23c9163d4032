"""Policy file loading and validation.

A policy is a YAML file (the shipped default is ``swarmd/policy.yaml`` in the package)
validated by the pydantic v2 models below (every model forbids unknown keys)
through :mod:`swarmd.validation`.  Every problem is reported in one
:class:`PolicyError`, each naming the file, the line, the key path
(``rules[3].decision``), what was expected and what was found.

To add a policy key: add a field (with a default, so older files stay valid)
to the section's model below; validators raise
:class:`swarmd.validation.Invalid` naming the key, expected and found.

Glob patterns in the policy are compiled once, at load time, into regular
expressions (see :func:`compile_globs`), so deciding never compiles a regex.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from swarmd.validation import InputError, Invalid, YamlDoc, parse_yaml, read_yaml, short, validate_yaml

DecisionName = Literal["allow", "deny", "ask"]
ToolName = Literal["shell", "read_file", "write_file", "http_get"]
TOOLS: tuple[str, ...] = ("shell", "read_file", "write_file", "http_get")
SEVERITY = {"allow": 0, "ask": 1, "deny": 2}


class PolicyError(InputError):
    """A policy file that cannot be used: every problem found, each with file,
    line, key path (e.g. ``rules[3].decision``; empty for file-level
    problems), expected and found (attributes: see
    :class:`swarmd.validation.InputError`; ``key_path`` is the first
    problem's key)."""


# --------------------------------------------------------------------------- globs

def _glob_to_regex(pattern: str, *, path: bool) -> str:
    """Translate one glob to a regex body.

    ``path=True``: ``**`` matches across ``/``, ``*`` and ``?`` do not, and ``**/``
    also matches nothing (so ``**/.env`` matches ``.env``). ``path=False``: ``*``
    matches anything (used for program names, arguments and hosts).
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if path and pattern.startswith("**", i):
                if pattern.startswith("**/", i):
                    out.append("(?:.*/)?")
                    i += 3
                    continue
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*" if path else ".*")
        elif c == "?":
            out.append("[^/]" if path else ".")
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern.startswith("[!", i) or pattern.startswith("[]", i) else i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile_globs(patterns: list[str], *, path: bool = False, ignore_case: bool = False) -> re.Pattern[str] | None:
    """Compile glob ``patterns`` into one anchored regex (None for an empty list).

    Raises ``re.error`` for a pattern that cannot be compiled.
    """
    if not patterns:
        return None
    body = "|".join(f"(?:{_glob_to_regex(p, path=path)})" for p in patterns)
    return re.compile(rf"\A(?:{body})\Z", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def expand_home(pattern: str) -> str:
    """Expand a leading ``~`` in a path glob to the real home directory."""
    if pattern == "~" or pattern.startswith("~/"):
        return os.path.expanduser("~") + pattern[1:]
    return pattern


# --------------------------------------------------------------------------- models

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_list(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


def _check_glob(p: str) -> str:
    try:
        compile_globs([p])
    except re.error as e:
        raise Invalid(((), "a valid glob pattern", f"{p!r}, which does not compile ({e})")) from None
    return p


Globs = Annotated[list[Annotated[str, Field(min_length=1), AfterValidator(_check_glob)]], Field(default_factory=list)]


class FilesPolicy(_Model):
    """``files:`` section: where reads/writes may go besides the workspace."""

    read_outside_workspace: Globs
    """Absolute path globs (``~`` allowed) readable outside the workspace."""
    write_outside_workspace: Globs
    """Absolute path globs writable outside the workspace (e.g. ``/dev/null``)."""
    secrets: Globs
    """Extra always-denied path globs, added to the built-in list in ``paths.py``."""

    @field_validator("read_outside_workspace", "write_outside_workspace", "secrets")
    @classmethod
    def _absolute(cls, v: list[str]) -> list[str]:
        Invalid.raise_any(((i,), "an absolute path glob (starting with '/', '~' or '**/')", repr(p))
                          for i, p in enumerate(v) if not p.startswith(("/", "~", "**/")))
        return v


class UrlsPolicy(_Model):
    """``urls:`` section for ``http_get``."""

    schemes: list[Literal["https", "http"]] = Field(default_factory=lambda: ["https"])
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(default_factory=lambda: [443])
    allow_networks: list[str] = Field(default_factory=list)
    """CIDRs exempt from the public-address requirement (tests use 127.0.0.0/8)."""
    deny_hosts: Globs
    max_redirects: Annotated[int, Field(ge=0, le=20)] = 5

    @field_validator("allow_networks")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        bad = []
        for i, c in enumerate(v):
            try:
                ipaddress.ip_network(c, strict=False)
            except ValueError:
                bad.append(((i,), "a CIDR network such as '127.0.0.0/8'", repr(c)))
        Invalid.raise_any(bad)
        return v


class ShellPolicy(_Model):
    """``shell:`` section: how arguments of programs are judged."""

    max_length: Annotated[int, Field(ge=1, le=1_000_000)] = 8192
    text_args: Globs
    """Programs whose arguments are never file paths (e.g. ``echo``)."""
    write_args: Globs
    """Programs whose operands are written (judged as writes, e.g. ``touch``)."""


class ExecutionPolicy(_Model):
    """``execution:`` section: limits applied by ``execute.py`` (units in names)."""

    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30
    cpu_s: Annotated[int, Field(ge=1, le=3600)] = 30
    memory_mb: Annotated[int, Field(ge=16, le=65536)] = 1024
    file_size_mb: Annotated[int, Field(ge=1, le=65536)] = 64
    max_processes: Annotated[int, Field(ge=1, le=4096)] = 64
    max_output_bytes: Annotated[int, Field(ge=256, le=64 * 1024 * 1024)] = 64 * 1024
    max_write_bytes: Annotated[int, Field(ge=1, le=1024 * 1024 * 1024)] = 10 * 1024 * 1024
    http_timeout_s: Annotated[float, Field(gt=0, le=600)] = 20


class SandboxPolicy(_Model):
    """``sandbox:`` section: how ``sandbox.py`` confines every shell command
    (bubblewrap). ``network``: default False, the command has no network at
    all (``--unshare-net``); True: still ``--unshare-net``, with HTTP(S) only
    through swarmd's filtering proxy (``netproxy.py``: hosts the ``http_get``
    rules allow, public addresses only, pinned). ``write_cap_mb``:
    MiB a command may add to the workspace's filesystem (free space is watched
    while it runs; the command is killed past it). ``tmp_size_mb``: size of
    the private ``/tmp`` (which holds the private HOME). ``open_files``:
    RLIMIT_NOFILE. ``tmp_inodes``: inodes of ``/tmp`` + ``/dev/shm`` (one tmpfs of
    ``tmp_size_mb``). ``write_cap_inodes``: inodes a command may add to the workspace's
    filesystem (watched like ``write_cap_mb``). ``cpu_cores``: CPU share of one objective's
    envelope (cgroup CFS quota, cores). ``mask``: extra workspace-relative globs bound over with an
    empty file (besides the built-in and ``files.secrets`` lists).
    ``protect``: workspace-relative globs mounted read-only inside the
    sandbox (files that run code later: git hooks, editor tasks).
    ``max_changeset_entries``: over this many entries an objective's change set
    is not applied entry by entry; the whole set asks (``workspace.changeset-too-large``;
    red team rt-e001 landed ~100,000 files under the write cap).
    ``history_commits``: how many of the workspace's latest commits the agent's copy
    gets, every secret path (of any of them) left out of all of them
    (:func:`workspace.make_copy`); 0: one snapshot commit, no history (red team
    rt-b064..b080: ``git log``/``show``/``blame``/``diff HEAD~1`` in the copy)."""

    network: bool = False
    write_cap_mb: Annotated[int, Field(ge=1, le=1024 * 1024)] = 256
    tmp_size_mb: Annotated[int, Field(ge=1, le=64 * 1024)] = 128
    tmp_inodes: Annotated[int, Field(ge=64, le=10_000_000)] = 16384
    write_cap_inodes: Annotated[int, Field(ge=16, le=100_000_000)] = 20_000
    cpu_cores: Annotated[float, Field(gt=0, le=1024)] = 1.0
    open_files: Annotated[int, Field(ge=16, le=65536)] = 1024
    max_changeset_entries: Annotated[int, Field(ge=1, le=10_000_000)] = 2000
    history_commits: Annotated[int, Field(ge=0, le=100_000)] = 50
    mask: Globs
    protect: Globs


class AdmissionPolicy(_Model):
    """``admission:`` section (optional): objectives the daemon refuses at
    admission (they end ``failed`` and never run). ``deny_actions``: action
    names (globs, e.g. ``agent``); ``deny_tags``: objective tags (globs, e.g.
    ``untrusted-*``). Empty lists (the default) refuse nothing."""

    deny_actions: Globs
    deny_tags: Globs


class Rule(_Model):
    """One entry of ``rules:``. All matchers given must match (AND); lists are OR.

    ``program``/``subcommand``/``args_any``/``args_all`` apply to ``shell``;
    ``path`` to ``read_file``/``write_file`` (and to shell operands judged as
    reads/writes); ``host`` to ``http_get``.
    """

    id: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")]
    tool: list[ToolName]
    decision: DecisionName
    reason: Annotated[str, Field(min_length=1)]
    program: Globs
    subcommand: Globs
    args_any: Globs
    args_all: Globs
    path: Globs
    host: Globs

    @field_validator("tool", mode="before")
    @classmethod
    def _tool_list(cls, v: Any) -> Any:
        return _as_list(v)

    @model_validator(mode="after")
    def _check(self) -> "Rule":
        shell_only = [k for k in ("program", "subcommand", "args_any", "args_all") if getattr(self, k)]
        bad = []
        if not self.tool:
            bad.append((("tool",), "at least one tool", "an empty list"))
        if shell_only and self.tool != ["shell"]:
            bad.append((("tool",), f"shell only when using {', '.join(shell_only)}", short(self.tool)))
        if self.path and not set(self.tool) <= {"read_file", "write_file"}:
            bad.append((("tool",), "read_file and/or write_file only when using path", short(self.tool)))
        if self.host and self.tool != ["http_get"]:
            bad.append((("tool",), "http_get only when using host", short(self.tool)))
        Invalid.raise_any(bad)
        return self



class CompiledRule:
    """A :class:`Rule` with its globs compiled (built once per policy; hot path)."""

    __slots__ = ("id", "decision", "reason", "_program", "_subcommand", "_args_any", "_args_all",
                 "_path_abs", "_path_rel", "_host", "_has_path")

    def __init__(self, rule: Rule):
        self.id, self.decision, self.reason = rule.id, rule.decision, rule.reason
        self._program = compile_globs(rule.program)
        self._subcommand = compile_globs(rule.subcommand)
        self._args_any = compile_globs(rule.args_any)
        self._args_all = compile_globs(rule.args_all)
        self._host = compile_globs(rule.host, ignore_case=True)
        self._path_abs = compile_globs([expand_home(p) for p in rule.path if p.startswith(("/", "~"))], path=True)
        self._path_rel = compile_globs([p for p in rule.path if not p.startswith(("/", "~"))], path=True)
        self._has_path = bool(rule.path)

    def matches_shell(self, program: str, args: list[str]) -> bool:
        """True when this rule matches a simple command ``program args...``."""
        if self._program is not None and not self._program.match(program):
            return False
        rest = args
        if self._subcommand is not None:
            k = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
            if k is None or not self._subcommand.match(args[k]):
                return False
            rest = args[k + 1:]
        if self._args_any is not None and not any(self._args_any.match(a) for a in args):
            return False
        return self._args_all is None or all(self._args_all.match(a) for a in rest)

    def matches_path(self, real: str, rel: str | None) -> bool:
        """True when this rule matches a resolved path (``rel``: relative to the workspace or None)."""
        if not self._has_path:
            return True
        if self._path_abs is not None and self._path_abs.match(real):
            return True
        return rel is not None and self._path_rel is not None and bool(self._path_rel.match(rel))

    def matches_host(self, host: str) -> bool:
        """True when this rule matches a (lower-case) host name or IP literal."""
        return self._host is None or bool(self._host.match(host))


class CompiledPolicy:
    """Everything :class:`Policy` needs at decide time, as plain attributes:
    ``by_tool`` (tool -> compiled rules in file order) and compiled matchers
    ``read_outside``, ``write_outside``, ``secrets``, ``text_args``,
    ``write_args``, ``deny_hosts``, ``allow_networks``, ``deny_actions``,
    ``deny_tags``."""

    def __init__(self, p: "Policy"):
        self.by_tool = {t: tuple(CompiledRule(r) for r in p.rules if t in r.tool) for t in TOOLS}
        self.read_outside = compile_globs([expand_home(x) for x in p.files.read_outside_workspace], path=True)
        self.write_outside = compile_globs([expand_home(x) for x in p.files.write_outside_workspace], path=True)
        self.secrets = compile_globs([expand_home(x) for x in p.files.secrets], path=True)
        self.text_args = compile_globs(p.shell.text_args)
        self.write_args = compile_globs(p.shell.write_args)
        self.deny_hosts = compile_globs(p.urls.deny_hosts, ignore_case=True)
        self.allow_networks = tuple(ipaddress.ip_network(c, strict=False) for c in p.urls.allow_networks)
        self.deny_actions = compile_globs(p.admission.deny_actions)
        self.deny_tags = compile_globs(p.admission.deny_tags)


class Policy(_Model):
    """The whole policy file. Build with :func:`load_policy` or :func:`parse_policy`."""

    version: Literal[1]
    files: FilesPolicy = Field(default_factory=FilesPolicy)
    urls: UrlsPolicy = Field(default_factory=UrlsPolicy)
    shell: ShellPolicy = Field(default_factory=ShellPolicy)
    execution: ExecutionPolicy = Field(default_factory=ExecutionPolicy)
    sandbox: SandboxPolicy = Field(default_factory=SandboxPolicy)
    admission: AdmissionPolicy = Field(default_factory=AdmissionPolicy)
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: list[Rule]) -> list[Rule]:
        first: dict[str, int] = {}
        bad = []
        for i, r in enumerate(rules):
            if r.id in first:
                bad.append(((i, "id"), "unique rule ids", f"{r.id!r}, already the id of rules[{first[r.id]}]"))
            first.setdefault(r.id, i)
        Invalid.raise_any(bad)
        return rules

    @cached_property
    def fast(self) -> CompiledPolicy:
        """The compiled form (built on first use, then a plain attribute)."""
        return CompiledPolicy(self)

    def model_post_init(self, _ctx: Any) -> None:
        """pydantic hook after validation: compiles the policy (:attr:`fast`) at load,
        so that deciding never compiles a regex."""
        self.fast  # noqa: B018 - compile now, so that deciding never compiles a regex

    def rules_for(self, tool: str) -> "tuple[CompiledRule, ...]":
        """Compiled rules mentioning ``tool``, in file order."""
        return self.fast.by_tool.get(tool, ())


# --------------------------------------------------------------------------- loading

def parse_policy(text: str, file: str = "<string>") -> Policy:
    """Parse and validate policy YAML ``text`` (``file``: the name shown in problems).

    Returns a :class:`Policy`. Raises :class:`PolicyError` listing every
    problem: YAML syntax errors, a non-mapping document, schema violations
    and bad globs.
    """
    return _validated(parse_yaml(text, file, PolicyError))


def load_policy(path: str | os.PathLike[str] = "policy.yaml") -> Policy:
    """Load and validate the policy file at ``path``.

    Returns a :class:`Policy` (immutable; safe to share between governors).
    Raises :class:`PolicyError` when the file is missing or unreadable, is not
    valid YAML, or does not match the schema (every problem, each with key
    path, line, expected and found).
    """
    return _validated(read_yaml(path, PolicyError))


def _validated(doc: YamlDoc) -> Policy:
    try:
        return validate_yaml(Policy, doc, PolicyError)
    except re.error as e:  # each glob compiled alone; a combination that does not (never seen)
        raise PolicyError(doc.file, "", "valid glob patterns", str(e)) from None


@dataclass(frozen=True, slots=True)
class Decision:
    """The governor's answer for one action.

    ``decision`` is ``"allow"``, ``"deny"`` or ``"ask"``; ``rule`` is the id of the
    rule that produced it: a policy rule id (from ``rules:`` in the YAML), or a
    built-in id from the code (``shell.*``, ``files.*``, ``url.*``, ``default.*``,
    ``governor.*``; listed in docs/governor.md); ``reason`` is for humans.
    """

    decision: DecisionName
    rule: str
    reason: str


def strictest(decisions: "list[Decision]", default: Decision | None) -> Decision:
    """The most severe decision (deny > ask > allow; first wins ties), or ``default`` if empty."""
    best: Decision | None = None
    for d in decisions:
        if best is None or SEVERITY[d.decision] > SEVERITY[best.decision]:
            best = d
    return best or default


def rule_decision(rules: "list[CompiledRule] | tuple[CompiledRule, ...]", default: Decision) -> Decision:
    """Decision from matched policy rules (deny wins over ask over allow), or ``default``."""
    return strictest([Decision(r.decision, r.id, r.reason) for r in rules], default)
