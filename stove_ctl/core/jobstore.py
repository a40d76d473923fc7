"""APScheduler's persistent job store on the standard library's sqlite3.

A drop-in for ``SQLAlchemyJobStore(url="sqlite:///…")``: the same table
(``apscheduler_jobs``: id, next_run_time, pickled job_state) and the same index, so a
``timers.db`` written by either is read by the other. Why not SQLAlchemy: importing
it costs about 12 MB of resident memory and 0.3 s of start-up
(docs/PERFORMANCE.md), for five statements.

The database is in WAL mode: a commit is one append and one fsync instead of the
rollback journal's create, write, fsync and delete, and it is done on the daemon's
event loop. ``synchronous`` stays FULL, so a timer the daemon said it set survives a
power cut as well as a crash.

``summaries()`` reads every job's id, next run time and keyword arguments without
unpickling a job: a table of our own beside APScheduler's (``stove_ctl_job_kwargs``, the
kwargs as JSON) answers it. Unpickling 100,000 timers takes about 2 s; this about
0.3 s. A row it lacks (a file an older stove-ctl or SQLAlchemyJobStore wrote) is filled
in from the pickled job once.

A write that fails (full disk, a file system turned read-only) must not lose the timer
being set, nor stop the scheduler (APScheduler does not survive an exception from
``remove_job`` after a timer fires). So on the first failed write the store copies
every job it can read into memory and carries on there; ``error`` says why, and
``status`` shows it. Timers set from then on do not survive a restart, and say so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.util import datetime_to_utc_timestamp, utc_timestamp_to_datetime

from stove_ctl.core.state import damaged_name

log = logging.getLogger(__name__)
# What ``Job.__getstate__`` saves, and ``Job(scheduler, ...)`` takes back.
_JOB_FIELDS = (
    "id",
    "func",
    "trigger",
    "executor",
    "args",
    "kwargs",
    "name",
    "misfire_grace_time",
    "coalesce",
    "max_instances",
    "next_run_time",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS apscheduler_jobs (
    id VARCHAR(191) NOT NULL PRIMARY KEY,
    next_run_time FLOAT,
    job_state BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_apscheduler_jobs_next_run_time
    ON apscheduler_jobs (next_run_time);
CREATE TABLE IF NOT EXISTS stove_ctl_job_kwargs (
    id VARCHAR(191) NOT NULL PRIMARY KEY,
    kwargs TEXT NOT NULL
);
"""
# id, next run (UTC timestamp), the burners it acts on, its action
Summary = tuple[str, float | None, list[str], str]


