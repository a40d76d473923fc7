"""A burner: what it is (``BurnerSpec``, from config) and the state the controller
keeps for it (``Burner``: lock, shutoff in flight, fault, last known circuit).

Plain data and small rules about it; the relay I/O is in ``stove_ctl.core.relays``
and the commands in ``stove_ctl.core.controller``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from stove_ctl.core.flame import Trend
from stove_ctl.core.state import LockRecord, ShutoffRecord
from stove_ctl.drivers.relay import FlameInput, Relay, Wiring

log = logging.getLogger(__name__)
JOIN_MARGIN_S = 0.5  # a request joins a pulse only if it still gets this much cut time


class Mode(enum.StrEnum):
    READY = "ready"
    CUTTING = "cutting"
    LOCKED = "locked"
    FAULT = "fault"


@dataclass(frozen=True)
class BurnerSpec:
    """A burner as the controller needs it: built by the factory from config."""

    stove: str
    id: str
    relay: Relay
    channel: int
    wiring: Wiring = Wiring.NC_SERIES
    pulse_s: float = 3.0
    name: str | None = None
    flame: FlameInput | None = None
    aliases: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.stove}/{self.id}"


@dataclass
class Shutoff:
    """One shutoff of one burner: cut, hold for pulse_s, restore."""

    record: ShutoffRecord
    cut_confirmed: asyncio.Future[None]
    done: asyncio.Future[None]
    task: asyncio.Task[None] | None = None
    restoring: bool = False  # the hold is over: a new request needs a pulse of its own
    after: asyncio.Future[None] | None = None  # the pulse this one waits to follow
    verify: bool = True  # watch the flame after the cut (not for the flame check's re-cut)


@dataclass
class Burner:
    """A burner's state as the controller keeps it (no I/O of its own)."""

    spec: BurnerSpec
    io: asyncio.Lock = field(default_factory=asyncio.Lock)
    lock: LockRecord | None = None
    fault: str | None = None  # the last relay action failed and is being retried
    link_fault: str | None = None  # polling cannot read the relay
    reasserting: bool = False
    driving: int = 0  # relay actions in progress (retries included)
    relay_cut: bool | None = None  # last confirmed state of the circuit
    intact_since: float | None = None  # monotonic time it was last seen intact (not cut)
    shutoff: Shutoff | None = None  # the one in flight, if any
    pulse_ends: float | None = None  # when the relay's own auto-off restores the circuit
    last_shutoff: ShutoffRecord | None = None
    lock_confirmed: asyncio.Future[None] | None = None
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    poll_read: asyncio.Task[bool] | None = None  # a polling read in flight
    flame_trend: Trend | None = None  # the flame input's readings, while a cut is judged
    retry_waits: set[asyncio.Future[None]] = field(default_factory=set)  # drives between attempts

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` as one of this burner's background tasks (cancelled at stop)."""
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        task.add_done_callback(log_crash)
        return task

    def joinable(self, shutoff: Shutoff, now: float) -> bool:
        """Will ``shutoff`` (this burner's, in flight) still hold the circuit cut for a
        while after ``now``? Where the relay times the pulse itself, its auto-off may
        come well before our confirmation-based hold ends (a slow read-back), so the
        device's own clock decides. One whose cut is not yet confirmed (failing, or
        waiting behind a restore that gives way to it) will cut in full: joinable."""
        if shutoff.restoring:
            return False
        if not shutoff.cut_confirmed.done():
            return True
        return self.pulse_ends is None or now < self.pulse_ends - JOIN_MARGIN_S

    def retry_now(self) -> None:
        """End the drives' waits before their next attempt now: each next attempt
        checks at once whether it is still wanted (a newer shutoff waits behind a
        restore that is being retried)."""
        for wait in self.retry_waits:
            if not wait.done():
                wait.set_result(None)

    def seen(self, cut: bool, now: float) -> None:
        """The circuit was read (or confirmed) ``cut`` or intact at ``now``."""
        if not cut and self.relay_cut is not False:
            self.intact_since = now
        elif cut:
            self.intact_since = None
        self.relay_cut = cut

    def shown(self) -> tuple[Any, ...]:
        """What ``status`` shows of this burner, cheap to build and to compare."""
        last = self.last_shutoff
        return (
            self.mode,
            self.spec.flame.flame() if self.spec.flame is not None else None,
            self.going_out,
            self.relay_cut,
            self.fault or self.link_fault,
            self.lock and (self.lock.since, self.lock.source, self.lock.command_id),
            last
            and (last.requested_at, last.command_id, last.cut_at, last.outcome, last.restored_at),
        )

    @property
    def going_out(self) -> bool:
        """A cut is being judged and the flame input's reading has fallen since (a
        thermocouple cooling: it still reads "lit" for a while). Not before the fall:
        a cut that did not close the valve is never shown as going out."""
        trend = self.flame_trend
        return trend is not None and trend.fell and not trend.relit

    @property
    def pulsing(self) -> bool:
        return self.shutoff is not None and not self.shutoff.done.done()

    @property
    def mode(self) -> Mode:
        if self.fault is not None or self.link_fault is not None:
            return Mode.FAULT
        if self.lock is not None:
            return Mode.LOCKED
        if self.pulsing:
            return Mode.CUTTING
        return Mode.READY


def log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
