"""Spending caps enforced in Redis across every worker on every host.

Caps (``budgets:`` in ``llm_config.yaml``): a daily and a monthly cap in USD (UTC day and
month) and an objective's own ``max_cost_usd``.  Before a call to a priced model the router
**reserves** its worst case (:func:`worst_case_usd`: prompt UTF-8 bytes + 32 input tokens,
``max_output_tokens`` output, or 8 for a label answer); after the call it **settles** the
reservation to the actual cost, or **releases** it when no call was made.  Reserving is one
Lua script that checks every cap against ``spent + reserved + amount`` and reserves on all
of them or none, so concurrent workers cannot commit more than a cap.  Amounts are integer
nano-USD.  A reservation whose worker died is released after its lease
(:meth:`Budget.reap_expired`).  Free models never reserve and are never blocked.
Pacing (``budgets.pacing``): :meth:`Budget.pacing_threshold`.
"""

from __future__ import annotations

import calendar
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from loguru import logger

from swarmd import constants as K
from swarmd.config import BudgetConfig, Config, ModelConfig

NANO_PER_USD = 1_000_000_000
#: Tokens added to the byte count of a prompt for the API's message framing.
PROMPT_OVERHEAD_TOKENS = 32
#: Seconds between two scans for expired leases by one :class:`Budget`.
REAP_EVERY_S = 30.0

# KEYS: the budget hashes, then the lease set.  ARGV: amount (nano-USD), lease
# member, lease deadline (unix s), then per budget hash: cap (nano-USD, -1 =
# none), expire-at (unix s, 0 = none), ttl (s, 0 = none).
# Returns {0} when reserved, else {index of the refusing hash, spent, reserved}.
_RESERVE_LUA = """
local n = #KEYS - 1
local amount = tonumber(ARGV[1])
for i = 1, n do
  local cap = tonumber(ARGV[3 + (i - 1) * 3 + 1])
  if cap >= 0 then
    local spent = tonumber(redis.call('HGET', KEYS[i], 'spent') or '0')
    local reserved = tonumber(redis.call('HGET', KEYS[i], 'reserved') or '0')
    if spent + reserved + amount > cap then
      return {i, spent, reserved}
    end
  end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'reserved', amount)
  local expire_at = tonumber(ARGV[3 + (i - 1) * 3 + 2])
  local ttl = tonumber(ARGV[3 + (i - 1) * 3 + 3])
  if expire_at > 0 then redis.call('EXPIREAT', KEYS[i], expire_at) end
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
end
redis.call('ZADD', KEYS[n + 1], ARGV[3], ARGV[2])
return {0}
"""

# KEYS: the budget hashes, then the lease set.  ARGV: reserved amount, actual
# amount (both nano-USD), lease member.  The reserved amount is taken back only
# if the lease was still held (not already settled, released or reaped); the
# actual amount is always added to ``spent``.  Returns 1 if the lease was held.
_SETTLE_LUA = """
local n = #KEYS - 1
local held = redis.call('ZREM', KEYS[n + 1], ARGV[3])
local reserved = tonumber(ARGV[1])
local actual = tonumber(ARGV[2])
for i = 1, n do
  if held == 1 and reserved ~= 0 then redis.call('HINCRBY', KEYS[i], 'reserved', -reserved) end
  if actual ~= 0 then redis.call('HINCRBY', KEYS[i], 'spent', actual) end
end
return held
"""


def estimate_input_tokens(text: str) -> int:
    """Upper bound of the prompt's input tokens: UTF-8 bytes + :data:`PROMPT_OVERHEAD_TOKENS`."""
    return len(text.encode("utf-8")) + PROMPT_OVERHEAD_TOKENS


def worst_case_usd(model: ModelConfig, prompt_text: str, max_output_tokens: int | None = None) -> float:
    """Worst-case USD of one call to ``model`` with ``prompt_text``: estimated
    input tokens × input price + output tokens × output price (prices per
    million tokens, from the config). Output tokens: ``max_output_tokens`` when
    given (the call's own cap, e.g. 8 for a label answer), else the model's."""
    out = model.max_output_tokens if max_output_tokens is None else max_output_tokens
    return model.cost_usd(estimate_input_tokens(prompt_text), out)


def to_nano(usd: float, round_up: bool = False) -> int:
    """USD → integer nano-USD (rounded up with ``round_up``, else to nearest)."""
    value = usd * NANO_PER_USD
    return int(math.ceil(value - 1e-6)) if round_up else int(round(value))


