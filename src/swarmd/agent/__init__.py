"""swarmd agent: what runs an ``agent`` objective, with no RQ or process plumbing.

* :mod:`swarmd.agent.loop` — the agent loop: model proposes, governor decides, tool runs;
* :mod:`swarmd.agent.planner` — an agent goal becomes a short list of steps;
* :mod:`swarmd.agent.follower` — follow a stored execution trace without a model, or learn one;
* :mod:`swarmd.agent.approvals` — objectives parked on a governor ``ask``: park
  records and their resolution (used by the daemon and the CLI too);
* :mod:`swarmd.agent.traces` — execution traces: the data, learning, checking, the store.

The RQ job that calls into it is :func:`swarmd.workers.jobs.run_objective`.
"""
