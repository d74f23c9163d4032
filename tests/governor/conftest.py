"""Fixtures for governor tests.

The ONLY fake in these tests is DNS: ``RESOLVER_TABLE`` maps host names to IP
strings (this sandbox has no real DNS). Everything else — parsing, path
resolution, subprocesses, SQLite, the loopback HTTP server — is real.  The
table, the workspace builder and the corpus reader live in
:mod:`swarmd.testing.governor` (``bench/governor.py`` uses them too).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmd.governor import Governor, load_policy
from swarmd.governor.sandbox import Confinement, probe
from swarmd.testing import governor as shared
from swarmd.testing.governor import RESOLVER_TABLE, make_workspace, table_resolver  # noqa: F401  (tests import them from here)

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"


def load_corpus(name: str) -> list[dict]:
    """The actions of ``tests/governor/corpus/<name>``."""
    return shared.load_corpus(CORPUS / name)


@pytest.fixture(scope="session")
def policy():
    return load_policy(REPO / "src" / "swarmd" / "policy.yaml")


@pytest.fixture(scope="session")
def gov(policy):
    """The governor as the daemon builds it on a machine with bubblewrap. Where
    bwrap is missing, decisions are still judged as if confined (they must not
    depend on the machine; fail-closed mode is tested on its own), and tests
    that run commands through it fail plainly."""
    conf = probe() if probe().available else Confinement("bwrap", None, "judged as if confined (no bwrap here)")
    return Governor(policy, resolver=table_resolver, confinement=conf)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> str:
    return str(make_workspace(tmp_path_factory.mktemp("gov")))
