"""Tiers: availability of models (an unreachable backend cools down and is skipped) and :data:`MEMORY_TIER`.

When a call raises :class:`ProviderUnavailable`, the model is marked down for
``escalation.cooldown_s`` seconds (60 by default) and the reason is logged
once; the router skips it until the period ends, then tries it again.
"""

from __future__ import annotations

import time
from typing import Callable

from loguru import logger

class Availability:
    """Per-model cool-down bookkeeping for one process.  Keys are strings such
    as ``"LOCAL_QUALITY/ollama/llama3.1:8b"``; times are ``clock()`` seconds."""

    def __init__(self, cooldown_s: float, clock: Callable[[], float] = time.monotonic):
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._down: dict[str, tuple[float, str, float]] = {}   # key -> (until on clock(), reason, until unix s)

    def mark_down(self, key: str, reason: str) -> None:
        """Skip ``key`` for ``cooldown_s`` seconds; logs the reason."""
        logger.warning("model {} unavailable for {:.0f}s: {}", key, self.cooldown_s, reason)
        self._down[key] = (self.clock() + self.cooldown_s, reason, round(time.time() + self.cooldown_s, 3))

    def down_until(self, key: str) -> float | None:
        """Unix time (seconds) at which ``key``'s cool-down ends, or ``None`` if it is not cooling down."""
        entry = self._down.get(key)
        return None if entry is None else entry[2]

    def snapshot(self) -> dict[str, dict]:
        """``{key: {"until": unix seconds, "reason": str}}`` of every model cooling down now
        (what a worker publishes for ``swarmctl status``)."""
        now = self.clock()
        return {key: {"until": wall, "reason": reason}
                for key, (until, reason, wall) in list(self._down.items()) if until > now}

    def down_reason(self, key: str) -> str | None:
        """Why ``key`` is cooling down, or ``None`` if it may be called."""
        entry = self._down.get(key)
        if entry is None:
            return None
        if self.clock() >= entry[0]:
            del self._down[key]
            return None
        return entry[1]
