"""Which timers cut which burner, and when each burner's next cut is, kept in memory.

``status`` shows every burner's next cut, and it runs for every state published, so it
must not read the timer store: with 100,000 timers that is seconds of unpickling. The
index holds each job's burners, action and next run time (a few hundred bytes a job),
is filled once at start-up from the store's summaries, and is kept up to date from the
scheduler's own job events. A burner's next cut is cached, and found again only when
the job that was its next cut goes away or moves.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, NamedTuple

CUT_ACTIONS = ("shutoff", "lock")


class Entry(NamedTuple):
    burners: tuple[str, ...]
    action: str
    next_run: float | None  # UTC timestamp; None for a paused job


class TimerIndex:
    def __init__(self) -> None:
        self.jobs: dict[str, Entry] = {}
        self._by_burner: dict[str, set[str]] = {}
        self._next_cut: dict[str, float | None] = {}  # cached; missing = find again
        self._shared: dict[tuple[str, ...], tuple[str, ...]] = {}

    def load(self, summaries: Iterable[tuple[str, float | None, list[str], str]]) -> None:
        """Every job, from (id, next run, burners, action)."""
        self.clear()
        for job_id, next_run, burners, action in summaries:
            self.put(job_id, next_run, {"burners": burners, "action": action})

    def clear(self) -> None:
        self.jobs.clear()
        self._by_burner.clear()
        self._next_cut.clear()

    def put(self, job_id: str, next_run: float | None, kwargs: dict[str, Any]) -> None:
        """A job added, or changed (moved, run, its arguments modified)."""
        self.drop(job_id)
        burners = tuple(kwargs.get("burners", ()))
        # Shared: 100,000 timers name a few burners and actions, not 100,000 copies.
        burners = self._shared.setdefault(burners, burners)
        action = sys.intern(str(kwargs.get("action")))
        entry = Entry(burners, action, next_run)
        self.jobs[job_id] = entry
        for burner in entry.burners:
            self._by_burner.setdefault(burner, set()).add(job_id)
            if burner in self._next_cut and _cuts(entry):
                assert next_run is not None
                known = self._next_cut[burner]
                self._next_cut[burner] = next_run if known is None else min(known, next_run)

    def drop(self, job_id: str) -> None:
        entry = self.jobs.pop(job_id, None)
        if entry is None:
            return
        for burner in entry.burners:
            ids = self._by_burner.get(burner)
            if ids is not None:
                ids.discard(job_id)
                if not ids:
                    del self._by_burner[burner]
            if _cuts(entry) and self._next_cut.get(burner, -1.0) == entry.next_run:
                del self._next_cut[burner]  # it was the next cut: find the next one

    def next_cut(self, burner: str) -> float | None:
        """When the earliest timer, schedule or lock window that cuts ``burner`` runs."""
        if burner not in self._next_cut:
            times = [
                entry.next_run
                for entry in (self.jobs[i] for i in self._by_burner.get(burner, ()))
                if _cuts(entry) and entry.next_run is not None
            ]
            self._next_cut[burner] = min(times) if times else None
        return self._next_cut[burner]

    def ids_for(self, burners: Iterable[str]) -> set[str]:
        """Every job that acts on any of ``burners``."""
        found: set[str] = set()
        for burner in burners:
            found |= self._by_burner.get(burner, set())
        return found


def _cuts(entry: Entry) -> bool:
    return entry.action in CUT_ACTIONS and entry.next_run is not None
