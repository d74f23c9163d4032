"""Only tests marked ``slow`` may load the embedded model (Gemma 3 270M via llama.cpp).

``tests/conftest.py`` sets :data:`allowed` from each test's marker before its
fixtures are set up, and makes loading the model in-process (in a test or in
a fixture of any scope) call :func:`require_slow`;
``tests/daemon/helpers.start_daemon`` calls it for a daemon whose config has
a ``llama_cpp`` tier.  So the marker cannot drift from what a test does.
"""

from __future__ import annotations

import pytest

#: True while the running test is marked ``slow``.
allowed = False


def require_slow(what: str) -> None:
    """Fail the running test (``pytest.fail``: not an ``Exception``, so no
    provider fallback swallows it) unless it is marked ``slow``."""
    if not allowed:
        pytest.fail(f"{what} loads the embedded model: mark the test @pytest.mark.slow", pytrace=False)
