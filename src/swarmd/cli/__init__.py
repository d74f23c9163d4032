"""The command lines: ``swarmctl`` (:mod:`swarmd.cli.swarmctl`) and ``swarmd`` (:mod:`swarmd.cli.daemon`).

One module per command group, each with ``register(subparsers)`` adding parsers whose
``set_defaults(func=cmd_...)`` point at functions ``(args) -> exit code``:
:mod:`~swarmd.cli.objectives` (ask, submit, status, show, logs), :mod:`~swarmd.cli.costs`
(report, cost-analysis), :mod:`~swarmd.cli.governor` (policy, audit, approvals, approve,
reject), :mod:`~swarmd.cli.memory` (feedback, memory), :mod:`~swarmd.cli.traces` (traces),
:mod:`~swarmd.cli.daemon` (``swarmd``, ``swarmd worker``); :mod:`~swarmd.cli.common` holds
what they share (the Redis URL's resolution order, consoles and tables, :func:`~swarmd.cli.common.run`).

Commands report problems by raising :class:`~swarmd.errors.BadInput` /
:class:`~swarmd.errors.Unreachable`, which :func:`~swarmd.cli.common.run` turns into the
exit code of :mod:`swarmd.errors`; JSONL input goes through :func:`swarmd.jsonl.read_jsonl`.
``python -m swarmd.cli`` runs ``swarmctl``; ``python -m swarmd`` runs ``swarmd``.
"""

from swarmd.cli.swarmctl import main

__all__ = ["main"]
