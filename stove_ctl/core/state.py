"""Persisted daemon state: which burners are locked, and each burner's last shutoff.

``state.db`` (SQLite): one row per burner. A change writes only the rows of the burners
it touched, in one transaction (WAL, ``synchronous=FULL``: one append and one fsync),
so an ``off all`` on 1,000 burners writes each burner's row, not the whole building's
state once per burner. A commit is atomic: a power cut leaves the rows as they were
before it or after it, never half of one.

Rows are written in batches: the controller collects the changes of one event-loop
step and writes them together (``put`` then ``flush``), and writes a lock at once,
before it is reported (DESIGN invariant 3).

A ``state.json`` left by an older stove-ctl is read once, written into ``state.db``
and kept as ``state.json.imported``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger(__name__)

LEGACY_FILE = "state.json"  # what stove-ctl saved before state.db

_SCHEMA = """
CREATE TABLE IF NOT EXISTS burners (
    key TEXT PRIMARY KEY,
    lock TEXT,
    last_shutoff TEXT
);
"""
_UPSERT = (
    "INSERT INTO burners (key, lock, last_shutoff) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET lock = excluded.lock, last_shutoff = excluded.last_shutoff"
)


class LockRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    since: float
    source: str
    command_id: str | None = None


class ShutoffRecord(BaseModel):
    """One shutoff of one burner, as shown by ``status``."""

    model_config = ConfigDict(extra="ignore")

    source: str
    command_id: str | None = None
    requested_at: float
    cut_at: float | None = None
    cut_latency_ms: float | None = None
    restored_at: float | None = None
    outcome: str = "cutting"  # cutting | restored | locked | superseded (by a newer one)


class PersistedState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    locks: dict[str, LockRecord] = {}
    last_shutoff: dict[str, ShutoffRecord] = {}


class StateStore:
    """``state.db``: read once at start-up; then each change writes its burners' rows.

    Fails closed (DESIGN invariant 3): a store that cannot be read is never taken for
    "no locks" in silence. ``lost`` says what happened, the controller treats every
    burner it finds cut as locked, and the file is kept aside for a person to read,
    never overwritten.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None  # the last write failed: why
        self.lost: str | None = None  # the saved state could not be read at start-up
        self._db: sqlite3.Connection | None = None
        self._dirty: dict[str, tuple[LockRecord | None, ShutoffRecord | None]] = {}
        self._flush_due = False  # a flush is scheduled on the event loop
        self._batching = False  # inside one_write()

    # -- start-up ----------------------------------------------------------------

    def load(self) -> PersistedState:
        state = PersistedState()
        if not (self.path.exists() or self.path.is_symlink()):
            self._db = self._try_open()  # the first start: a new store
        else:
            try:
                self._db, state = self._open_and_read()
            except (OSError, sqlite3.Error, ValueError) as exc:
                if self._lose(self.path, _reason(exc, self.path)):
                    self._db = self._try_open()
                else:
                    self.error = f"{self.path} is unreadable and could not be moved aside"
        legacy = self.path.with_name(LEGACY_FILE)
        if legacy.exists() or legacy.is_symlink():
            self._import(legacy, state)
        return state

    def _open_and_read(self) -> tuple[sqlite3.Connection, PersistedState]:
        # An existing file of no bytes is not a database SQLite wrote: something lost it.
        if self.path.is_file() and self.path.stat().st_size == 0:
            raise ValueError("empty")
        db = self._connect()
        try:
            rows = db.execute("SELECT key, lock, last_shutoff FROM burners").fetchall()
            state = PersistedState()
            for key, lock, last in rows:
                if lock is not None:
                    state.locks[key] = LockRecord.model_validate_json(lock)
                if last is not None:
                    state.last_shutoff[key] = ShutoffRecord.model_validate_json(last)
        except BaseException:
            db.close()
            raise
        return db, state

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("damaged (quick_check)")
        except BaseException:
            db.close()
            raise
        return db

    def _try_open(self) -> sqlite3.Connection | None:
        """A new, empty store after the old one was put aside."""
        try:
            return self._connect()
        except (OSError, sqlite3.Error) as exc:
            # SQLite says "unable to open database file": ask the OS for its reason.
            reason = _cannot_create_in(self.path.parent) or _reason(exc, self.path)
            self.error = f"cannot write {self.path}: {reason}"
            log.error("%s; locks are not saved", self.error)
            return None

    def _lose(self, path: Path, reason: str) -> bool:
        """Say loudly that ``path`` could not be read, and keep it aside for a person.
        False when it could not be moved: it is then never written over."""
        aside = damaged_name(path)
        moved = True
        try:
            os.replace(path, aside)
            for suffix in ("-wal", "-shm"):
                extra = path.with_name(path.name + suffix)
                if extra.exists():
                    os.replace(extra, aside.with_name(aside.name + suffix))
            kept = f"kept as {aside}"
            _sync_dir(path.parent)
        except OSError as exc:
            moved = False
            kept = f"left in place ({exc.strerror or exc}); no state is saved until it is fixed"
        lost = f"{path} could not be read at start-up ({reason}); {kept}"
        self.lost = lost if self.lost is None else f"{self.lost}; {lost}"
        log.error("STATE LOST: %s; burners found cut are held locked", lost)
        return moved

    def _import(self, legacy: Path, state: PersistedState) -> None:
        """Take over an older stove-ctl's ``state.json`` (its locks win: they are the
        newer), then keep it as ``state.json.imported``."""
        try:
            old = PersistedState.model_validate(json.loads(legacy.read_bytes()))
        except (OSError, ValueError, ValidationError) as exc:
            self._lose(legacy, _reason(exc, legacy))
            return
        state.locks.update(old.locks)
        state.last_shutoff.update(old.last_shutoff)
        for key in old.locks.keys() | old.last_shutoff.keys():
            self.put(key, state.locks.get(key), state.last_shutoff.get(key))
        if not self.flush():
            return  # kept where it is: read again at the next start
        with contextlib.suppress(OSError):
            os.replace(legacy, legacy.with_name(legacy.name + ".imported"))
            _sync_dir(legacy.parent)
        log.info("imported %s into %s", legacy, self.path)

    # -- changes -----------------------------------------------------------------

    def save(
        self, key: str, lock: LockRecord | None, last: ShutoffRecord | None, now: bool = False
    ) -> None:
        """Note a burner's state and write it: ``now`` (a lock, before it is reported),
        or with every other change of this event-loop step, in one transaction, once
        the step is done."""
        self.put(key, lock, last)
        if now and not self._batching:
            self.flush()
        elif not self._flush_due and not self._batching:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_due = False
        self.flush()

    @contextlib.contextmanager
    def one_write(self) -> Iterator[None]:
        """Saves inside are written once, at the end (``lock all``: one write, not
        one per burner, before any relay is told)."""
        self._batching = True
        try:
            yield
        finally:
            self._batching = False
            self.flush()

    def put(self, key: str, lock: LockRecord | None, last: ShutoffRecord | None) -> None:
        """Note a burner's state, to be written by the next ``flush``."""
        self._dirty[key] = (lock, last)

    def flush(self) -> bool:
        """Write every row noted since the last flush, in one transaction. False (and
        logged once) when the disk refuses; the rows are tried again next time."""
        if not self._dirty:
            return self.error is None
        if self._db is None:
            if self.error is None:
                self.error = f"{self.path} cannot be written; locks are not saved"
            return False
        rows = [
            (
                key,
                lock.model_dump_json() if lock is not None else None,
                last.model_dump_json() if last is not None else None,
            )
            for key, (lock, last) in self._dirty.items()
        ]
        try:
            with self._transaction() as db:
                db.executemany(_UPSERT, rows)
        except sqlite3.Error as exc:
            if self.error is None:
                log.error("cannot write state %s: %s", self.path, exc)
            self.error = f"cannot write {self.path}: {_reason(exc, self.path)}"
            return False
        self._dirty.clear()
        self.error = None
        return True

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        assert self._db is not None
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None

    def health(self) -> str:
        """``ok``, or in words what is wrong with the saved state."""
        problems = [p for p in (self.lost, self.error) if p is not None]
        return "; ".join(problems) or "ok"


def _cannot_create_in(directory: Path) -> str | None:
    """The OS's own reason (``Read-only file system``, ``Permission denied``, ``No such
    file or directory``) why no file can be made in ``directory``, if it cannot."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def _reason(exc: BaseException, path: Path) -> str:
    if isinstance(exc, ValidationError):
        return "not a state file"
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        return "it is a directory"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return "not text"
    if isinstance(exc, json.JSONDecodeError):
        return "empty" if not exc.doc.strip() else f"not valid JSON: {exc.msg}"
    return str(exc)


def damaged_name(path: Path) -> Path:
    """Where to keep an unreadable file for a person to read: a name no earlier damaged
    file has (state.db.damaged, .damaged-2, …), so none is ever overwritten."""
    candidate = path.with_name(path.name + ".damaged")
    n = 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.name}.damaged-{n}")
    return candidate


def _sync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
