"""The :class:`Governor`: one entry point that judges every proposed tool action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from loguru import logger

from .audit import AuditLog
from .paths import PathProblem, in_copy, judge_path, resolve, workspace_root
from .policy import Decision, Policy
from .sandbox import Confinement, probe
from .shell import Parsed, judge_command
from .urls import Resolver, UrlVerdict, default_resolver, judge_url, redirect_target

#: Exact argument keys each tool takes.
TOOL_ARGS: dict[str, frozenset[str]] = {
    "shell": frozenset({"command"}),
    "read_file": frozenset({"path"}),
    "write_file": frozenset({"path", "content"}),
    "http_get": frozenset({"url"}),
}


@dataclass(frozen=True, slots=True)
class Judgement:
    """A decision plus what execution needs: the parsed shell line, the checked
    URL (with pinned IPs), or the resolved real path of a file and the workspace root."""

    decision: Decision
    parsed: Parsed | None = None
    url: UrlVerdict | None = None
    real_path: str | None = None
    root: str | None = None


def _deny(rule: str, reason: str) -> Judgement:
    return Judgement(Decision("deny", rule, reason))


class Governor:
    """Decides ``allow``/``deny``/``ask`` for tool actions under a :class:`Policy`.

    ``resolver``: host -> list of IP strings (default ``socket.getaddrinfo``);
    tests inject a fixed table; it is used only when an allowed ``http_get``
    runs, never to decide. ``audit``: an :class:`AuditLog` that receives
    every decision made with :meth:`decide` (optional). ``confinement``: how
    shell commands will be confined (default :func:`sandbox.probe`, probed once
    per process); without a sandbox, shell lines that are not harmless by
    construction are ``ask``. The policy is compiled once at load time; the
    governor keeps no per-call state and is thread-safe.
    """

    def __init__(self, policy: Policy, resolver: Resolver | None = None, audit: AuditLog | None = None,
                 confinement: Confinement | None = None):
        if not isinstance(policy, Policy):
            raise TypeError("policy must be a swarmd.governor.Policy (use load_policy)")
        self.policy = policy
        self.resolver: Resolver = resolver or default_resolver
        self.audit = audit
        self.confinement = confinement if confinement is not None else probe()

    # ------------------------------------------------------------------ public
    def decide(self, tool: str, args: Mapping[str, Any], workspace: str, *,
               objective_id: str | None = None) -> Decision:
        """Judge one action. Returns a :class:`Decision`; never raises.

        ``tool``: ``shell`` | ``read_file`` | ``write_file`` | ``http_get``;
        ``args``: ``{"command"}``, ``{"path"}``, ``{"path", "content"}`` or
        ``{"url"}`` (strings); ``workspace``: absolute path of the objective's
        workspace directory. Malformed input gives ``deny`` with a
        ``governor.*`` rule. The decision is also written to the audit log
        (when one was given) under ``objective_id``.
        """
        d = self.judge(tool, args, workspace).decision
        self.record(objective_id, tool, args, d)
        return d

    def record(self, objective_id: str | None, tool: str, args: Any, decision: Decision) -> None:
        """Write ``decision`` to the audit log, if one was given. Never raises
        (a failing audit write is logged as an error)."""
        if self.audit is None:
            return
        try:
            self.audit.record(objective_id, tool, args, decision)
        except Exception as e:  # noqa: BLE001 - auditing must not break deciding
            logger.error("governor audit write failed: {}", e)

    def check_redirect(self, current_url: str, location: str, *, objective_id: str | None = None) -> Decision:
        """Judge one redirect hop of ``http_get``: ``location`` (absolute or
        relative to ``current_url``) is checked like a fresh URL. Never raises."""
        try:
            target = redirect_target(current_url, location)
        except Exception:  # noqa: BLE001
            return Decision("deny", "url.malformed", "unparseable redirect location")
        return self.decide("http_get", {"url": target}, "/", objective_id=objective_id)

    def admit(self, action: str, tags: "list[str] | tuple[str, ...]" = ()) -> Decision:
        """Admission of one objective (its ``action`` name and ``tags``) under
        the policy's ``admission:`` section: ``deny`` (rule
        ``admission.deny-action`` or ``admission.deny-tag``) when the action or
        any tag matches, else ``allow`` (``admission.default``). Not audited
        here (the daemon audits refusals). Never raises."""
        fast = self.policy.fast
        if fast.deny_actions is not None and fast.deny_actions.match(str(action)):
            return Decision("deny", "admission.deny-action",
                            f"action {str(action)[:60]!r} is listed in admission.deny_actions")
        for tag in tags or ():
            if fast.deny_tags is not None and fast.deny_tags.match(str(tag)):
                return Decision("deny", "admission.deny-tag", f"tag {str(tag)[:60]!r} is listed in admission.deny_tags")
        return Decision("allow", "admission.default", "no admission rule refuses this objective")

    def judge(self, tool: str, args: Mapping[str, Any], workspace: str) -> Judgement:
        """Like :meth:`decide` but returns the :class:`Judgement` execution
        needs, and does not audit. Never raises."""
        try:
            return self._judge(tool, args, workspace)
        except Exception as e:  # noqa: BLE001 - hostile input must never crash the governor
            logger.exception("governor internal error")
            return _deny("governor.internal-error", f"internal error while judging ({type(e).__name__})")

    # ------------------------------------------------------------------ internals
    def _judge(self, tool: str, args: Mapping[str, Any], workspace: str) -> Judgement:
        keys = TOOL_ARGS.get(tool) if isinstance(tool, str) else None
        if keys is None:
            return _deny("governor.unknown-tool", f"unknown tool {str(tool)[:40]!r}")
        if not isinstance(args, Mapping) or set(args) != keys:
            got = sorted(map(str, args)) if isinstance(args, Mapping) else type(args).__name__
            return _deny("governor.bad-arguments", f"{tool} takes exactly {sorted(keys)}; got {got}")
        if not all(isinstance(v, str) for v in args.values()):
            return _deny("governor.bad-arguments", f"{tool} arguments must be strings")
        if tool == "http_get":
            v = judge_url(self.policy, args["url"])  # no DNS while deciding (see urls.py)
            return Judgement(v.decision, url=v)
        try:
            root = workspace_root(workspace)
        except PathProblem as e:
            return _deny("governor.bad-workspace", str(e))
        if tool == "shell":
            d, parsed = judge_command(self.policy, args["command"], root, confined=self.confinement.available)
            return Judgement(d, parsed=parsed, root=root)
        mode = "read" if tool == "read_file" else "write"
        if mode == "write" and len(args["content"]) > self.policy.execution.max_write_bytes:
            return _deny("files.too-large", f"content larger than {self.policy.execution.max_write_bytes} bytes")
        d = judge_path(self.policy, args["path"], mode, root)
        real = None
        if d.decision != "deny":  # also for ask: an approved action runs on the path judged here
            real = resolve(in_copy(args["path"], root), root)[1]
        return Judgement(d, real_path=real, root=root)
