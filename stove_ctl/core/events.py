"""The event model and the event log (SQLite under ``state_dir``).

Writing is done by a background thread so that the safety path never waits for the
disk, and a broken store (read-only, full disk) never stops a cut (DESIGN invariant
8): events are then kept in memory only, and the trouble is logged once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from stove_ctl.clock import Clock

log = logging.getLogger(__name__)

EventKind = Literal[
    "daemon_start",
    "daemon_stop",
    "command",
    "rejected",
    "cut_commanded",
    "cut_confirmed",
    "restore_commanded",
    "restore_confirmed",
    "lock",
    "unlock",
    "lock_reasserted",
    "fault",
    "recovered",
    "timer_set",
    "timer_cancelled",
    "timer_extended",
    "timer_fired",
    "warning",
    "snoozed",
    "flame_out_confirmed",
    "flame_relit",
    "alarm",
    "input",
    "clock_jump",
    "reload",
    "self_test",
    "commissioned",
]

MEMORY_EVENTS = 2000
PRUNE_EVERY_S = 24 * 3600.0
WRITE_BATCH = 1000  # events written in one transaction, at most


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int = 0
    ts: float
    kind: EventKind
    burner: str | None = None
    source: str | None = None
    command_id: str | None = None
    latency_ms: float | None = None
    detail: dict[str, Any] = {}


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    burner TEXT,
    source TEXT,
    command_id TEXT,
    latency_ms REAL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_burner ON events (burner, seq);
"""


