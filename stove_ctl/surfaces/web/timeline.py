"""Each shutoff as a timeline, from the event log, and the flame readings around it.

A shutoff is the events of one command on one burner: ``command`` (for every burner
it names), ``cut_commanded``, ``cut_confirmed``, ``flame_out_confirmed``,
``restore_commanded``, ``restore_confirmed`` (and a lock, a fault or an alarm on the
way). Where the burner's flame input measures (a thermocouple tap), its millivolts
around the cut are kept in memory (``Readings``: bounded, the page's only) and drawn
with it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from stove_ctl.clock import Clock
from stove_ctl.core.burner import BurnerSpec
from stove_ctl.core.events import Event

# The steps a shutoff's timeline shows, in the order they happen.
STEPS = (
    "timer_fired",
    "command",
    "cut_commanded",
    "cut_confirmed",
    "flame_out_confirmed",
    "flame_relit",
    "restore_commanded",
    "restore_confirmed",
    "lock",
    "lock_reasserted",
    "unlock",
    "fault",
    "recovered",
    "alarm",
)
STARTS = {"cut_commanded"}  # a group without one is no shutoff (a timer set, a rejection)
POLL_S = 0.5  # how often a measuring flame input is read for the plot
KEEP_S = 600.0  # readings kept per burner: the last ten minutes
KEEP_SAMPLES = int(KEEP_S / POLL_S)
BEFORE_S = 20.0  # readings shown before a shutoff's first step
AFTER_S = 40.0  # and after its last


class Readings:
    """The recent millivolt readings of every burner whose flame input measures.

    Read every POLL_S from the inputs the controller already has (``reading()``), so
    nothing on the shutoff path changes; at most KEEP_SAMPLES per burner, in memory."""

    def __init__(self, specs: Iterable[BurnerSpec], clock: Clock) -> None:
        self.clock = clock
        self._specs = [s for s in specs if s.flame is not None]
        self._kept: dict[str, deque[tuple[float, float]]] = {}
        self._last_at: dict[str, float] = {}

    def sample(self) -> None:
        """Take each input's newest reading, if it is new (a Sample's ``at`` is the
        clock's monotonic time: turned into Unix time here, like the events')."""
        offset = self.clock.time() - self.clock.monotonic()
        for spec in self._specs:
            assert spec.flame is not None
            reading = spec.flame.reading()
            if reading is None or self._last_at.get(spec.key) == reading.at:
                continue
            self._last_at[spec.key] = reading.at
            kept = self._kept.setdefault(spec.key, deque(maxlen=KEEP_SAMPLES))
            kept.append((round(offset + reading.at, 3), round(reading.mv, 3)))

    async def run(self) -> None:
        while True:
            self.sample()
            await self.clock.sleep(POLL_S)

    def between(self, burner: str, start: float, end: float) -> list[tuple[float, float]]:
        return [r for r in self._kept.get(burner, ()) if start <= r[0] <= end]


def _step(event: Event) -> dict[str, Any]:
    step: dict[str, Any] = {"kind": event.kind, "ts": event.ts}
    if event.latency_ms is not None:
        step["latency_ms"] = event.latency_ms
    if event.kind in ("fault", "alarm") and "error" in event.detail:
        step["error"] = str(event.detail["error"])[:200]
    return step


def shutoffs(
    events: Iterable[Event], limit: int, readings: Readings | None = None
) -> list[dict[str, Any]]:
    """The newest ``limit`` shutoffs in ``events`` (oldest first, as the events are),
    each ``{burner, command_id, source, action, start, end, steps, readings}``."""
    commands: dict[str, Event] = {}
    groups: dict[tuple[str, str], list[Event]] = {}
    for event in events:
        if event.command_id is None or event.kind not in STEPS:
            continue
        if event.burner is None:
            commands.setdefault(event.command_id, event)  # a command, a timer for many
            continue
        groups.setdefault((event.command_id, event.burner), []).append(event)
    found = []
    for (command_id, burner), group in groups.items():
        if not any(e.kind in STARTS for e in group):
            continue
        first = commands.get(command_id)
        steps = ([first] if first is not None and first.ts <= group[0].ts else []) + group
        start, end = steps[0].ts, steps[-1].ts
        detail = first.detail if first is not None else group[0].detail
        shutoff: dict[str, Any] = {
            "burner": burner,
            "command_id": command_id,
            "source": next((e.source for e in steps if e.source), None),
            "action": detail.get("action", "shutoff"),
            "start": start,
            "end": end,
            "steps": [_step(e) for e in steps],
            "readings": [],
        }
        if readings is not None:
            shown = readings.between(burner, start - BEFORE_S, end + AFTER_S)
            shutoff["readings"] = [list(r) for r in shown]
        found.append(shutoff)
    found.sort(key=lambda s: s["start"])
    return found[-limit:]
