"""The HTTP API of swarmd (FastAPI on uvicorn), served by ``swarmd`` beside the daemon.

* :mod:`swarmd.api.auth` — the bearer token in ``<data dir>/api.token`` (0600,
  created on first start; ``swarmctl api token [--rotate]``).
* :mod:`swarmd.api.app` — :func:`~swarmd.api.app.create_app`: the routes under
  ``/api/v1`` (objectives, control, status, approvals, costs, memory, events as
  server-sent events), ``/metrics``, the OpenAPI schema at ``/api/v1/openapi.json``.
  Every route needs ``Authorization: Bearer TOKEN``.  Validation and control are
  the functions ``swarmctl`` runs (:mod:`swarmd.daemon.control`, the cli's data
  functions), so both refuse the same input with the same reasons.
* :mod:`swarmd.api.server` — :class:`~swarmd.api.server.ApiServer`: one uvicorn
  server in a thread on ``<data dir>/api.sock`` and on ``api.listen`` (loopback
  unless ``api.allow_remote``), announced in ``<data dir>/api.url``.

No response holds a secret: API keys, the Redis URL's password and the token
are never put in one (tests/api/test_secrets.py plants them and looks).
"""
