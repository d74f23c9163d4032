"""The command lines: ``swarmctl`` (:mod:`swarmd.cli.swarmctl`) and ``swarmd`` (:mod:`swarmd.cli.daemon`).

One module per command group, each with ``register(subparsers)``:

* :mod:`swarmd.cli.objectives` — ``ask``, ``submit``, ``status``, ``show``, ``logs``
* :mod:`swarmd.cli.costs` — ``report``, ``cost-analysis``
* :mod:`swarmd.cli.governor` — ``policy check``, ``audit``, ``approvals``, ``approve``, ``reject``
* :mod:`swarmd.cli.memory` — ``feedback``, ``memory stats``, ``consolidate``, ``export``
* :mod:`swarmd.cli.traces` — ``traces list``, ``show``, ``disable``, ``export``
* :mod:`swarmd.cli.daemon` — ``swarmd`` and ``swarmd worker``
* :mod:`swarmd.cli.common` — what they share: the Redis URL (one resolution
  order, :func:`~swarmd.cli.common.redis_url`), consoles and tables, and
  :func:`~swarmd.cli.common.run`, which turns a :class:`swarmd.errors.SwarmdError`
  into its exit code (0 ok, 1 unresolved, 2 bad input, 3 daemon unreachable).

JSONL input goes through :func:`swarmd.jsonl.read_jsonl` (every bad line
reported as ``file:line: why``).  Commands report problems by raising
:class:`~swarmd.errors.BadInput` / :class:`~swarmd.errors.Unreachable`, never
by printing and returning a code themselves.

Adding a command group is a one-file change plus one line: write
``swarmd/cli/<group>.py`` with ``register(sub)`` adding parsers whose
``set_defaults(func=cmd_...)`` point at functions ``(args) -> exit code``,
then add the module to :data:`swarmd.cli.swarmctl.GROUPS`.

``python -m swarmd.cli`` runs ``swarmctl``; ``python -m swarmd`` runs ``swarmd``.
"""

from swarmd.cli.swarmctl import main

__all__ = ["main"]
