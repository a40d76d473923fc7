"""The timer store (stove_ctl/core/jobstore.py): APScheduler's table on plain sqlite3, and
what happens when the disk stops taking writes."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from stove_ctl.core.jobstore import SqliteJobStore

UTC = dt.UTC


def scheduler(path: Path) -> tuple[BackgroundScheduler, SqliteJobStore]:
    store = SqliteJobStore(path)
    sched = BackgroundScheduler(jobstores={"default": store}, timezone=UTC)
    sched.start(paused=True)  # jobs are stored, nothing runs
    return sched, store


def add(sched: BackgroundScheduler, job_id: str, minutes: int) -> None:
    due = dt.datetime.now(UTC) + dt.timedelta(minutes=minutes)
    sched.add_job(
        "stove_ctl.core.timers:fire",
        DateTrigger(run_date=due, timezone=UTC),
        id=job_id,
        kwargs={
            "service": "t",
            "timer_id": job_id,
            "burners": ["k/l"],
            "action": "shutoff",
            "due": 0.0,
        },
    )


def test_timers_persist_in_apschedulers_own_table(tmp_path: Path) -> None:
    sched, store = scheduler(tmp_path / "timers.db")
    add(sched, "a", 10)
    add(sched, "b", 5)
    sched.shutdown(wait=False)
    again, store = scheduler(tmp_path / "timers.db")
    assert [j.id for j in again.get_jobs()] == ["b", "a"]  # by due time
    assert sorted(store.job_ids()) == ["a", "b"]
    again.remove_job("b")
    again.shutdown(wait=False)
    rows = sqlite3.connect(tmp_path / "timers.db").execute("SELECT id FROM apscheduler_jobs")
    assert [r[0] for r in rows] == ["a"]


def test_a_failed_write_keeps_every_timer_in_memory(tmp_path: Path) -> None:
    sched, store = scheduler(tmp_path / "timers.db")
    add(sched, "kept", 10)
    assert store._db is not None
    store._db.execute("PRAGMA query_only = 1")  # from now on every write fails, like a full disk
    add(sched, "new", 5)  # must not raise, must not be lost
    assert store.error is not None and "timers are kept in memory" in store.error
    assert [j.id for j in sched.get_jobs()] == ["new", "kept"]
    sched.remove_job("kept")  # what APScheduler does after a timer fires
    assert [j.id for j in sched.get_jobs()] == ["new"]
    assert store.get_next_run_time() is not None
    sched.shutdown(wait=False)


def test_summaries_read_kwargs_without_unpickling_and_fill_in_older_files(
    tmp_path: Path,
) -> None:
    sched, store = scheduler(tmp_path / "timers.db")
    add(sched, "a", 10)
    add(sched, "b", 5)
    sched.remove_job("a")
    summaries = {job_id: rest for job_id, *rest in store.summaries()}
    assert list(summaries) == ["b"]
    due, burners, action = summaries["b"]
    assert burners == ["k/l"] and action == "shutoff"
    assert due is not None and abs(due - (dt.datetime.now(UTC).timestamp() + 300)) < 60
    sched.shutdown(wait=False)
    # A file an older stove-ctl wrote has no kwargs rows: read from the job, once.
    db = sqlite3.connect(tmp_path / "timers.db", isolation_level=None)
    db.execute("DELETE FROM stove_ctl_job_kwargs")
    db.close()
    again, store = scheduler(tmp_path / "timers.db")
    assert list(store.summaries()) == [("b", due, ["k/l"], "shutoff")]
    rows = sqlite3.connect(tmp_path / "timers.db").execute("SELECT id FROM stove_ctl_job_kwargs")
    assert [r[0] for r in rows] == ["b"]
    again.shutdown(wait=False)