class EventLog:
    """Append-only event log with live subscribers."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._recent: deque[Event] = deque(maxlen=MEMORY_EVENTS)
        self._subscribers: list[Callable[[Event], None]] = []
        self._queue: queue.Queue[Event | float | None] = queue.Queue()  # float: prune
        self._lock = threading.Lock()
        self._seq = 0
        self._held = 0
        self._pending: list[Event] = []
        self.store_error: str | None = None
        self._thread: threading.Thread | None = None
        if path is not None:
            self._seq = self._last_seq(path)
            self._thread = threading.Thread(target=self._writer, name="event-log", daemon=True)
            self._thread.start()

    def _last_seq(self, path: Path) -> int:
        try:
            with contextlib.closing(sqlite3.connect(path)) as db:
                db.executescript(_SCHEMA)
                row = db.execute("SELECT MAX(seq) FROM events").fetchone()
                return int(row[0] or 0)
        except sqlite3.Error as exc:
            self._store_failed(exc)
            return 0

    def _store_failed(self, exc: Exception) -> None:
        if self.store_error is None:
            log.error("event store %s unusable, keeping events in memory: %s", self.path, exc)
        self.store_error = str(exc)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` for every new event; returns the unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def emit(self, kind: EventKind, ts: float, **fields: Any) -> Event:
        """Record an event. Never raises because of the store; never blocks on disk."""
        with self._lock:
            self._seq += 1
            event = Event(seq=self._seq, ts=ts, kind=kind, **fields)
            self._recent.append(event)
            if self._held:
                self._pending.append(event)
                return event
        self._deliver(event)
        return event

    def hold(self) -> Callable[..., None]:
        """Record events at once, but pass them to the store and the subscribers only
        when every hold is released, in order. Returns the release (idempotent);
        ``release(force=True)`` tells everything held so far even while other holds
        remain, so that holds overlapping one another cannot keep events back for
        longer than one hold's own bound.

        For the shutoff path: from a command to its relay's answer, a subscriber (the
        MQTT interface publishing events and state) or the store's thread would take
        the CPU and the GIL while the relay command is still on its way."""
        with self._lock:
            self._held += 1
        released = False

        def release(force: bool = False) -> None:
            nonlocal released
            pending: list[Event] = []
            with self._lock:
                if released:
                    return
                released = True
                self._held -= 1
                if not self._held or force:  # tell everything held so far
                    pending, self._pending = self._pending, []
            for event in pending:
                self._deliver(event)

        return release

    def _deliver(self, event: Event) -> None:
        if self._thread is not None:
            self._queue.put(event)
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber failed")

    def _writer(self) -> None:
        """Store what is queued, a batch at a time: the events of one burst (an ``off
        all`` is five events a burner) go in one transaction, not one each."""
        assert self.path is not None
        db: sqlite3.Connection | None = None
        while True:
            batch = [self._queue.get()]
            while len(batch) < WRITE_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in batch
            try:
                db = self._store(db, batch[: batch.index(None)] if stop else batch)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if stop:
                if db is not None:
                    db.close()
                return

    def _store(
        self, db: sqlite3.Connection | None, batch: list[Event | float | None]
    ) -> sqlite3.Connection | None:
        """Write ``batch`` (events; a float is a prune); returns the connection to use
        next time (None after a failure: opened again then)."""
        assert self.path is not None
        rows = []
        for item in batch:
            if isinstance(item, Event):
                try:
                    rows.append(_row(item))
                except Exception:  # this thread must outlive any one event
                    # A dead writer would leave flush() (every query) waiting for ever.
                    log.exception("an event could not be stored; it is kept in memory")
        try:
            if db is None:
                db = sqlite3.connect(self.path)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
            with db:
                db.executemany(
                    "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
            for before in (item for item in batch if isinstance(item, float)):
                with db:
                    gone = db.execute("DELETE FROM events WHERE ts < ?", (before,)).rowcount
                if gone:
                    log.info("event log: pruned %d event(s) past keep_days", gone)
            self.store_error = None
        except sqlite3.Error as exc:
            self._store_failed(exc)
            if db is not None:
                db.close()
            return None
        return db

    def prune(self, before: float) -> None:
        """Delete the stored events older than ``before`` (Unix time), in the writer's
        thread: never on the event loop, never in a shutoff's way."""
        if self._thread is not None:
            self._queue.put(before)

    async def keep(self, clock: Clock, keep_days: int) -> None:
        """Prune the events older than ``keep_days`` now and once a day after."""
        while True:
            self.prune(clock.time() - keep_days * 86400.0)
            await clock.sleep(PRUNE_EVERY_S)

    def flush(self) -> None:
        """Wait until every emitted event has been offered to the store."""
        if self._thread is not None:
            self._queue.join()

    def query(self, limit: int = 50, burners: Collection[str] | None = None) -> list[Event]:
        """The newest ``limit`` events (of ``burners``, if given), oldest first.

        Reads the store; falls back to the events kept in memory when it is broken.
        """
        self.flush()
        if self.path is not None and self.store_error is None:
            try:
                return self._query_store(limit, burners)
            except sqlite3.Error as exc:
                self._store_failed(exc)
        events = [e for e in self._recent if burners is None or e.burner in burners]
        return events[-limit:]

    def _query_store(self, limit: int, burners: Collection[str] | None) -> list[Event]:
        assert self.path is not None
        return read_events(self.path, limit, burners)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None


def read_events(path: Path, limit: int, burners: Collection[str] | None = None) -> list[Event]:
    """The newest ``limit`` events in an event store (of ``burners``, if given), oldest
    first, read-only: a running daemon's, or a stopped or crashed one's."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        sql = "SELECT * FROM events"
        args: tuple[Any, ...] = ()
        if burners is not None:
            sql += f" WHERE burner IN ({', '.join('?' for _ in burners)})"
            args = tuple(burners)
        rows = db.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
    return [
        Event(
            seq=r[0],
            ts=r[1],
            kind=r[2],
            burner=r[3],
            source=r[4],
            command_id=r[5],
            latency_ms=r[6],
            detail=json.loads(r[7]),
        )
        for r in reversed(rows)
    ]


def _row(event: Event) -> tuple[Any, ...]:
    return (
        event.seq,
        event.ts,
        event.kind,
        _utf8(event.burner),
        _utf8(event.source),
        _utf8(event.command_id),
        event.latency_ms,
        _utf8(json.dumps(event.detail, ensure_ascii=False)),
    )


def _utf8(text: str | None) -> str | None:
    """``text`` as SQLite can store it: half a surrogate pair (from a device's or a
    sender's malformed string) is written as "?" instead of failing the row."""
    if text is None:
        return None
    return text.encode("utf-8", "replace").decode("utf-8")
