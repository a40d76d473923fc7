"""The state store (state.db): rows per burner, batched writes, fail-closed reads, and
taking over an older stove-ctl's state.json."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from stove_ctl.core.state import LockRecord, ShutoffRecord, StateStore

LOCK = LockRecord(since=1.0, source="cli", command_id="c1")
CUT = ShutoffRecord(source="mqtt", requested_at=2.0, cut_at=2.1, outcome="cutting")


def rows(path: Path) -> dict[str, tuple[str | None, str | None]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {k: (lock, last) for k, lock, last in db.execute("SELECT * FROM burners")}
    finally:
        db.close()


def test_a_saved_lock_and_shutoff_come_back(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    assert store.load().locks == {}
    store.put("k/left", LOCK, CUT)
    store.put("k/right", None, None)
    assert store.flush() and store.health() == "ok"
    store.close()
    again = StateStore(tmp_path / "state.db")
    state = again.load()
    assert state.locks == {"k/left": LOCK}
    assert state.last_shutoff == {"k/left": CUT}
    assert again.lost is None and again.health() == "ok"


def test_a_flush_writes_only_the_burners_that_changed(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    store.load()
    store.put("k/left", None, CUT)
    store.put("k/right", None, CUT)
    store.flush()
    # Someone else's change to right's row survives a flush that is about left only.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("UPDATE burners SET last_shutoff = 'marker' WHERE key = 'k/right'")
    other.close()
    store.put("k/left", LOCK, CUT)
    assert store.flush()
    saved = rows(path)
    assert saved["k/right"][1] == "marker"
    assert json.loads(saved["k/left"][0] or "null")["source"] == "cli"
    assert store.flush() and store.health() == "ok"  # nothing left to write


def test_changes_noted_twice_are_written_once_with_the_latest(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.load()
    store.put("k/left", LOCK, None)
    store.put("k/left", None, CUT)
    store.flush()
    assert rows(tmp_path / "state.db")["k/left"] == (None, CUT.model_dump_json())


def test_an_older_state_json_is_taken_over_once(tmp_path: Path) -> None:
    legacy = tmp_path / "state.json"
    legacy.write_text(
        json.dumps(
            {
                "locks": {"k/left": LOCK.model_dump()},
                "last_shutoff": {"k/right": CUT.model_dump()},
            }
        )
    )
    store = StateStore(tmp_path / "state.db")
    state = store.load()
    assert state.locks == {"k/left": LOCK} and state.last_shutoff == {"k/right": CUT}
    assert store.lost is None
    assert not legacy.exists() and (tmp_path / "state.json.imported").exists()
    store.close()
    again = StateStore(tmp_path / "state.db").load()
    assert again.locks == {"k/left": LOCK} and again.last_shutoff == {"k/right": CUT}


def test_a_damaged_state_json_is_state_lost_and_kept(tmp_path: Path) -> None:
    legacy = tmp_path / "state.json"
    legacy.write_text('{"locks": {"k/left": ')
    store = StateStore(tmp_path / "state.db")
    assert store.load().locks == {}
    assert store.lost is not None and "state.json could not be read" in store.lost
    assert (tmp_path / "state.json.damaged").read_text() == '{"locks": {"k/left": '
    assert store.health() != "ok"


def test_a_garbage_state_db_is_lost_kept_aside_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    store = StateStore(path)
    assert store.load().locks == {}
    assert store.lost is not None and "could not be read at start-up" in store.lost
    assert (tmp_path / "state.db.damaged").read_bytes().startswith(b"SQLite format 3")
    store.put("k/left", LOCK, None)
    assert store.flush()  # a new store, saving again
    assert store.health() == store.lost  # still says it was lost


def test_a_state_dir_that_does_not_exist_is_an_error_not_a_loss(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "missing" / "state.db")
    assert store.load().locks == {}
    assert store.lost is None
    store.put("k/left", LOCK, None)
    assert not store.flush()
    assert store.error is not None and "No such file or directory" in store.error
