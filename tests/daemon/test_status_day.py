"""`swarmctl status`'s "today" is the budget's daily period (the UTC day)."""

from __future__ import annotations

import calendar

from swarmd.daemon.service import day_start
from swarmd.router.budgets import _utc_periods


def test_status_day_is_the_daily_budget_period():
    for now in (calendar.timegm((2026, 11, 30, 23, 59, 59)), calendar.timegm((2026, 12, 1, 0, 0, 0)),
                calendar.timegm((2024, 2, 29, 12, 30, 0))):
        assert day_start(now) == _utc_periods(now)["daily"][1]
    assert day_start(calendar.timegm((2026, 11, 30, 23, 59, 59))) == calendar.timegm((2026, 11, 30, 0, 0, 0))
