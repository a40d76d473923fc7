"""Persisted daemon state: which burners are locked, and each burner's last shutoff.

One small JSON file, replaced atomically (write, fsync, rename), so a crash leaves
either the old or the new state, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger(__name__)


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
    outcome: str = "cutting"  # cutting | restored | locked


class PersistedState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    locks: dict[str, LockRecord] = {}
    last_shutoff: dict[str, ShutoffRecord] = {}


class StateStore:
    """``state.json``: read once at start-up, replaced whole on every change.

    Fails closed (DESIGN invariant 3): a file that cannot be read is never taken for
    "no locks" in silence. ``lost`` says what happened, the controller treats every
    burner it finds cut as locked, and the file is kept aside for a person to read,
    never overwritten.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None  # the last write failed: why
        self.lost: str | None = None  # the saved state could not be read at start-up
        self._read_only = False  # the unreadable file could not be moved aside

    def load(self) -> PersistedState:
        try:
            raw: Any = json.loads(self.path.read_bytes())
            return PersistedState.model_validate(raw)
        except FileNotFoundError:
            return PersistedState()
        except (OSError, ValueError, ValidationError) as exc:
            reason = _reason(exc)
        aside = damaged_name(self.path)
        try:
            os.replace(self.path, aside)
            kept = f"kept as {aside}"
            _sync_dir(self.path.parent)
        except OSError as exc:
            # Left where it is, and never written over: no state is saved this run.
            self._read_only = True
            kept = f"left in place ({exc.strerror or exc}); no state is saved until it is fixed"
        self.lost = f"{self.path} could not be read at start-up ({reason}); {kept}"
        log.error("STATE LOST: %s; burners found cut are held locked", self.lost)
        return PersistedState()

    def save(self, state: PersistedState) -> bool:
        """Write the state atomically: temp file, fsync, rename, fsync the directory.
        Returns False (and logs) when the disk refuses."""
        if self._read_only:
            self.error = f"{self.path} is unreadable and could not be moved aside"
            return False
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(state.model_dump_json(indent=1))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            _sync_dir(self.path.parent)
        except OSError as exc:
            if self.error is None:
                log.error("cannot write state file %s: %s", self.path, exc)
            self.error = f"cannot write {self.path}: {exc}"
            return False
        self.error = None
        return True

    def health(self) -> str:
        """``ok``, or in words what is wrong with the saved state."""
        problems = [p for p in (self.lost, self.error) if p is not None]
        return "; ".join(problems) or "ok"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "not a state file"
    if isinstance(exc, IsADirectoryError):
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
    file has (state.json.damaged, .damaged-2, …), so none is ever overwritten."""
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
