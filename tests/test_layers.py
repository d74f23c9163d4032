"""Layers only point down: every swarmd package has a rank, and no module imports one ranked higher.

The graph is tests/importgraph.py's (the one tests/test_imports.py checks for
cycles), here with the imports under ``if TYPE_CHECKING:`` counted too: a
type-only import up the layers is still a dependency of the design.  Modules
of the same rank may import each other (no cycle: see the last test).
"""

from __future__ import annotations

import ast

from tests.importgraph import PACKAGE, cycles, graph, imports_of

#: Rank of each top-level module or package of swarmd, low to high (the
#: house rules' order).  ``testing`` (failpoints, test configs) sits at the
#: bottom because production code calls its failpoints; ``rqcompat`` beside
#: ``queue``: both wrap RQ for the agent, the workers and the daemon.
RANKS = {
    "errors": 0, "constants": 0, "validation": 0, "jsonl": 0, "paths": 0, "testing": 0, "logs": 0, "telemetry": 0,
    "config": 1, "objectives": 1,
    "store": 2,
    "costs": 3, "governor": 3,
    "router": 4,
    "memory": 5,
    "queue": 6, "rqcompat": 6,
    "agent": 7,
    "workers": 8,
    "daemon": 9,
    # the two front ends, which never import each other (the read models they share, e.g.
    # status_data, are swarmd.daemon.views; see the front-end test below), save that the
    # swarmd command (cli.daemon) starts the API server beside the daemon
    "cli": 10, "api": 10,
    "__main__": 11,
    # the governor's effect harness and the red team built on it drive the governor from
    # above (bench/ and tests/ only; no production module imports them)
    "testing.effects": 11, "testing.redteam": 11,
}

KNOWN_CYCLES: list[list[str]] = []


def layer(module: str) -> str:
    """The key of :data:`RANKS` for a swarmd module: its longest dotted prefix below
    ``swarmd`` that has a rank (``swarmd.testing.effects`` -> ``testing.effects``), else
    its top-level part (``swarmd.daemon.store`` -> ``daemon``)."""
    if not module.count("."):
        return module
    parts = module.split(".")[1:]
    for n in range(len(parts), 1, -1):
        if ".".join(parts[:n]) in RANKS:
            return ".".join(parts[:n])
    return parts[0]


def imports_up(edges: dict[str, set[str]]) -> list[str]:
    """``"a (rank) -> b (rank)"`` for every edge from a module to one of a higher rank."""
    return [f"{m} ({RANKS[layer(m)]}) -> {t} ({RANKS[layer(t)]})" for m in sorted(edges) for t in sorted(edges[m])
            if m != PACKAGE and t != PACKAGE and RANKS[layer(t)] > RANKS[layer(m)]]


def test_every_package_has_a_rank():
    edges, _lazy = graph(type_checking=True)
    assert sorted({layer(m) for m in edges if m != PACKAGE} - set(RANKS)) == []


def test_type_checking_imports_are_counted():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from swarmd.cli import x\n")
    assert [n.module for n, _top in imports_of(tree, type_checking=True)] == ["typing", "swarmd.cli"]
    assert [n.module for n, _top in imports_of(tree)] == ["typing"]


def test_an_import_up_is_caught():
    edges = {"swarmd.store.db": {"swarmd.daemon.service"}, "swarmd.daemon.service": {"swarmd.store.db"}}
    assert imports_up(edges) == ["swarmd.store.db (2) -> swarmd.daemon.service (9)"]


def test_no_import_runs_up_the_layers():
    edges, _lazy = graph(type_checking=True)
    up = imports_up(edges)
    print(f"\n{sum(map(len, edges.values()))} imports between {len(edges)} modules "
          f"(TYPE_CHECKING included); up the layers: {len(up)}")
    assert up == []


def test_no_import_cycle_counting_type_checking_imports():
    edges, _lazy = graph(type_checking=True)
    found = cycles(edges)
    print(f"\ncycles counting TYPE_CHECKING imports: {found}")
    assert [c for c in found if c not in KNOWN_CYCLES] == []


#: The one import between the front ends: the ``swarmd`` command starts the HTTP API beside the daemon.
FRONT_END_EDGES = {("swarmd.cli.daemon", "swarmd.api.server")}


def test_the_front_ends_do_not_import_each_other():
    """swarmctl and the HTTP API read the same documents from below (swarmd.daemon.views,
    swarmd.daemon.api_token), never from each other: an api module importing a cli one (or a cli
    one an api one, beyond :data:`FRONT_END_EDGES`) fails here."""
    edges, _lazy = graph(type_checking=True)
    found = {(m, t) for m, targets in edges.items() for t in targets
             if {layer(m), layer(t)} == {"cli", "api"}}
    assert found - FRONT_END_EDGES == set()
