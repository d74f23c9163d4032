"""swarmd governor: decides ``allow``/``deny``/``ask`` for every tool action before it runs.

Public API::

    from swarmd.governor import Governor, Decision, load_policy, PolicyError
    policy = load_policy("policy.yaml")     # raises PolicyError listing every problem (file:line, key, expected, found)
    gov = Governor(policy, resolver=None)   # resolver: Callable[[str], list[str]] | None
    d = gov.decide(tool="shell", args={"command": "ls -la"}, workspace="/path/ws")

Execution of allowed actions: :func:`swarmd.governor.execute.run_tool`.
Audit log: :class:`swarmd.governor.audit.AuditLog` (SQLite) or
:class:`swarmd.governor.audit.AuditBuffer` (workers: rows travel to the daemon).
See docs/governor.md.
"""

from .audit import AuditBuffer, AuditLog, AuditRow, audit_row, query_audit, redact
from .governor import Governor, Judgement
from .policy import Decision, Policy, PolicyError, load_policy, parse_policy

__all__ = ["AuditBuffer", "AuditLog", "AuditRow", "Decision", "Governor", "Judgement", "Policy", "PolicyError",
           "audit_row", "load_policy", "parse_policy", "query_audit", "redact"]
