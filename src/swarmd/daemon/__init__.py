"""The swarmd daemon: one process that admits objectives, dispatches them to
RQ workers and persists what the workers report.

Where each responsibility lives:

* :mod:`swarmd.daemon.main` — start-up of the ``swarmd`` process (its
  command line is :mod:`swarmd.cli.daemon`): logging, finding or starting
  Redis, starting the daemon and (``--workers N``) the supervisor.
* :mod:`swarmd.daemon.service` — :class:`~swarmd.daemon.service.Daemon`:
  reads the objective stream and the worker-event stream (each under its own
  consumer group, :mod:`swarmd.constants`), governor admission, enqueuing,
  persisting events to the store, heartbeat, failed/abandoned jobs, approval
  timeouts, config reload on SIGHUP.
* :mod:`swarmd.daemon.supervisor` — starts, restarts (with backoff) and stops
  the local worker processes, passing each its Redis URL, config file and data
  directory explicitly.
* :mod:`swarmd.daemon.redis_server` — finds a Redis or runs swarmd's own
  ``redis-server`` (password-protected, append-only file in the data dir).
* :mod:`swarmd.daemon.notify` — systemd ``sd_notify`` (ready, status, watchdog).
* :mod:`swarmd.daemon.recovery` — RQ jobs as data: a dead supervised
  worker's jobs handed back to RQ at once, and the scheduler's due retries
  promoted to their queues (called by the daemon service).
* :mod:`swarmd.daemon.report_jobs` — the scheduled daily cost report and
  metrics refresh; :mod:`swarmd.daemon.metrics` — the Prometheus metrics.
* :mod:`swarmd.daemon.memory_jobs` — the scheduled learning-memory jobs:
  calibration-audit drain and daily consolidation.

The data directory is resolved once (:func:`swarmd.paths.data_dir`) and
passed to everything that needs it; the daemon never writes ``os.environ``.
What runs each objective is :mod:`swarmd.workers`.
"""
