"""swarmd workers: the RQ worker processes that run objectives (process plumbing only).

* :mod:`swarmd.workers.main` — one worker process (``swarmd worker``): loads the
  config, builds the context, listens on this site's resume queue, then the
  priority queues (:func:`swarmd.queue.worker_queues`).
* :mod:`swarmd.workers.context` — the worker context built once per process
  (router with the in-process model, budget, policy, Redis, data directory,
  name) and :class:`~swarmd.workers.context.ContextWorker`, an ``rq.SimpleWorker``
  that calls each job as ``func(ctx, *args)``.
* :mod:`swarmd.workers.jobs` — the RQ job (:data:`swarmd.queue.JOB_FUNC`): one
  router call, or the agent (:mod:`swarmd.agent`); reports through :mod:`swarmd.queue`.
* :mod:`swarmd.workers.batching` — label objectives of one queue routed in one model pass.

What the daemon and the workers agree on (queues, jobs, events) is :mod:`swarmd.queue`.
"""
