"""The controller: commands in, shutoffs, locks and unlocks out, under the safety rules.

It knows burners and commands, not wire formats. Every relay action runs in a task
the controller owns, so a caller that stops waiting (a CLI that times out, an MQTT
client that goes away) never abandons a cut: the task keeps retrying until the
relay confirms (DESIGN invariants 2, 4, 6). The relay work itself (set and confirm,
polling, re-asserting locks, the start-up reconcile) is ``stove_ctl.core.relays``;
a burner's state is ``stove_ctl.core.burner``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from stove_ctl.clock import Clock, wait_or_give_up
from stove_ctl.config import TrustConfig
from stove_ctl.core.burner import Burner, BurnerSpec, Shutoff
from stove_ctl.core.commands import NEEDS_BURNER, Command, check_trust
from stove_ctl.core.events import EventKind, EventLog
from stove_ctl.core.flame import Trend
from stove_ctl.core.flame import watch as watch_flame
from stove_ctl.core.relays import RelaySupervisor
from stove_ctl.core.state import LockRecord, ShutoffRecord, StateStore
from stove_ctl.drivers.relay import Sample
from stove_ctl.errors import CommandError

log = logging.getLogger(__name__)

Wait = Literal["accepted", "confirmed", "done"]
# How long a caller waits past the pulse for a shutoff to finish before it is told
# "still in progress" (the shutoff itself carries on regardless).
WAIT_SLACK_S = 10.0
EVENTS_HELD_MAX_S = 0.1  # a command's events wait for its cuts at most this long


class Controller:
    """Every burner of every stove: runs commands (``execute``) and reports ``status``.
    Timers and rules plug in their own actions (``handlers``) and status fields."""

    def __init__(
        self,
        burners: Iterable[BurnerSpec],
        events: EventLog,
        state: StateStore,
        clock: Clock,
        trust: TrustConfig | None = None,
        confirm_s: float = 30.0,
        zone: dt.tzinfo = dt.UTC,
    ) -> None:
        self._burners: dict[str, Burner] = {}
        for spec in burners:
            if spec.key in self._burners:
                raise ValueError(f"burner {spec.key} defined twice")
            self._burners[spec.key] = Burner(spec)
        self._by_stove: dict[str, list[Burner]] = {}
        for burner in self._burners.values():
            self._by_stove.setdefault(burner.spec.stove, []).append(burner)
        self.events = events
        self.state = state
        self.clock = clock
        self.trust = trust or TrustConfig()
        self.confirm_s = confirm_s
        self.zone = zone  # the config's time zone, for times of day said in words
        self.started_at: float | None = None
        self.relays = RelaySupervisor(
            self._burners, clock, self._emit, self._save, self._start_shutoff, self._lock
        )
        # Extensions: actions handled elsewhere (timers, rules), and extra status fields.
        self.handlers: dict[str, Callable[[Command, list[Burner]], Awaitable[dict[str, Any]]]] = {}
        self.burner_extras: list[Callable[[str], dict[str, Any]]] = []
        self.health: dict[str, Callable[[], str]] = {}  # more "ok" or "what is wrong" in status

    # -- life cycle --------------------------------------------------------------

    async def start(self) -> None:
        """Load persisted state and reconcile every relay with it (in the background)."""
        self.started_at = self.clock.time()
        saved = self.state.load()
        loop = asyncio.get_running_loop()
        for key, record in saved.locks.items():
            if key in self._burners:
                self._burners[key].lock = record
                self._burners[key].lock_confirmed = loop.create_future()
            else:
                log.warning("ignoring a saved lock for %s: no such burner in the config", key)
        for key, shutoff in saved.last_shutoff.items():
            if key in self._burners:
                self._burners[key].last_shutoff = shutoff
        self._emit("daemon_start", detail={"burners": list(self._burners)})
        if self.state.lost is not None:
            self._emit(
                "alarm",
                source="startup",
                detail={
                    "error": f"saved state lost: {self.state.lost}. Locks may have been lost: "
                    "every burner found cut is held locked until a person unlocks it"
                },
            )
        lost = self.state.lost is not None
        for burner in self._burners.values():
            burner.spawn(self.relays.reconcile(burner, lost))
        self.relays.start_polling()

    async def stop(self) -> None:
        """Let in-flight shutoffs finish their restore, then stop background work."""
        await self.relays.stop_polling()
        pending = [b.shutoff.done for b in self._burners.values() if b.pulsing and b.shutoff]
        if pending:
            longest = max(b.spec.pulse_s for b in self._burners.values()) + WAIT_SLACK_S
            await wait_or_give_up(
                self.clock, asyncio.gather(*pending, return_exceptions=True), longest
            )
        for burner in self._burners.values():
            for task in list(burner.background):
                task.cancel()
            await asyncio.gather(*burner.background, return_exceptions=True)
        self._emit("daemon_stop")
        for burner in self._burners.values():  # a shutoff cut short is owed after a restart
            self.state.put(burner.spec.key, burner.lock, burner.last_shutoff)
        self.state.close()

    # -- commands ----------------------------------------------------------------

    async def execute(
        self, cmd: Command, wait: Wait = "done", timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Run one command and return a JSON-able result. Raises CommandError."""
        try:
            check_trust(cmd, self.trust, self.clock.time())
            targets = self.resolve(cmd.burner, required=cmd.action in NEEDS_BURNER, stove=cmd.stove)
        except CommandError as exc:
            self._rejected(cmd, exc)
            raise
        if cmd.action == "status":
            return self.status(cmd.stove)
        handler = self.handlers.get(cmd.action)
        if cmd.action == "timers" and handler is not None:  # a read: no event
            return await handler(cmd, targets)
        # The relays get their orders first (each shutoff starts at once, up to the
        # relay command on the wire); the event log and its listeners hear of it once
        # the cuts are confirmed (at most EVENTS_HELD_MAX_S later).
        started: list[tuple[Burner, Shutoff, bool]] = []
        release = self.events.hold()
        try:
            self._emit(
                "command",
                source=cmd.source,
                command_id=cmd.id,
                detail={
                    "action": cmd.action,
                    "burner": cmd.burner or cmd.stove or "all",
                    **_stove_of(cmd),
                },
            )
            if handler is None and cmd.action == "shutoff":
                started = [(b, *self._start_shutoff(b, cmd)) for b in targets]
        finally:
            self._release_after_cuts(release, [s.cut_confirmed for _, s, _ in started])
        if handler is not None:
            try:
                return await handler(cmd, targets)
            except CommandError as exc:  # refused by the timer or rule service
                self._rejected(cmd, exc)
                raise
        if cmd.action == "shutoff":
            return await self._shutoff_results(started, wait, timeout_s)
        if cmd.action != "unlock" and cmd.action != "lock":
            raise CommandError("unknown_action", f"{cmd.action} is not available here")
        if cmd.action == "lock":
            return await self._lock_all(targets, cmd, wait, timeout_s)
        return await self._unlock_all(targets, cmd, wait, timeout_s)

    def _release_after_cuts(
        self, release: Callable[..., None], cuts: list[asyncio.Future[None]]
    ) -> None:
        """Release held events when every cut is confirmed (or its shutoff has ended), or after
        EVENTS_HELD_MAX_S, whichever comes first: the bookkeeping a command sets off
        (the event store, events and state over MQTT) then does not compete for the
        CPU with the relay command still on its way, nor with reading the relay's
        answer. A broker on the same small host forwards the relay command sooner."""
        pending = [f for f in cuts if not f.done()]
        if not pending:
            release()
            return
        # When the bound is reached, out with everything held, whatever other commands
        # still hold (a flood of shutoffs on a relay that does not answer).
        timer = self.clock.call_later(EVENTS_HELD_MAX_S, lambda: release(force=True))
        left = len(pending)

        def one_done(_: asyncio.Future[None]) -> None:
            nonlocal left
            left -= 1
            if left == 0:
                timer.cancel()
                release()

        for future in pending:
            future.add_done_callback(one_done)

    def _rejected(self, cmd: Command, exc: CommandError) -> None:
        self._emit(
            "rejected",
            source=cmd.source,
            command_id=cmd.id,
            detail={
                "action": cmd.action,
                "burner": cmd.burner,
                "error": exc.message,
                **_stove_of(cmd),
            },
        )

    def burners(self) -> list[Burner]:
        return list(self._burners.values())

    def _in(self, stove: str | None) -> list[Burner]:
        """Every burner, or only ``stove``'s."""
        if stove is None:
            return list(self._burners.values())
        return list(self._by_stove.get(stove, ()))

    def local_now(self) -> dt.datetime:
        """Now on the controller's clock, in the config's time zone."""
        return dt.datetime.fromtimestamp(self.clock.time(), self.zone)

    def specs(self, stove: str | None = None) -> list[BurnerSpec]:
        """Every burner's spec (only ``stove``'s, if given)."""
        return [b.spec for b in self._in(stove)]

    def resolve(
        self, name: str | None, required: bool = False, stove: str | None = None
    ) -> list[Burner]:
        """Burners named by ``name``: a burner id, ``stove/burner``, a stove id, or all.
        With ``stove``, only that stove's burners can be named: "all" means all of
        them, and any other stove's burner is unknown (a stove's MQTT topics)."""
        named = self._burners.get(name) if name is not None else None
        if named is not None and stove in (None, named.spec.stove):
            return [named]
        burners = self._in(stove)
        if name is None:
            if required:
                raise CommandError("missing_burner", "say which burner (or 'all')")
            return burners
        if name == "all":
            return burners
        by_id = [b for b in burners if b.spec.id == name]
        if len(by_id) == 1:
            return by_id
        if len(by_id) > 1:
            options = ", ".join(b.spec.key for b in by_id)
            raise CommandError("ambiguous_burner", f"{name!r} could be {options}; say which")
        by_stove = [b for b in burners if b.spec.stove == name]
        if by_stove:
            return by_stove
        known = ", ".join(b.spec.key for b in burners)
        raise CommandError("unknown_burner", f"unknown burner {name!r} (burners: {known})")

    # -- shutoff -----------------------------------------------------------------

    def _start_shutoff(
        self, burner: Burner, cmd: Command, verify: bool = True
    ) -> tuple[Shutoff, bool]:
        """Start a shutoff, or join the one in flight (invariant 5). Returns (it, joined).

        Only a pulse still holding the circuit cut can be joined. Once its restore has
        begun, the burner may be relit at any moment (a person at the knob), so a new
        request gets a full pulse of its own at once: a restore still being retried
        (its read-back lost, the circuit maybe intact) gives way to it.
        """
        current = burner.shutoff if burner.pulsing else None
        if current is not None and burner.joinable(current, self.clock.monotonic()):
            return current, True
        loop = asyncio.get_running_loop()
        shutoff = Shutoff(
            record=ShutoffRecord(
                source=cmd.source, command_id=cmd.id, requested_at=self.clock.time()
            ),
            cut_confirmed=loop.create_future(),
            done=loop.create_future(),
            after=current.done if current is not None else None,
            verify=verify,
        )
        burner.shutoff = shutoff
        burner.last_shutoff = shutoff.record
        shutoff.task = burner.spawn(self._run_shutoff(burner, shutoff))
        burner.retry_now()  # a restore waiting to retry sees at once it is not wanted
        return shutoff, False

    async def _run_shutoff(self, burner: Burner, shutoff: Shutoff) -> None:
        record = shutoff.record
        started = self.clock.monotonic()
        try:
            if shutoff.after is not None:
                await shutoff.after
            before = self._flame_before_cut(burner)
            burner.pulse_ends = None
            latency = await self.relays.drive(
                burner,
                cut=True,
                source=record.source,
                command_id=record.command_id,
                since=started,
                device_pulse_s=burner.spec.pulse_s,
            )
            record.cut_at = self.clock.time()
            record.cut_latency_ms = latency
            shutoff.cut_confirmed.set_result(None)
            self._save(burner)
            flame = burner.spec.flame
            if shutoff.verify and flame is not None and flame.flame() is not None:
                burner.spawn(self._verify_flame_out(burner, record, started, before))
            await self.clock.sleep(burner.spec.pulse_s)
            shutoff.restoring = True
            restored = await self.relays.drive(
                burner,
                cut=False,
                source=record.source,
                command_id=record.command_id,
                wanted=lambda: burner.shutoff is shutoff,  # not once a newer one waits
            )
            if restored is None:  # locked, or a newer shutoff cuts the circuit instead
                record.outcome = "locked" if burner.lock is not None else "superseded"
            else:
                record.outcome = "restored"
                record.restored_at = self.clock.time()
            self._save(burner)
        finally:
            for future in (shutoff.cut_confirmed, shutoff.done):
                if not future.done():
                    future.set_result(None)

    def _flame_before_cut(self, burner: Burner) -> Sample | None:
        """The flame input's reading with the circuit intact, just before a cut."""
        flame = burner.spec.flame
        if flame is None or burner.relay_cut is not False:
            return None
        return flame.reading()

    async def _verify_flame_out(
        self, burner: Burner, record: ShutoffRecord, started: float, before: Sample | None
    ) -> None:
        """Closed loop (invariants 6, 10): the flame must be seen out within confirm_s
        of the cut (or a lagging reading seen falling); else cut again; still lit, lock
        the burner and raise an alarm. A reading that fell and rises again is a person
        relighting the burner: recorded, never cut again for it."""
        source, command_id = record.source, record.command_id
        flame = burner.spec.flame
        assert flame is not None
        for attempt in (1, 2):
            burner.flame_trend = trend = Trend(before.mv if before is not None else None)
            try:  # the trend is shown by status while it is watched (going out)
                seen, _ = await watch_flame(
                    flame, self.clock, self.confirm_s, before, lambda: burner.intact_since, trend
                )
            finally:
                burner.flame_trend = None
            if seen == "out":
                # Still reading "lit", yet seen falling: confirmed by the trend.
                by_trend = flame.flame() is not False
                self._emit(
                    "flame_out_confirmed",
                    burner,
                    source=source,
                    command_id=command_id,
                    latency_ms=self._ms_since(started),
                    detail={"by": "trend", "mv": trend.last} if by_trend else {},
                )
                return
            if seen == "relit":
                log.info(
                    "%s: relit after the cut (the flame reading fell to %.1f mV, then rose "
                    "to %.1f mV); not cut again",
                    burner.spec.key,
                    trend.low,
                    trend.last,
                )
                self._emit(
                    "flame_relit",
                    burner,
                    source=source,
                    command_id=command_id,
                    detail={"low_mv": trend.low, "mv": trend.last},
                )
                return
            if attempt == 2:
                break
            self._emit(
                "fault",
                burner,
                source=source,
                command_id=command_id,
                detail={
                    "error": f"flame still lit {self.confirm_s:g} s after the cut; cutting again",
                    "type": "FlameNotOut",
                },
            )
            command_id = f"{command_id or 'retry'}"[:60] + "-2"
            again = Command.model_validate(
                {"action": "shutoff", "source": source, "id": command_id}
            )
            before = self._flame_before_cut(burner)
            # The re-cut is watched here, by its second attempt, not by a check of its own.
            retry, _ = self._start_shutoff(burner, again, verify=False)
            await retry.cut_confirmed
        self._emit(
            "alarm",
            burner,
            source=source,
            command_id=command_id,
            detail={"error": "flame still lit after two cuts: burner locked, check it now"},
        )
        self._lock(burner, Command(action="lock", source="rule", id="flame-not-out"))

    async def _shutoff_results(
        self,
        started: list[tuple[Burner, Shutoff, bool]],
        wait: Wait,
        timeout_s: float | None,
    ) -> dict[str, Any]:
        if wait != "accepted":
            futures = [s.done if wait == "done" else s.cut_confirmed for _, s, _ in started]
            default = max(b.spec.pulse_s for b, _, _ in started) + WAIT_SLACK_S
            work = futures[0] if len(futures) == 1 else asyncio.gather(*futures)
            await wait_or_give_up(self.clock, work, timeout_s or default)
        results = []
        for burner, shutoff, joined in started:
            record = shutoff.record
            result = {"burner": burner.spec.key, "joined": joined, **record.model_dump()}
            if record.cut_at is None and wait != "accepted":
                result["outcome"] = "pending"
                result["fault"] = burner.fault
            results.append(result)
        ok = wait == "accepted" or all(r["cut_at"] is not None for r in results)
        return {"ok": ok, "action": "shutoff", "burners": results}

    # -- lock / unlock -----------------------------------------------------------

    async def _lock_all(
        self, targets: list[Burner], cmd: Command, wait: Wait, timeout_s: float | None
    ) -> dict[str, Any]:
        with self.state.one_write():
            futures = [self._lock(b, cmd) for b in targets]
        if wait != "accepted":
            await wait_or_give_up(self.clock, asyncio.gather(*futures), timeout_s or WAIT_SLACK_S)
        results = [
            {"burner": b.spec.key, "locked": True, "confirmed": f.done(), "fault": b.fault}
            for b, f in zip(targets, futures, strict=True)
        ]
        return {"ok": all(r["confirmed"] for r in results), "action": "lock", "burners": results}

    def _lock(self, burner: Burner, cmd: Command) -> asyncio.Future[None]:
        if burner.lock is not None and burner.lock_confirmed is not None:
            return burner.lock_confirmed
        burner.lock = LockRecord(since=self.clock.time(), source=cmd.source, command_id=cmd.id)
        self._save(burner, now=True)  # on disk before reported: a crash still re-asserts it
        self._emit("lock", burner, source=cmd.source, command_id=cmd.id)
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        burner.lock_confirmed = confirmed

        lock = burner.lock

        async def hold() -> None:
            await self.relays.drive(
                burner,
                cut=True,
                source=cmd.source,
                command_id=cmd.id,
                wanted=lambda: burner.lock is lock,
            )
            if not confirmed.done():
                confirmed.set_result(None)

        burner.spawn(hold())
        return confirmed

    async def _unlock_all(
        self, targets: list[Burner], cmd: Command, wait: Wait, timeout_s: float | None
    ) -> dict[str, Any]:
        results = []
        restores: list[asyncio.Task[Any]] = []
        for burner in targets:
            if burner.lock is None:
                results.append({"burner": burner.spec.key, "unlocked": False, "was_locked": False})
                continue
            restore = self._release(burner, cmd.source, cmd.id)
            if restore is not None:
                restores.append(restore)
            results.append({"burner": burner.spec.key, "unlocked": True, "was_locked": True})
        if restores and wait != "accepted":
            await wait_or_give_up(self.clock, asyncio.gather(*restores), timeout_s or WAIT_SLACK_S)
        for result in results:
            burner = self._burners[str(result["burner"])]
            result["restored"] = burner.relay_cut is False
        return {"ok": True, "action": "unlock", "burners": results}

    def _release(
        self, burner: Burner, source: str, command_id: str | None
    ) -> asyncio.Task[Any] | None:
        """End a lock and restore the circuit (unless a shutoff is in flight)."""
        burner.lock = None
        burner.lock_confirmed = None
        self._save(burner)
        self._emit("unlock", burner, source=source, command_id=command_id)
        if burner.pulsing:  # an in-flight shutoff restores on its own
            return None
        return burner.spawn(self.relays.restore_unlocked(burner, source, command_id))

    async def release_lock(self, key: str, owner: str) -> bool:
        """End a lock only if ``owner`` (e.g. a lock window) set it; a lock someone
        else set since (a person, a gas alarm) stays."""
        burner = self._burners[key]
        if burner.lock is None or burner.lock.command_id != owner:
            return False
        self._release(burner, "timer", owner)
        return True

    # -- the relay ---------------------------------------------------------------

    # -- changes made by others (Mi Home app, XiaoAi, a power cut) -----------------

    # -- views -------------------------------------------------------------------

    def fingerprint(self, stove: str) -> tuple[Any, ...]:
        """What ``status(stove)`` shows, in a form cheap to build and compare: a
        publisher rebuilds a stove's state only when this changes."""
        return (
            self.events.store_error,
            self.state.health(),
            tuple(check() for check in self.health.values()),
            tuple(
                (b.shown(), tuple(tuple(extra(b.spec.key).items()) for extra in self.burner_extras))
                for b in self._by_stove.get(stove, ())
            ),
        )

    def status(self, stove: str | None = None) -> dict[str, Any]:
        """Every burner's state (only ``stove``'s, if given)."""
        burners = []
        for burner in self._in(stove):
            spec = burner.spec
            flame = spec.flame.flame() if spec.flame is not None else None
            burners.append(
                {
                    "burner": spec.key,
                    "stove": spec.stove,
                    "id": spec.id,
                    "name": spec.name,
                    "mode": burner.mode.value,
                    "flame": "unknown" if flame is None else ("lit" if flame else "out"),
                    # Still reading "lit" after a cut, its reading falling: going out.
                    "going_out": bool(flame) and burner.going_out,
                    "circuit": {None: "unknown", True: "cut", False: "intact"}[burner.relay_cut],
                    "wiring": spec.wiring.value,
                    "pulse_s": spec.pulse_s,
                    "lock": burner.lock.model_dump() if burner.lock else None,
                    "fault": burner.fault or burner.link_fault,
                    "last_shutoff": burner.last_shutoff.model_dump()
                    if burner.last_shutoff
                    else None,
                }
            )
            for extra in self.burner_extras:
                burners[-1].update(extra(spec.key))
        return {
            "ok": True,
            "action": "status",
            "started_at": self.started_at,
            "timezone": str(self.zone),  # the config's: the CLI shows times in it
            "event_store": self.events.store_error or "ok",
            "state_store": self.state.health(),
            **{name: check() for name, check in self.health.items()},
            "burners": burners,
        }

    # -- helpers -----------------------------------------------------------------

    def _ms_since(self, started: float) -> float:
        return round((self.clock.monotonic() - started) * 1000.0, 3)

    def _emit(self, kind: EventKind, burner: Burner | None = None, **fields: Any) -> None:
        self.events.emit(
            kind, self.clock.time(), burner=burner.spec.key if burner else None, **fields
        )

    def _save(self, burner: Burner, now: bool = False) -> None:
        self.state.save(burner.spec.key, burner.lock, burner.last_shutoff, now=now)


def _stove_of(cmd: Command) -> dict[str, str]:
    """``{"stove": …}`` for a command confined to one stove (its MQTT topics), so that
    its events go to that stove's topics only; nothing for any other command."""
    return {"stove": cmd.stove} if cmd.stove is not None else {}
