"""Persisted daemon state: which burners are locked, and each burner's last shutoff.

One small JSON file, replaced atomically (write, fsync, rename), so a crash leaves
either the old or the new state, never half of one.
"""

from __future__ import annotations

import contextlib
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
    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None

    def load(self) -> PersistedState:
        try:
            raw: Any = json.loads(self.path.read_text())
            return PersistedState.model_validate(raw)
        except FileNotFoundError:
            return PersistedState()
        except (OSError, ValueError, ValidationError) as exc:
            # A damaged file must not stop the daemon; keep it for a person to read.
            log.error("state file %s unreadable (%s); starting with no locks", self.path, exc)
            with contextlib.suppress(OSError):
                os.replace(self.path, self.path.with_suffix(".damaged"))
            return PersistedState()

    def save(self, state: PersistedState) -> bool:
        """Write the state. Returns False (and logs) when the disk refuses."""
        tmp = self.path.with_suffix(".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(state.model_dump_json(indent=1))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            if self.error is None:
                log.error("cannot write state file %s: %s", self.path, exc)
            self.error = str(exc)
            return False
        self.error = None
        return True