@dataclass(frozen=True)
class Reservation:
    """Money held for one call in flight.

    ``amount_usd``: the worst case reserved (USD); ``nanos``: the same in
    nano-USD as stored; ``keys``: the budget hashes it is held on;
    ``member``: its record in the lease set; ``deadline``: unix time after
    which :meth:`Budget.reap_expired` may release it.
    """

    id: str
    amount_usd: float
    nanos: int
    keys: tuple[str, ...]
    member: str
    deadline: float


@dataclass(frozen=True)
class Denial:
    """Why a reservation was refused.

    ``scope``: ``"daily"``, ``"monthly"``, ``"objective"`` or ``"unavailable"``
    (Redis could not be asked: calls to priced models are refused rather than
    made unchecked); ``cap_usd``, ``committed_usd`` (spent + reserved) and
    ``amount_usd`` in USD.
    """

    scope: str
    cap_usd: float | None
    committed_usd: float
    amount_usd: float
    detail: str = ""

    def __str__(self) -> str:
        if self.scope == "unavailable":
            return f"budget store unavailable ({self.detail}); priced calls refused"
        return (f"{self.scope} cap ${self.cap_usd:.4f} reached: ${self.committed_usd:.6f} spent or reserved, "
                f"this call may cost up to ${self.amount_usd:.6f}")


@dataclass(frozen=True)
class PeriodStatus:
    """One budget period now: ``period`` (``"daily"``/``"monthly"``), its Redis
    ``key``, ``cap_usd`` (``None`` = uncapped), ``spent_usd`` (settled),
    ``reserved_usd`` (in flight), ``elapsed`` (fraction 0..1 of the UTC
    period gone)."""

    period: str
    key: str
    cap_usd: float | None
    spent_usd: float
    reserved_usd: float
    elapsed: float

    @property
    def spent_fraction(self) -> float | None:
        """``spent / cap`` (``None`` without a cap; ``inf`` for a zero cap with spend)."""
        if self.cap_usd is None:
            return None
        if self.cap_usd == 0:
            return math.inf if self.spent_usd > 0 else 0.0
        return self.spent_usd / self.cap_usd


class NoBudgetStore:
    """Stands in for :class:`Budget` where the shared caps cannot be checked
    (``swarmctl ask`` with ``budgets:`` capped and no Redis known or
    reachable): every priced call is refused (:meth:`try_reserve` gives a
    :class:`Denial` of scope ``"unavailable"`` naming ``why``), as a worker's
    :class:`Budget` refuses them while its Redis is down; free models are never
    blocked, and pacing leaves thresholds as configured.  ``why``: one sentence."""

    def __init__(self, why: str):
        self.why = why

    def try_reserve(self, amount_usd: float, objective_id: str | None = None,
                    max_cost_usd: float | None = None, lease_s: float = 300.0) -> Denial:
        """A :class:`Denial` (``"unavailable"``) of ``amount_usd`` (USD); the
        other arguments are those of :meth:`Budget.try_reserve`, unused."""
        return Denial("unavailable", None, 0.0, amount_usd, self.why)

    def pacing_threshold(self, configured: float, action: str = "") -> float:
        """``configured``: with no spend to read there is no pacing."""
        return configured


def _utc_periods(now: float) -> dict[str, tuple[str, float, float]]:
    """``{"daily": (label, start, end), "monthly": (...)}`` of the UTC day and month containing ``now``."""
    t = datetime.fromtimestamp(now, tz=timezone.utc)
    day_start = calendar.timegm((t.year, t.month, t.day, 0, 0, 0))
    month_start = calendar.timegm((t.year, t.month, 1, 0, 0, 0))
    next_month = (t.year + (t.month == 12), t.month % 12 + 1)
    month_end = calendar.timegm((*next_month, 1, 0, 0, 0))
    return {"daily": (t.strftime("%Y-%m-%d"), float(day_start), float(day_start + 86400)),
            "monthly": (t.strftime("%Y-%m"), float(month_start), float(month_end))}


