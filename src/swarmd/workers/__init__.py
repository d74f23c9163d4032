"""swarmd workers: RQ worker processes that run objectives.

Where each responsibility lives:

* :mod:`swarmd.workers.main` — one worker process (``swarmd worker``, whose
  command line is :mod:`swarmd.cli.daemon`): loads
  the config, builds the worker context, listens on this site's resume queue
  and the priority queues.
* :mod:`swarmd.workers.context` — the worker context, arq's ``ctx`` for RQ:
  :func:`~swarmd.workers.context.build_context` builds the router (with the
  shared budget, the in-process model loaded), the governor policy, the Redis
  connection, the data directory and the worker's name once at start-up;
  :class:`~swarmd.workers.context.ContextWorker` (an ``rq.SimpleWorker``, so
  jobs run in the worker process and the model loads once per process, not
  per job) hands it to every job, whose function it calls as
  ``func(ctx, *args)`` (:class:`~swarmd.workers.context.ContextJob`).  No
  module globals: everything a job uses comes from its ``ctx`` argument.
* :mod:`swarmd.workers.jobs` — the job (:func:`~swarmd.workers.jobs.run_objective`):
  one router call, or the agent loop; reports ``started``/``finished`` events.
* :mod:`swarmd.workers.batching` — worker-side batching: with a label
  objective the worker claims up to ``daemon.batch_max - 1`` more of the same
  action and label set from its queue (registered as started, as RQ does),
  routes them in one model pass, then completes each job on its own.
* :mod:`swarmd.agent.loop` — the agent loop: model proposes, governor
  decides, tool runs (no I/O of its own).
* :mod:`swarmd.agent.planner` — the planner: an agent goal becomes a short
  list of steps.
* :mod:`swarmd.agent.follower` — agent objectives with execution traces:
  follow a stored trace without a model, or learn one.
* :mod:`swarmd.agent.approvals` — objectives parked on a governor ``ask``:
  park records, resolution, resume queues (used by the daemon and the CLI too).
"""
