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
