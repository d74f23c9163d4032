"""Budgets against the real Redis fixture: exact price units, atomic
reservations under thread and process races, per-objective caps, leases of
dead workers, and a Redis that cannot be reached."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time

import pytest
import redis

from swarmd import constants as K
from swarmd.config import BudgetConfig, ModelConfig, shipped_config_path
from swarmd.costs.pricing import api_model, price_usd
from swarmd.costs.budgets import NANO_PER_USD, Budget, Denial, Reservation, estimate_input_tokens, worst_case_usd
from tests.fakes import closed_port_url

#: 06:00 UTC today: 25% of the UTC day elapsed.  (Budget keys expire at an
#: absolute time after their period, so the clock must not be in the past.)
T0 = (time.time() // 86400) * 86400 + 6 * 3600
DAY_KEY = K.budget_day_key(time.strftime("%Y-%m-%d", time.gmtime(T0)))


def model(p_in: float, p_out: float, max_out: int = 256) -> ModelConfig:
    return ModelConfig(provider="anthropic", model="m", price_per_mtok_in=p_in, price_per_mtok_out=p_out,
                       context_window=1000, timeout_s=5, max_output_tokens=max_out)


def committed(conn, key: str) -> float:
    spent, reserved = conn.hmget(key, "spent", "reserved")
    return (int(spent or 0) + int(reserved or 0)) / NANO_PER_USD


# --------------------------------------------------------------------------- price units


def test_prices_are_per_million_tokens():
    m = model(3.0, 15.0)
    assert m.cost_usd(1_000_000, 0) == 3.0                      # not 3000 (per 1k) nor 0.003
    assert m.cost_usd(0, 1_000_000) == 15.0
    assert m.cost_usd(1234, 567) == pytest.approx(0.012207, abs=1e-12)   # $0.003702 + $0.008505
    assert price_usd(m, 2_000_000, 100_000) == pytest.approx(6.0 + 1.5)


def test_shipped_api_price_units(config):
    from swarmd.config import load_config
    shipped = api_model(load_config(shipped_config_path()))
    assert (shipped.price_per_mtok_in, shipped.price_per_mtok_out) == (2.0, 10.0)
    assert shipped.cost_usd(1_000_000, 1_000_000) == 12.0       # $2 + $10 per million in + out


def test_worst_case_is_prompt_bytes_plus_overhead_and_max_output():
    m = model(2.0, 10.0, max_out=1024)
    text = "fix crash on empty file é"                         # 25 characters, 26 UTF-8 bytes (é: 2)
    assert estimate_input_tokens(text) == 58                    # 26 bytes + 32 tokens of overhead
    # 58 x $2 / 1e6 + 1024 x $10 / 1e6 = $0.000116 + $0.01024
    assert worst_case_usd(m, text) == pytest.approx(0.010356, abs=1e-12)


def test_settle_records_the_exact_cost(redis_conn):
    budget = Budget(redis_conn, BudgetConfig(daily_usd=1.0), clock=lambda: T0)
    r = budget.try_reserve(0.05)
    budget.settle(r, model(3.0, 15.0).cost_usd(1234, 567))
    day = budget.status(fresh=True)[0]
    assert day.spent_usd == 0.012207 and day.reserved_usd == 0.0


# --------------------------------------------------------------------------- races


def _hammer(url: str, cap: float, n: int, seed: int, peak: list | None = None) -> float:
    """Reserve random worst cases against ``cap``; settle each to a random
    actual cost <= the reservation, or release it.  Returns the largest reservation."""
    conn = redis.Redis.from_url(url)
    budget = Budget(conn, BudgetConfig(daily_usd=cap), clock=lambda: T0)
    rng = random.Random(seed)
    largest = 0.0
    for _ in range(n):
        amount = rng.uniform(0.01, 0.05)
        largest = max(largest, amount)
        r = budget.try_reserve(amount)
        if isinstance(r, Denial):
            continue
        if rng.random() < 0.15:
            budget.release(r)
        else:
            budget.settle(r, amount * rng.choice([1.0, 1.0, rng.uniform(0.2, 1.0)]))
    conn.close()
    return largest


def test_threads_racing_never_overspend(redis_url, redis_conn):
    cap = 1.0
    key = DAY_KEY
    peaks = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peaks.append(committed(redis_conn, key))

    watcher = threading.Thread(target=watch)
    watcher.start()
    largest = []
    threads = [threading.Thread(target=lambda s=s: largest.append(_hammer(redis_url, cap, 60, s))) for s in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    spent = int(redis_conn.hget(key, "spent")) / NANO_PER_USD
    assert int(redis_conn.hget(key, "reserved")) == 0
    assert spent <= cap                                          # stronger than cap + one reservation
    assert spent >= cap - 2 * max(largest) * 1.0 - 0.2           # the cap was really contended
    assert max(peaks) <= cap + 1e-9                              # spent + reserved never passed the cap
    assert redis_conn.zcard(K.BUDGET_LEASES) == 0


def test_processes_racing_never_overspend(redis_url, redis_conn):
    cap = 0.5
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        pool.starmap(_hammer, [(redis_url, cap, 40, 100 + s) for s in range(4)])
    key = DAY_KEY
    spent = int(redis_conn.hget(key, "spent")) / NANO_PER_USD
    assert spent <= cap
    assert spent > cap / 2
    assert int(redis_conn.hget(key, "reserved")) == 0


def test_overspend_is_bounded_by_one_reservation_when_a_call_costs_more(redis_conn):
    """Even a call whose actual cost exceeds its reservation (an estimate that
    was wrong) cannot push spend past the cap by more than that one call."""
    budget = Budget(redis_conn, BudgetConfig(daily_usd=0.10), clock=lambda: T0)
    spent_total = 0.0
    while isinstance(r := budget.try_reserve(0.03), Reservation):
        actual = 0.03 if spent_total + 0.03 <= 0.10 else 0.045
        budget.settle(r, actual)
        spent_total += actual
    day = budget.status(fresh=True)[0]
    assert day.spent_usd <= 0.10 + 0.03 + 0.015


# --------------------------------------------------------------------------- caps


def test_daily_and_monthly_caps_refuse_with_reasons(redis_conn):
    budget = Budget(redis_conn, BudgetConfig(daily_usd=1.0, monthly_usd=1.5), clock=lambda: T0)
    first = budget.try_reserve(0.9)
    assert isinstance(first, Reservation)
    denial = budget.try_reserve(0.2)
    assert isinstance(denial, Denial) and denial.scope == "daily" and denial.cap_usd == 1.0
    assert "daily cap" in str(denial)
    budget.settle(first, 0.9)
    next_day = Budget(redis_conn, BudgetConfig(daily_usd=1.0, monthly_usd=1.5), clock=lambda: T0 + 3600)
    redis_conn.delete(DAY_KEY)                                    # as if a new day had begun
    assert isinstance(next_day.try_reserve(0.5), Reservation)
    denial = next_day.try_reserve(0.2)
    assert denial.scope == "monthly" and denial.committed_usd == pytest.approx(1.4)


def test_objective_cap_is_shared_across_calls_and_workers(redis_url, redis_conn):
    a = Budget(redis_conn, BudgetConfig(daily_usd=100.0), clock=lambda: T0)
    other_worker = Budget(redis.Redis.from_url(redis_url), BudgetConfig(daily_usd=100.0), clock=lambda: T0)
    r = a.try_reserve(0.04, objective_id="obj-1", max_cost_usd=0.05)
    a.settle(r, 0.03)
    denial = other_worker.try_reserve(0.03, objective_id="obj-1", max_cost_usd=0.05)   # 0.03 + 0.03 > 0.05
    assert isinstance(denial, Denial) and denial.scope == "objective"
    assert isinstance(other_worker.try_reserve(0.02, objective_id="obj-1", max_cost_usd=0.05), Reservation)
    assert isinstance(other_worker.try_reserve(0.03, objective_id="obj-2", max_cost_usd=0.05), Reservation)
    assert int(redis_conn.hget(K.budget_objective_key("obj-1"), "spent")) / NANO_PER_USD == pytest.approx(0.03)


def test_budget_keys_expire(redis_conn):
    now = time.time()
    budget = Budget(redis_conn, BudgetConfig(daily_usd=1.0), clock=lambda: now)
    assert isinstance(budget.try_reserve(0.01, objective_id="o", max_cost_usd=1.0), Reservation)
    day, month = budget.status(fresh=True)
    assert day.key == K.budget_day_key(time.strftime("%Y-%m-%d", time.gmtime(now)))
    assert 2 * 86400 <= redis_conn.ttl(day.key) <= 3 * 86400         # the day's end + 2 days
    assert 7 * 86400 <= redis_conn.ttl(month.key) <= 38 * 86400      # the month's end + 7 days
    assert redis_conn.ttl(K.budget_objective_key("o")) == pytest.approx(30 * 86400, abs=5)


def test_reservation_of_a_dead_worker_is_released_after_its_lease(redis_conn, log_lines):
    now = [T0]
    budget = Budget(redis_conn, BudgetConfig(daily_usd=1.0), clock=lambda: now[0])
    r = budget.try_reserve(0.6, lease_s=10)
    assert isinstance(budget.try_reserve(0.6), Denial)
    now[0] += 11
    assert budget.reap_expired() == 1
    assert any("never settled" in line for line in log_lines)
    assert budget.status(fresh=True)[0].reserved_usd == 0.0
    assert budget.settle(r, 0.1) is False                      # late settle: only the actual cost counts
    assert budget.status(fresh=True)[0].spent_usd == pytest.approx(0.1)
    assert budget.reap_expired() == 0


def test_unreachable_redis_refuses_priced_calls():
    conn = redis.Redis.from_url(closed_port_url().replace("http", "redis") + "/0", socket_connect_timeout=0.2)
    denial = Budget(conn, BudgetConfig(daily_usd=1.0)).try_reserve(0.01)
    assert isinstance(denial, Denial) and denial.scope == "unavailable"
    assert "refused" in str(denial)
