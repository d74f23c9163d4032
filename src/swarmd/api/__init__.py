"""The HTTP API of swarmd (FastAPI on uvicorn), served by ``swarmd`` beside the daemon.

* :mod:`swarmd.api.auth` — the bearer token in ``<data dir>/api.token`` (0600, created on
  first start; ``swarmctl api token [--rotate]``).
* :mod:`swarmd.api.app` — :func:`~swarmd.api.app.create_app`: the routers of :mod:`swarmd.api.routes`
  (``/api/v1``, ``/metrics``) and the OpenAPI schema; every route needs ``Authorization: Bearer TOKEN``
  and reaches the shared :class:`~swarmd.api.context.ApiContext` through a dependency.
* :mod:`swarmd.api.server` — :class:`~swarmd.api.server.ApiServer`: uvicorn in a thread on
  ``<data dir>/api.sock`` and ``api.listen`` (loopback unless ``api.allow_remote``),
  announced in ``<data dir>/api.url``.
* :mod:`swarmd.api.dashboard` — the dashboard at ``/``.

No response holds a secret (API keys, the Redis password, the token).  Details: docs/design.md.
"""
