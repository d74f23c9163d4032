"""`swarmctl status`'s "today" is the budget's daily period (the UTC day),
whatever the machine's time zone."""

from __future__ import annotations

import calendar
import time

import pytest

from swarmd.daemon.service import day_start
from swarmd.costs.budgets import _utc_periods


@pytest.fixture
def new_york(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")     # local midnight != UTC midnight
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_status_day_is_the_daily_budget_period(new_york):
    # (instant, the UTC midnight that starts its day), by hand: New York's midnight would differ
    for now, midnight in [((2026, 11, 30, 23, 59, 59), (2026, 11, 30)), ((2026, 12, 1, 0, 0, 0), (2026, 12, 1)),
                          ((2024, 2, 29, 2, 30, 0), (2024, 2, 29))]:
        t = calendar.timegm(now)
        assert day_start(t) == _utc_periods(t)["daily"][1] == calendar.timegm((*midnight, 0, 0, 0)), now
