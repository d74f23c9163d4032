"""Reading the two Redis streams under their consumer groups.

The objective stream (:data:`swarmd.constants.OBJECTIVE_STREAM`) and the
worker-event stream (:data:`swarmd.queue.EVENT_STREAM`) are each read
under their own consumer group.  Entries are acknowledged only once handled
(:mod:`swarmd.daemon.admission`, :mod:`swarmd.daemon.events`); a batch that
could not be handled is read again from this consumer's pending entries
(XREADGROUP id ``0``), and entries a killed daemon left pending are claimed
at start-up (XAUTOCLAIM, :meth:`StreamReader.reclaim`).

Test failpoint (:mod:`swarmd.testing.failpoints`): ``after_read``.
"""

from __future__ import annotations

import sqlite3

from loguru import logger
from redis import Redis
from redis.exceptions import RedisError, ResponseError

from swarmd import constants as K
from swarmd import queue as Q
from swarmd.testing.failpoints import failpoint

#: Failures that a retry can cure (the data is fine; Redis or the disk is not).
TRANSIENT = (RedisError, OSError, sqlite3.OperationalError)


def as_text(value) -> str:
    """A stream entry id (bytes or str) as text, for log lines."""
    return value.decode() if isinstance(value, bytes) else str(value)


def ensure_group(redis: Redis, stream: str, group: str) -> bool:
    """Create consumer group ``group`` on ``stream`` (and the stream) if
    missing, reading from the stream's first entry.  Returns whether it was created."""
    try:
        redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
        return False
    return True


class StreamReader:
    """The stream reading of :class:`swarmd.daemon.service.Daemon` (a mixin:
    uses ``redis``, ``consumer`` and ``_redo``, and hands batches to
    ``_events`` and ``admit_batch``)."""

    _READS = ((Q.EVENT_STREAM, Q.EVENT_GROUP), (K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP))
    #: entries read from each stream at most per read
    READ_COUNT = 200

    def reclaim(self) -> int:
        """Handle entries of both streams that a previous daemon read but never
        acknowledged (XAUTOCLAIM); returns how many objectives were reclaimed."""
        events = self._claim(Q.EVENT_STREAM, Q.EVENT_GROUP, self._events)
        events += self.drain_events()     # finished while no daemon ran: persisted before any re-dispatch
        claimed = self._claim(K.OBJECTIVE_STREAM, K.OBJECTIVE_GROUP, self.admit_batch)
        if claimed or events:
            logger.info("start-up: reclaimed {} objective(s) left pending and persisted {} worker event(s) "
                        "from before this daemon",
                        claimed, events)
        return claimed

    def _claim(self, stream: str, group: str, handle) -> int:
        claimed, start = 0, "0-0"
        while True:
            start, entries, *_ = self.redis.xautoclaim(stream, group, self.consumer, min_idle_time=0,
                                                       start_id=start, count=100)
            live = [(entry_id, fields) for entry_id, fields in entries if fields]
            gone = [entry_id for entry_id, fields in entries if not fields]
            if gone:    # entries deleted from the stream while pending
                self.redis.xack(stream, group, *gone)
            if live:
                handle(live)
                claimed += len(live)
            if start in (b"0-0", "0-0"):
                return claimed

    def read_streams(self, block_ms: int = 500) -> list:
        """New entries of both streams, each read under its own consumer group
        (XREADGROUP takes one group, so one call per stream); when both are
        empty, waits up to ``block_ms`` for a new entry in either and reads
        again.  Returns XREADGROUP's shape: ``[(stream, [(entry_id, fields)])]``."""
        batches = self._read_new()
        if batches:
            return batches
        self._wait_for_new(block_ms)
        return self._read_new()

    def _read_new(self) -> list:
        """One XREADGROUP per stream: new entries (``>``), or for a stream in
        ``_redo`` this consumer's pending ones (id ``0``) until none are left.
        Pending entries deleted from the stream meanwhile are acknowledged."""
        pipe = self.redis.pipeline(transaction=False)
        for stream, group in self._READS:
            pipe.xreadgroup(group, self.consumer, {stream: "0" if stream in self._redo else ">"},
                            count=self.READ_COUNT)
        batches = []
        for (stream, group), result in zip(self._READS, pipe.execute()):
            entries = [e for _s, es in result or [] for e in es]
            gone = [entry_id for entry_id, fields in entries if not fields]
            if gone:
                self.redis.xack(stream, group, *gone)
            live = [(entry_id, fields) for entry_id, fields in entries if fields]
            if stream in self._redo and not entries:
                self._redo.discard(stream)
            if live:
                batches.append((stream, live))
        return batches

    def _wait_for_new(self, block_ms: int) -> None:
        """Block (XREAD, up to ``block_ms``) until an entry newer than what
        each group was last handed arrives in either stream."""
        pipe = self.redis.pipeline(transaction=False)
        for stream, _group in self._READS:
            pipe.xinfo_groups(stream)
        last = {}
        for (stream, group), groups in zip(self._READS, pipe.execute()):
            delivered = [g["last-delivered-id"] for g in groups if g["name"] in (group, group.encode())]
            last[stream] = delivered[0] if delivered else "0-0"
        self.redis.xread(last, count=1, block=block_ms)

    def handle(self, batches: list) -> None:
        """Handle one :meth:`read_streams` result: worker events first, then
        new objectives, so an objective whose id already finished (its event
        read in the same batch) is seen as final and not dispatched again."""
        got = {(s.decode() if isinstance(s, bytes) else s): entries for s, entries in batches}
        if got.get(Q.EVENT_STREAM):
            try:
                self._events(got[Q.EVENT_STREAM])
            except BaseException:
                self._redo.add(Q.EVENT_STREAM)
                raise
        entries = got.get(K.OBJECTIVE_STREAM)
        if entries:
            failpoint("after_read")
            try:
                self.admit_batch(entries)
            except BaseException:
                self._redo.add(K.OBJECTIVE_STREAM)
                raise