class Budget:
    """The daily, monthly and per-objective caps over one Redis.

    ``redis``: a ``redis.Redis`` client (every worker of a deployment uses the
    same server).  ``config``: a :class:`~swarmd.config.Config` or its
    :class:`~swarmd.config.BudgetConfig`.  ``clock``: unix seconds (tests
    pass their own).  ``cache_s``: seconds :meth:`status` reuses a reading
    for pacing.  Thread-safe; one instance per process is enough.
    """

    def __init__(self, redis, config: Config | BudgetConfig, clock: Callable[[], float] = time.time,
                 cache_s: float = 1.0):
        self.redis = redis
        self.config: BudgetConfig = getattr(config, "budgets", config)
        self.clock = clock
        self.cache_s = cache_s
        self._reserve = redis.register_script(_RESERVE_LUA)
        self._settle = redis.register_script(_SETTLE_LUA)
        self._lock = threading.Lock()
        self._thresholds: dict[str, float] = {}
        self._status_cache: tuple[float, list[PeriodStatus]] | None = None
        self._last_reap = -math.inf

    # ------------------------------------------------------------------ reserve / settle
    def _caps(self, now: float, objective_id: str | None, max_cost_usd: float | None):
        """[(scope, key, cap_usd | None, expire_at, ttl)] of the hashes a reservation touches."""
        periods = _utc_periods(now)
        day, _ds, day_end = periods["daily"]
        month, _ms, month_end = periods["monthly"]
        out = [("daily", K.budget_day_key(day), self.config.daily_usd, day_end + K.BUDGET_DAY_GRACE_S, 0),
               ("monthly", K.budget_month_key(month), self.config.monthly_usd,
                month_end + K.BUDGET_MONTH_GRACE_S, 0)]
        if objective_id is not None and max_cost_usd is not None:
            out.append(("objective", K.budget_objective_key(objective_id), max_cost_usd, 0,
                        K.BUDGET_OBJECTIVE_TTL_S))
        return out

    def try_reserve(self, amount_usd: float, objective_id: str | None = None,
                    max_cost_usd: float | None = None, lease_s: float = 300.0) -> Reservation | Denial:
        """Hold ``amount_usd`` (USD, the call's worst case) against every cap.

        Caps checked atomically: ``budgets.daily_usd`` (UTC day),
        ``budgets.monthly_usd`` (UTC month) and, when both ``objective_id`` and
        ``max_cost_usd`` are given, the objective's own cap (its spend across
        calls, workers and retries).  ``lease_s``: seconds after which an
        unsettled reservation may be released by :meth:`reap_expired`.
        Returns a :class:`Reservation`, or a :class:`Denial` saying which cap
        refused (or that Redis could not be reached).  Raises ``ValueError``
        if ``amount_usd`` is negative (a caller's bug, not a budget decision).
        """
        if amount_usd < 0:
            raise ValueError(f"amount_usd must be >= 0, found {amount_usd!r}")
        now = self.clock()
        if now - self._last_reap >= REAP_EVERY_S:
            self._last_reap = now
            try:
                self.reap_expired()
            except Exception as exc:
                logger.warning("budget: releasing expired reservations failed: {}", exc)
        caps = self._caps(now, objective_id, max_cost_usd)
        nanos = to_nano(amount_usd, round_up=True)
        rid = uuid.uuid4().hex[:16]
        keys = tuple(key for _s, key, *_ in caps)
        member = json.dumps({"id": rid, "n": nanos, "keys": list(keys)}, separators=(",", ":"))
        deadline = now + lease_s
        args: list = [nanos, member, deadline]
        for _scope, _key, cap, expire_at, ttl in caps:
            args += [-1 if cap is None else to_nano(cap), int(expire_at), int(ttl)]
        try:
            reply = self._reserve(keys=[*keys, K.BUDGET_LEASES], args=args)
        except Exception as exc:   # Redis down: refuse priced calls rather than make them unchecked
            logger.warning("budget: cannot reserve ${:.6f}: {}", amount_usd, exc)
            return Denial("unavailable", None, 0.0, amount_usd, f"{type(exc).__name__}: {exc}")
        if int(reply[0]) == 0:
            return Reservation(rid, amount_usd, nanos, keys, member, deadline)
        scope, _key, cap, *_ = caps[int(reply[0]) - 1]
        committed = (int(reply[1]) + int(reply[2])) / NANO_PER_USD
        return Denial(scope, cap, committed, amount_usd)

    def settle(self, reservation: Reservation, actual_usd: float) -> bool:
        """Replace ``reservation`` by the call's actual cost (USD) on every hash
        it was held on.  Returns ``False`` when the lease had already been
        released (then only the actual cost is added).  Raises redis errors."""
        if actual_usd < 0:
            raise ValueError(f"actual_usd must be >= 0, found {actual_usd!r}")
        held = self._settle(keys=[*reservation.keys, K.BUDGET_LEASES],
                            args=[reservation.nanos, to_nano(actual_usd), reservation.member])
        self._status_cache = None
        return bool(held)

    def release(self, reservation: Reservation) -> bool:
        """Give ``reservation`` back unspent (no call was made).  Returns
        ``False`` when it had already been settled or released."""
        return self.settle(reservation, 0.0)

    def reap_expired(self) -> int:
        """Release every reservation whose lease deadline has passed (its
        worker died or hung before settling); returns how many.  Each release
        is atomic with respect to a late :meth:`settle`: whichever comes first
        takes the reservation back, once."""
        now = self.clock()
        released = 0
        for raw in self.redis.zrangebyscore(K.BUDGET_LEASES, "-inf", now):
            member = raw.decode() if isinstance(raw, bytes) else raw
            try:
                record = json.loads(member)
                keys, nanos = [str(k) for k in record["keys"]], int(record["n"])
            except (ValueError, KeyError, TypeError):
                self.redis.zrem(K.BUDGET_LEASES, member)
                continue
            if self._settle(keys=[*keys, K.BUDGET_LEASES], args=[nanos, 0, member]):
                released += 1
                logger.warning("budget: reservation {} of ${:.6f} was never settled (worker gone?); released",
                               record.get("id"), nanos / NANO_PER_USD)
        return released

    # ------------------------------------------------------------------ reading
    def status(self, fresh: bool = False) -> list[PeriodStatus]:
        """The daily and monthly periods now (spend read from Redis; reused
        for ``cache_s`` seconds unless ``fresh``).  Raises redis errors."""
        now = self.clock()
        cached = self._status_cache
        if not fresh and cached is not None and 0 <= now - cached[0] < self.cache_s:
            return cached[1]
        periods = _utc_periods(now)
        pipe = self.redis.pipeline(transaction=False)
        wanted = []
        for scope, key, cap, *_ in self._caps(now, None, None):
            _label, start, end = periods[scope]
            wanted.append((scope, key, cap, (now - start) / (end - start)))
            pipe.hmget(key, "spent", "reserved")
        out = []
        for (scope, key, cap, elapsed), (spent, reserved) in zip(wanted, pipe.execute()):
            out.append(PeriodStatus(scope, key, cap, int(spent or 0) / NANO_PER_USD,
                                    int(reserved or 0) / NANO_PER_USD, elapsed))
        self._status_cache = (now, out)
        return out

    # ------------------------------------------------------------------ pacing
    def ahead_of_plan(self) -> list[PeriodStatus]:
        """Capped periods whose spend runs ahead of plan:
        ``spent / cap > elapsed / period + budgets.pacing.tolerance``."""
        tolerance = self.config.pacing.tolerance
        return [p for p in self.status() if p.cap_usd is not None and p.spent_fraction > p.elapsed + tolerance]

    def pacing_threshold(self, configured: float, action: str = "") -> float:
        """The confidence threshold below which an answer from a free tier
        escalates to a paid tier, for ``action`` whose configured threshold is
        ``configured`` (0..1).

        Rule (``budgets.pacing``): while the UTC day or month is ahead of plan
        (:meth:`ahead_of_plan`), ``configured × threshold_factor``; otherwise
        ``configured``.  Every change for an action is logged with the
        numbers behind it.  With pacing disabled, or when Redis cannot be
        read, ``configured`` (and the failure is logged).
        """
        pacing = self.config.pacing
        if not pacing.enabled or (self.config.daily_usd is None and self.config.monthly_usd is None):
            return configured
        try:
            ahead = self.ahead_of_plan()
        except Exception as exc:
            logger.warning("budget: pacing cannot read spend ({}); threshold stays {:.2f}", exc, configured)
            ahead = []
        new = round(configured * pacing.threshold_factor, 4) if ahead else configured
        with self._lock:
            old = self._thresholds.get(action, configured)
            self._thresholds[action] = new
        if new != old:
            why = "; ".join(f"{p.period} ${p.spent_usd:.4f} of ${p.cap_usd:.2f} spent "
                            f"({p.spent_fraction:.0%}) with {p.elapsed:.0%} of the period elapsed" for p in ahead)
            if ahead:
                logger.info("budget pacing: {} escalation threshold to paid tiers {:.2f} -> {:.2f} "
                            "(ahead of plan: {}; tolerance {:.0%})", action or "*", old, new, why,
                            pacing.tolerance)
            else:
                logger.info("budget pacing: {} escalation threshold to paid tiers {:.2f} -> {:.2f} (back on plan)",
                            action or "*", old, new)
        return new
