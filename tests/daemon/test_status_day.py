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
    for now in (calendar.timegm((2026, 11, 30, 23, 59, 59)), calendar.timegm((2026, 12, 1, 0, 0, 0)),
                calendar.timegm((2024, 2, 29, 2, 30, 0))):
        assert day_start(now) == _utc_periods(now)["daily"][1]
    assert day_start(calendar.timegm((2026, 11, 30, 23, 59, 59))) == calendar.timegm((2026, 11, 30, 0, 0, 0))
