"""``cost_analysis.py --from-ledger`` on a ledger with answer-cache rows (tier
``MEMORY``), in the layout of the main job's database: ``memory.db``
written through the real :class:`swarmd.costs.Ledger` (every table of the
schema registry), rows shaped as the router writes them (a cache hit: tier
``MEMORY``, provider ``memory``, model ``exact``/``template``, 0 tokens,
cost 0, ``accepted``; the embedded model's calls at ``LOCAL_FAST``; the
shipped config's prices)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from swarmd.config import load_config
from swarmd.costs import Ledger, LedgerRow
from swarmd.costs.profile import load_profile
from tests.costs.conftest import ROOT

T0 = 1_790_000_000.0


def test_from_ledger_counts_memory_hits_at_no_cost(tmp_path):
    config = load_config(None)
    api = config.tiers["API_FALLBACK"][0]
    db = tmp_path / "memory.db"
    ledger = Ledger(db)
    rows = []
    for i in range(20):       # 6 cache hits, 9 accepted by the embedded model, 5 left unresolved at LOCAL_FAST
        ts = T0 + 600 * i
        if i < 6:
            rows.append(LedgerRow("classify", "MEMORY", "memory", "exact" if i % 2 else "template", 0, 0, 0.0, 0.4,
                                  1.0, "accepted", f"o{i}", ts=ts))
        else:
            rows.append(LedgerRow("classify", "LOCAL_FAST", "llama_cpp", "gemma-3-270m", 370 + i, 1, 0.0, 90.0,
                                  0.9 if i < 15 else 0.3, "accepted" if i < 15 else "rejected", f"o{i}", ts=ts))
    for row in rows:
        ledger.record(row)
    ledger.close()
    proc = subprocess.run([sys.executable, str(ROOT / "cost_analysis.py"), "--from-ledger", str(db), "--json"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    led = out["ledger"]
    assert led["rows"] == 20 and led["objectives"] == 20
    assert led["by_tier"]["MEMORY"] == {"calls": 6, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0}
    assert list(led["by_tier"])[0] == "MEMORY"
    assert (led["answered"], led["unresolved"]) == (15, 5)          # 6 hits + 9 accepted; 5 rejected
    # by hand: the unresolved ones' final calls (i = 15..19: 385..389 tokens in, 1 out) at the API's prices
    owed = sum((370 + i) * api.price_per_mtok_in + 1 * api.price_per_mtok_out for i in range(15, 20)) / 1e6
    answered_api = sum((370 + i) * api.price_per_mtok_in + api.price_per_mtok_out for i in range(6, 15)) / 1e6
    assert led["unresolved_api_cost_usd"] == pytest.approx(owed)
    assert led["pure_api_cost_usd"] == pytest.approx(answered_api)    # a hit has 0 tokens: its API-only cost is 0
    assert led["cost_usd"] == 0.0 and led["savings_usd"] == pytest.approx(answered_api)
    assert out["validity"]["ok"]
    steps = out["measured_profile"]["actions"]["classify"]["tiers"]
    assert list(steps) == ["MEMORY", "LOCAL_FAST"]
    # the simulation at the ledger's volume: 6 hits, 14 calls at LOCAL_FAST, 5 unresolved
    assert list(out["by_tier"]) == ["MEMORY", "LOCAL_FAST"]                  # the cache is asked first
    assert out["by_tier"]["MEMORY"]["calls"] == pytest.approx(6) and out["by_tier"]["MEMORY"]["cost_usd"] == 0
    assert out["by_tier"]["LOCAL_FAST"]["calls"] == pytest.approx(14)
    assert out["unresolved"] == pytest.approx(5) and out["answered"] == pytest.approx(15)
    text = subprocess.run([sys.executable, str(ROOT / "cost_analysis.py"), "--from-ledger", str(db)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert text.returncode == 0, text.stderr
    assert "15 answered" in text.stdout and "unresolved 5 requests: nothing saved" in text.stdout


@pytest.mark.parametrize("name", ["light", "medium", "heavy"])
def test_profile_sources_describe_the_current_main_job(name):
    """The built-in profiles' ``sources`` name the main job as it is now
    (examples/commit_types.py, messages from 300 on) and not the old one
    (scripts/main.sh, the first 200 messages)."""
    sources = load_profile(name).sources
    assert "first 200 commit messages" not in sources and "scripts/main.sh" not in sources
    if "main job" in sources:
        assert "examples/commit_types.py" in sources
