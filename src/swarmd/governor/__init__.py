"""swarmd governor: decides ``allow``/``deny``/``ask`` for every tool action before it runs.

Public API::

    from swarmd.governor import Governor, Decision, load_policy, PolicyError
    policy = load_policy("policy.yaml")     # raises PolicyError listing every problem (file:line, key, expected, found)
    gov = Governor(policy, resolver=None)   # resolver: Callable[[str], list[str]] | None
    d = gov.decide(tool="shell", args={"command": "ls -la"}, workspace="/path/ws")

Where each responsibility lives:

* :mod:`swarmd.governor.governor` — :class:`Governor`, the one entry point
  that judges every proposed tool action;
* :mod:`swarmd.governor.policy` — the policy file (loading, validation,
  compiled rules) and :class:`Decision`;
* :mod:`swarmd.governor.shell` — shell command lines: parsing and judging
  (one module per family of programs, see its docstring);
* :mod:`swarmd.governor.paths` — path resolution for ``read_file``,
  ``write_file`` and shell operands; :mod:`swarmd.governor.urls` — URL
  judging for ``http_get``;
* :mod:`swarmd.governor.sandbox` — the bubblewrap confinement every shell
  command runs in;
* :mod:`swarmd.governor.execute` — running allowed actions
  (:func:`~swarmd.governor.execute.run_tool`);
* :mod:`swarmd.governor.audit` — the audit log:
  :class:`~swarmd.governor.audit.AuditLog` (SQLite) or
  :class:`~swarmd.governor.audit.AuditBuffer` (workers: rows travel to the daemon);
* :mod:`swarmd.governor.effects` — security measured by effects on a
  canary-seeded throwaway root (``bench/governor_effects.py``).

Its command line is :mod:`swarmd.cli.governor`.  See docs/governor.md.
"""

from .audit import AuditBuffer, AuditLog, AuditRow, audit_row, query_audit, redact
from .governor import Governor, Judgement
from .policy import Decision, Policy, PolicyError, load_policy, parse_policy
from .secrets import install_log_redaction

install_log_redaction()  # every log line of a process that uses the governor goes through the redactor

__all__ = ["AuditBuffer", "AuditLog", "AuditRow", "Decision", "Governor", "Judgement", "Policy", "PolicyError",
           "audit_row", "load_policy", "parse_policy", "query_audit", "redact"]
