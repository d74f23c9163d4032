"""swarmd governor: decides ``allow``/``deny``/``ask`` for every tool action before it runs.

Public API::

    from swarmd.governor import Governor, Decision, load_policy, PolicyError
    policy = load_policy("policy.yaml")     # raises PolicyError listing every problem (file:line, key, expected, found)
    gov = Governor(policy, resolver=None)   # resolver: Callable[[str], list[str]] | None
    d = gov.decide(tool="shell", args={"command": "ls -la"}, workspace="/path/ws")

Modules: :mod:`~swarmd.governor.governor` (:class:`Governor`, the one entry point),
:mod:`~swarmd.governor.policy` (the policy file, :class:`Decision`),
:mod:`~swarmd.governor.shell` (shell lines), :mod:`~swarmd.governor.paths` (file paths),
:mod:`~swarmd.governor.urls` (URLs), :mod:`~swarmd.governor.sandbox` (bubblewrap),
:mod:`~swarmd.governor.execute` (running allowed actions), :mod:`~swarmd.governor.audit`
(the audit log).  Command line: :mod:`swarmd.cli.governor`.  See docs/governor.md.
"""

from .audit import AuditBuffer, AuditLog, AuditRow, audit_row, query_audit, redact
from .governor import Governor, Judgement
from .policy import Decision, Policy, PolicyError, load_policy, parse_policy
from .secrets import install_log_redaction

install_log_redaction()  # every log line of a process that uses the governor goes through the redactor

__all__ = ["AuditBuffer", "AuditLog", "AuditRow", "Decision", "Governor", "Judgement", "Policy", "PolicyError",
           "audit_row", "load_policy", "parse_policy", "query_audit", "redact"]