class SqliteJobStore(BaseJobStore):  # type: ignore[misc]
    def __init__(self, path: Path, pickle_protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        super().__init__()
        self.path = path
        self.pickle_protocol = pickle_protocol
        self._db: sqlite3.Connection | None = None
        self._memory: MemoryJobStore | None = None  # after a failed write
        self.error: str | None = None
        self.lost: str | None = None  # the file could not be read at start-up: why
        self._was_empty = False

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            # Unreadable (garbage, a directory, cut short): the timers in it are lost.
            # Say so loudly, keep the file for a person, and go on with a new one.
            reason = "empty" if self._was_empty else str(exc)
            aside = self._put_aside()  # raises OSError if it cannot: timers then in memory
            self.lost = f"{self.path} could not be read at start-up ({reason}); kept as {aside}"
            log.error("TIMERS LOST: %s", self.lost)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        # An existing file of no bytes is not a database SQLite wrote: something lost it.
        self._was_empty = self.path.is_file() and self.path.stat().st_size == 0
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            if self._was_empty:
                raise sqlite3.DatabaseError("empty file")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            db.execute("SELECT id, next_run_time FROM apscheduler_jobs").fetchall()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _put_aside(self) -> Path:
        """Move the unreadable file (and its WAL) to a name of its own; never overwrite."""
        aside = damaged_name(self.path)
        os.replace(self.path, aside)
        for suffix in ("-wal", "-shm"):
            extra = self.path.with_name(self.path.name + suffix)
            if extra.exists():
                os.replace(extra, aside.with_name(aside.name + suffix))
        return aside

    def shutdown(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        assert self._db is not None
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")  # a full disk fails here: roll back, then raise
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    # -- reads -------------------------------------------------------------------

    def lookup_job(self, job_id: str) -> Job | None:
        if self._memory is not None:
            return self._memory.lookup_job(job_id)
        assert self._db is not None
        row = self._db.execute(
            "SELECT job_state FROM apscheduler_jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return self._reconstitute(row[0]) if row else None

    def get_due_jobs(self, now: datetime) -> list[Job]:
        if self._memory is not None:
            return list(self._memory.get_due_jobs(now))
        return self._jobs(
            "WHERE next_run_time <= ? ORDER BY next_run_time", (datetime_to_utc_timestamp(now),)
        )

    def get_next_run_time(self) -> datetime | None:
        if self._memory is not None:
            return self._memory.get_next_run_time()  # type: ignore[no-any-return]
        assert self._db is not None
        row = self._db.execute(
            "SELECT next_run_time FROM apscheduler_jobs WHERE next_run_time IS NOT NULL "
            "ORDER BY next_run_time LIMIT 1"
        ).fetchone()
        return utc_timestamp_to_datetime(row[0]) if row else None

    def get_all_jobs(self) -> list[Job]:
        if self._memory is not None:
            return list(self._memory.get_all_jobs())
        jobs = self._jobs("ORDER BY next_run_time", ())
        self._fix_paused_jobs_sorting(jobs)
        return jobs

    def job_ids(self) -> list[str]:
        return [summary[0] for summary in self.summaries()]

    def summaries(self) -> Iterator[Summary]:
        """Every job's id, next run time, burners and action, without unpickling the
        jobs and without building each job's whole kwargs (100,000 timers in a few
        tens of MB, not a few hundred)."""
        if self._memory is not None:
            for job in self._memory.get_all_jobs():
                yield _summary(job)
            return
        assert self._db is not None
        missing: list[tuple[str, str]] = []
        rows = self._db.execute(
            "SELECT j.id, j.next_run_time, k.kwargs IS NULL, "
            "json_extract(k.kwargs, '$.burners'), json_extract(k.kwargs, '$.action') "
            "FROM apscheduler_jobs AS j LEFT JOIN stove_ctl_job_kwargs AS k ON k.id = j.id"
        )
        for job_id, next_run, lacking, burners, action in rows:
            if lacking:  # written by an older stove-ctl: read the job once
                job = self.lookup_job(job_id)
                if job is None:
                    continue
                missing.append((job_id, _kwargs_json(job)))
                yield _summary(job)
                continue
            yield (job_id, next_run, json.loads(burners) if burners else [], action or "")
        if missing:
            with contextlib.suppress(sqlite3.Error), self._write() as db:
                db.executemany("INSERT OR REPLACE INTO stove_ctl_job_kwargs VALUES (?, ?)", missing)

    # -- writes ------------------------------------------------------------------

    def add_job(self, job: Job) -> None:
        try:
            on_file = self._persist(
                ("INSERT INTO apscheduler_jobs VALUES (?, ?, ?)", self._row(job)),
                ("INSERT OR REPLACE INTO stove_ctl_job_kwargs VALUES (?, ?)", self._kwargs(job)),
            )
        except sqlite3.IntegrityError:
            raise ConflictingIdError(job.id) from None
        if not on_file:
            self._in_memory().add_job(job)

    def update_job(self, job: Job) -> None:
        job_id, next_run, state = self._row(job)
        if not self._persist(
            (
                "UPDATE apscheduler_jobs SET next_run_time = ?, job_state = ? WHERE id = ?",
                (next_run, state, job_id),
            ),
            ("INSERT OR REPLACE INTO stove_ctl_job_kwargs VALUES (?, ?)", self._kwargs(job)),
            must_match=job.id,
        ):
            self._in_memory().update_job(job)

    def remove_job(self, job_id: str) -> None:
        if not self._persist(
            ("DELETE FROM apscheduler_jobs WHERE id = ?", (job_id,)),
            ("DELETE FROM stove_ctl_job_kwargs WHERE id = ?", (job_id,)),
            must_match=job_id,
        ):
            self._in_memory().remove_job(job_id)

    def remove_all_jobs(self) -> None:
        if not self._persist(
            ("DELETE FROM apscheduler_jobs", ()), ("DELETE FROM stove_ctl_job_kwargs", ())
        ):
            self._in_memory().remove_all_jobs()

    def _persist(
        self, *statements: tuple[str, tuple[Any, ...]], must_match: str | None = None
    ) -> bool:
        """One transaction on the file. False when the timers live in memory (from
        before, or from this failure on): the caller then makes the change there.
        ``must_match``: the first statement must change a row, or JobLookupError."""
        if self._memory is not None:
            return False
        try:
            with self._write() as db:
                for n, (sql, args) in enumerate(statements):
                    if db.execute(sql, args).rowcount == 0 and n == 0 and must_match is not None:
                        raise JobLookupError(must_match)
            return True
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            self._to_memory(exc)
            return False

    def _row(self, job: Job) -> tuple[str, float | None, bytes]:
        return (job.id, datetime_to_utc_timestamp(job.next_run_time), self._state(job))

    def _kwargs(self, job: Job) -> tuple[str, str]:
        return (job.id, _kwargs_json(job))

    def _state(self, job: Job) -> bytes:
        return pickle.dumps(job.__getstate__(), self.pickle_protocol)

    def _in_memory(self) -> MemoryJobStore:
        assert self._memory is not None
        return self._memory

    def _to_memory(self, exc: sqlite3.Error) -> None:
        """Carry on in memory with every job the file still holds."""
        log.error(
            "timer store %s cannot be written (%s); timers are kept in memory", self.path, exc
        )
        self.error = f"cannot write {self.path}: {exc}; timers are kept in memory"
        try:
            jobs = self._jobs("ORDER BY next_run_time", ())
        except sqlite3.Error:
            log.exception("could not read the timers back either")
            jobs = []
        memory = MemoryJobStore()
        memory.start(self._scheduler, self._alias)
        for job in jobs:
            memory.add_job(job)
        self._memory = memory

    # -- helpers -----------------------------------------------------------------

    def _reconstitute(self, blob: bytes) -> Job:
        """A job from its pickled state, through ``Job``'s public constructor (which
        checks every field again): APScheduler's own stores set the job's private
        scheduler reference instead, which a store of ours must not touch."""
        state = pickle.loads(blob)
        if state.get("version", 1) > 1:
            raise ValueError(f"job state version {state['version']} is newer than this APScheduler")
        return Job(self._scheduler, **{name: state[name] for name in _JOB_FIELDS})

    def _jobs(self, where: str, args: tuple[Any, ...]) -> list[Job]:
        assert self._db is not None
        jobs, failed = [], []
        for job_id, blob in self._db.execute(
            f"SELECT id, job_state FROM apscheduler_jobs {where}", args
        ).fetchall():
            try:
                jobs.append(self._reconstitute(blob))
            except Exception:  # as SQLAlchemyJobStore: drop what cannot be loaded
                log.exception("unable to restore timer %s; removing it", job_id)
                failed.append(job_id)
        if failed:
            with contextlib.suppress(sqlite3.Error), self._write() as db:
                db.executemany("DELETE FROM apscheduler_jobs WHERE id = ?", [(i,) for i in failed])
        return jobs

    def __repr__(self) -> str:
        return f"<SqliteJobStore ({self.path})>"


def _kwargs_json(job: Job) -> str:
    return json.dumps(job.kwargs, default=str)


def _summary(job: Job) -> Summary:
    kwargs = job.kwargs
    return (
        job.id,
        datetime_to_utc_timestamp(job.next_run_time),
        list(kwargs.get("burners", [])),
        str(kwargs.get("action", "")),
    )
