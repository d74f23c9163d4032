"""The swarmd daemon: one process that admits objectives, dispatches them to
RQ workers and persists what the workers report.

Where each responsibility lives:

* :mod:`swarmd.daemon.main` — start-up of the ``swarmd`` process (its
  command line is :mod:`swarmd.cli.daemon`): logging, finding or starting
  Redis, starting the daemon and (``--workers N``) the supervisor.
* :mod:`swarmd.daemon.service` — :class:`~swarmd.daemon.service.Daemon`:
  the main loop, heartbeat and config reload on SIGHUP, composing
  :mod:`~swarmd.daemon.streams` (both streams read under consumer groups),
  :mod:`~swarmd.daemon.admission` (validation, governor admission,
  enqueuing), :mod:`~swarmd.daemon.events` (worker events persisted to the
  store) and :mod:`~swarmd.daemon.recovery`.
* :mod:`swarmd.daemon.supervisor` — starts, restarts (with backoff) and stops
  the local worker processes, passing each its Redis URL, config file and data
  directory explicitly.
* :mod:`swarmd.daemon.redis_server` — finds a Redis or runs swarmd's own
  ``redis-server`` (password-protected, append-only file in the data dir).
* :mod:`swarmd.daemon.notify` — systemd ``sd_notify`` (ready, status, watchdog).
* :mod:`swarmd.daemon.recovery` — RQ upkeep: a dead supervised worker's
  jobs handed back to RQ at once, abandoned and lost jobs, the scheduler's
  due retries, failed jobs persisted.
* :mod:`swarmd.daemon.report_jobs` — the scheduled daily cost report and
  metrics refresh; :mod:`swarmd.daemon.metrics` — the Prometheus metrics.
* :mod:`swarmd.daemon.memory_jobs` — the scheduled learning-memory jobs:
  calibration-audit drain and daily consolidation.

The data directory is resolved once (:func:`swarmd.paths.data_dir`) and
passed to everything that needs it; the daemon never writes ``os.environ``.
What runs each objective is :mod:`swarmd.workers`.
"""
