"""The swarmd daemon: one process that admits objectives, dispatches them to RQ
workers and persists what the workers report.

* :mod:`~swarmd.daemon.main` — start-up of the ``swarmd`` process; :mod:`~swarmd.daemon.service`
  — :class:`~swarmd.daemon.service.Daemon`: main loop, heartbeat, SIGHUP reload, composing
  :mod:`~swarmd.daemon.streams`, :mod:`~swarmd.daemon.admission`, :mod:`~swarmd.daemon.events`
  and :mod:`~swarmd.daemon.recovery` (RQ upkeep);
* :mod:`~swarmd.daemon.store` — the objective store; :mod:`~swarmd.daemon.control` — submit,
  list, cancel, retry (shared with the API);
* :mod:`~swarmd.daemon.supervisor` — local worker processes; :mod:`~swarmd.daemon.redis_server`
  — finding or running Redis; :mod:`~swarmd.daemon.notify` — systemd ``sd_notify``;
* :mod:`~swarmd.daemon.report_jobs`, :mod:`~swarmd.daemon.memory_jobs`,
  :mod:`~swarmd.daemon.metrics` — scheduled jobs and Prometheus metrics.

The data directory is resolved once and passed down; the daemon never writes ``os.environ``.
"""
