"""The event log keeps working whatever an event holds."""

from __future__ import annotations

import json
from pathlib import Path

from stove_ctl.core.events import EventLog


def test_an_event_holding_half_a_surrogate_pair_is_stored_and_the_log_goes_on(
    tmp_path: Path,
) -> None:
    # A device's error text or a sender's id can hold one; SQLite cannot store it as
    # is. Before, the writer thread died on it and every later query waited for ever.
    log = EventLog(tmp_path / "events.db")
    try:
        log.emit("rejected", 1.0, command_id="a\ud800b", detail={"error": "x\udcffy"})
        log.emit("command", 2.0, command_id="next")
        events = log.query(10)
        assert [(e.command_id, e.detail) for e in events] == [
            ("a?b", {"error": "x?y"}),
            ("next", {}),
        ]
        json.dumps([e.model_dump() for e in events], ensure_ascii=False).encode("utf-8")
        assert log.store_error is None
    finally:
        log.close()


def test_events_past_keep_days_are_pruned_daily_off_the_loop(tmp_path: Path) -> None:
    import asyncio

    from stove_ctl.clock import ManualClock

    clock = ManualClock()
    log = EventLog(tmp_path / "events.db")
    day = 86400.0
    now = clock.time()
    try:
        log.emit("command", now - 400 * day, command_id="old")
        log.emit("command", now - 2 * day, command_id="recent")
        log.emit("command", now, command_id="now")

        async def body() -> None:
            keeper = asyncio.ensure_future(log.keep(clock, keep_days=365))
            await clock.settle()
            log.flush()
            assert [e.command_id for e in log.query(10)] == ["recent", "now"]
            # Kept for a day only (a reload with keep_days: 1): "recent" is 2 days old.
            keeper.cancel()
            keeper = asyncio.ensure_future(log.keep(clock, keep_days=1))
            await clock.settle()
            log.flush()
            assert [e.command_id for e in log.query(10)] == ["now"]
            log.emit("command", clock.time(), command_id="later")
            await clock.advance(3 * day)  # pruned again each day, without being asked
            log.flush()
            assert [e.command_id for e in log.query(10)] == []
            keeper.cancel()

        asyncio.run(body())
    finally:
        log.close()
