"""Tier health: can each configured model answer now, and the warnings about workers.

:func:`tier_health` joins three views, one dict per model of the config's tiers:

* reachability and key: the daemon's probe (:func:`swarmd.router.reach.model_problems`,
  published in its heartbeat as ``model_problems``), or a probe from here when no daemon
  publishes one;
* model loaded: for an in-process model (:data:`IN_PROCESS`), the workers that built it
  (:data:`swarmd.queue.WORKER_TIERS`), else ``"on first use"``;
* cooling down: the latest end of a cool-down any running worker reports for that model.

:func:`health_warnings` gives ``status``'s warnings: no worker running, and workers x
``n_threads`` above the cores (:func:`swarmd.daemon.supervisor.oversubscription`).
Used by ``swarmctl status`` and the daemon's ``swarmd_tier_up`` gauge; callable by the HTTP API.
"""

from __future__ import annotations

import json
import time

from rq import Worker

from swarmd import constants as K
from swarmd.config import Config
from swarmd.daemon.supervisor import available_cores, oversubscription
from swarmd.queue import worker_tier_states
from swarmd.router.reach import PROBE_TIMEOUT_S, model_key, model_problem

#: Providers whose model runs inside the worker process (built = loaded).
IN_PROCESS = ("llama_cpp", "echo")

#: ``status``'s warning when no RQ worker is registered on the daemon's Redis.
NO_WORKERS = ("no worker is running: objectives stay queued until one starts. Start the daemon with "
              "`swarmd --workers N` (its default starts cores / n_threads workers), or run `swarmd worker` "
              "beside it")


def tier_health(config: Config, redis, workers: list[str] | None = None,
                timeout_s: float = PROBE_TIMEOUT_S) -> list[dict]:
    """One dict per model of ``config``'s tiers, in chain order::

        {"key": "tier/provider/model#i", "tier", "provider", "model",
         "reachable": bool | None,     # None: an API, reached only by a call
         "problem": str | None,        # why it cannot answer (the probe's sentence)
         "key_present": bool | None,   # None: not an API model
         "model_loaded": "loaded" | "on first use" | None,   # None: not in-process (IN_PROCESS)
         "loaded_in": [worker names],
         "cooling_down": {"until": unix s, "reason", "workers": [...]} | None,
         "up": bool}                   # can be asked now: no problem, not cooling down

    ``redis``: the daemon's client (its heartbeat's ``model_problems``, the workers' tier
    states); ``workers``: names of the running workers (default: RQ's registry), whose
    tier states count; ``timeout_s``: seconds per Ollama host when probing from here (only
    without a daemon heartbeat).  Raises ``redis.RedisError`` when Redis cannot be read."""
    raw = redis.hget(K.HEARTBEAT, "model_problems")
    problems = json.loads(raw) if raw else None
    if workers is None:
        workers = [w.name for w in Worker.all(connection=redis)]
    states = {name: s for name, s in worker_tier_states(redis).items() if name in set(workers)}
    now = time.time()
    out = []
    for tier in [*config.escalation.chain, *(t for t in config.tiers if t not in config.escalation.chain)]:
        for index, model in enumerate(config.tiers.get(tier, ())):
            key = model_key(tier, model, index)
            problem = problems.get(key) if problems is not None else model_problem(model, timeout_s)
            no_key = model.is_api and problem is not None and "API_KEY" in problem
            cooling = [(name, s["cooling"][key]) for name, s in states.items()
                       if key in s.get("cooling", {}) and s["cooling"][key].get("until", 0) > now]
            loaded = [name for name, s in states.items() if key in s.get("built", ())]
            entry = {
                "key": key, "tier": tier, "provider": model.provider, "model": model.model,
                "reachable": (None if model.is_api and not no_key else problem is None),
                "problem": problem,
                "key_present": (not no_key) if model.is_api else None,
                "model_loaded": (("loaded" if loaded else "on first use") if model.provider in IN_PROCESS
                                 else None),
                "loaded_in": loaded if model.provider in IN_PROCESS else [],
                "cooling_down": None,
            }
            if cooling:
                name, latest = max(cooling, key=lambda c: c[1]["until"])
                entry["cooling_down"] = {"until": latest["until"], "reason": latest.get("reason"),
                                         "workers": sorted(n for n, _ in cooling)}
            entry["up"] = problem is None and not cooling
            out.append(entry)
    return out


def health_warnings(config: Config | None, n_workers: int, cores: int | None = None) -> list[str]:
    """``status``'s warnings: :data:`NO_WORKERS` when ``n_workers`` is 0, and the
    oversubscription sentence when ``n_workers`` x ``n_threads`` exceeds ``cores``
    (default: this machine's, :func:`~swarmd.daemon.supervisor.available_cores`;
    skipped without a ``config``)."""
    if n_workers == 0:
        return [NO_WORKERS]
    crowded = oversubscription(config, n_workers, cores or available_cores()) if config is not None else None
    return [crowded] if crowded else []
