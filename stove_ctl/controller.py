"""The controller: burners, shutoffs, locks, and the rules that keep them safe.

It knows burners and commands, not wire formats. Every relay action runs in a task
the controller owns, so a caller that stops waiting (a CLI that times out, an MQTT
client that goes away) never abandons a cut: the task keeps retrying until the
relay confirms (DESIGN invariants 2, 4, 6).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from stove_ctl.clock import Clock
from stove_ctl.commands import NEEDS_BURNER, RESTORE_ACTIONS, Command
from stove_ctl.config import TrustConfig
from stove_ctl.errors import CommandError, RelayError, RelayMismatch
from stove_ctl.events import EventKind, EventLog
from stove_ctl.flame import watch as watch_flame
from stove_ctl.relay import FlameInput, Relay, Sample, Wiring
from stove_ctl.retry import backoff
from stove_ctl.state import LockRecord, PersistedState, ShutoffRecord, StateStore
from stove_ctl.text import burner_vocabulary

log = logging.getLogger(__name__)

Wait = Literal["accepted", "confirmed", "done"]
# How long a caller waits past the pulse for a shutoff to finish before it is told
# "still in progress" (the shutoff itself carries on regardless).
WAIT_SLACK_S = 10.0
JOIN_MARGIN_S = 0.5  # a request joins a pulse only if it still gets this much cut time
EVENTS_HELD_MAX_S = 0.1  # a command's events wait for its cuts at most this long


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
class _Shutoff:
    record: ShutoffRecord
    cut_confirmed: asyncio.Future[None]
    done: asyncio.Future[None]
    task: asyncio.Task[None] | None = None
    restoring: bool = False  # the hold is over: a new request needs a pulse of its own
    after: asyncio.Future[None] | None = None  # the pulse this one waits to follow
    verify: bool = True  # watch the flame after the cut (not for the flame check's re-cut)


@dataclass
class _Burner:
    spec: BurnerSpec
    io: asyncio.Lock = field(default_factory=asyncio.Lock)
    lock: LockRecord | None = None
    fault: str | None = None  # the last relay action failed and is being retried
    link_fault: str | None = None  # polling cannot read the relay
    reasserting: bool = False
    driving: int = 0  # relay actions in progress (retries included)
    relay_cut: bool | None = None  # last confirmed state of the circuit
    intact_since: float | None = None  # monotonic time it was last seen intact (not cut)
    shutoff: _Shutoff | None = None  # the one in flight, if any
    pulse_ends: float | None = None  # when the relay's own auto-off restores the circuit
    last_shutoff: ShutoffRecord | None = None
    lock_confirmed: asyncio.Future[None] | None = None
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    poll_read: asyncio.Task[bool] | None = None  # a polling read in flight

    def seen(self, cut: bool, now: float) -> None:
        """The circuit was read (or confirmed) ``cut`` or intact at ``now``."""
        if not cut and self.relay_cut is not False:
            self.intact_since = now
        elif cut:
            self.intact_since = None
        self.relay_cut = cut

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


class Controller:
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
        self._burners: dict[str, _Burner] = {}
        for spec in burners:
            if spec.key in self._burners:
                raise ValueError(f"burner {spec.key} defined twice")
            self._burners[spec.key] = _Burner(spec)
        self.events = events
        self.state = state
        self.clock = clock
        self.trust = trust or TrustConfig()
        self.confirm_s = confirm_s
        self.zone = zone  # the config's time zone, for times of day said in words
        self.started_at: float | None = None
        self._pollers: set[asyncio.Task[None]] = set()
        # Extensions: actions handled elsewhere (timers, rules), and extra status fields.
        self.handlers: dict[str, Callable[[Command, list[_Burner]], Awaitable[dict[str, Any]]]] = {}
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
        for burner in self._burners.values():
            self._spawn(burner, self._reconcile(burner))
        by_relay: dict[int, list[_Burner]] = {}
        for burner in self._burners.values():
            if burner.spec.relay.poll_s:
                by_relay.setdefault(id(burner.spec.relay), []).append(burner)
        for burners in by_relay.values():
            task = asyncio.ensure_future(self._poll(burners))
            task.add_done_callback(_log_crash)
            self._pollers.add(task)

    async def stop(self) -> None:
        """Let in-flight shutoffs finish their restore, then stop background work."""
        for poller in self._pollers:
            poller.cancel()
        await asyncio.gather(*self._pollers, return_exceptions=True)
        pending = [b.shutoff.done for b in self._burners.values() if b.pulsing and b.shutoff]
        if pending:
            longest = max(b.spec.pulse_s for b in self._burners.values()) + WAIT_SLACK_S
            await self._wait_any(asyncio.gather(*pending, return_exceptions=True), longest)
        for burner in self._burners.values():
            for task in list(burner.background):
                task.cancel()
            await asyncio.gather(*burner.background, return_exceptions=True)
        self._emit("daemon_stop")
        self._save()

    def _spawn(self, burner: _Burner, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` as the burner's background task."""
        task = asyncio.ensure_future(work)
        burner.background.add(task)
        task.add_done_callback(burner.background.discard)
        task.add_done_callback(_log_crash)
        return task

    async def _reconcile(self, burner: _Burner) -> None:
        """Start-up: re-assert locks; finish (hold, then restore) a cut found on an
        unlocked burner; make an owed shutoff."""
        lock = burner.lock
        if lock is not None:
            done = await self._drive(
                burner,
                cut=True,
                source="startup",
                command_id=None,
                wanted=lambda: burner.lock is lock,
            )
            if done is not None:
                self._emit("lock_reasserted", burner, source="startup")
            if burner.lock_confirmed is not None and not burner.lock_confirmed.done():
                burner.lock_confirmed.set_result(None)
            return
        last = burner.last_shutoff
        if last is not None and last.outcome == "cutting" and last.cut_at is None:
            # A shutoff was asked for and never confirmed before the daemon stopped:
            # it is still owed (invariant 4).
            cmd = Command(action="shutoff", source="startup", id=last.command_id or "startup")
            self._start_shutoff(burner, cmd)
            return
        if self.state.lost is not None:
            await self._hold_if_found_cut(burner)
            return
        try:
            found_cut = burner.spec.wiring.is_cut(await burner.spec.relay.read(burner.spec.channel))
        except RelayError as exc:
            log.warning("%s: cannot read relay at start-up (%s); restoring", burner.spec.key, exc)
            await self._drive(
                burner,
                cut=False,
                source="startup",
                command_id=None,
                wanted=lambda: not burner.pulsing,
            )
            return
        if not found_cut:
            burner.seen(False, self.clock.monotonic())
            if last is not None and last.outcome == "cutting":
                # The pulse was cut short by a crash, and the relay's own off-delay (or
                # a person) restored the circuit while the daemon was down.
                last.outcome = "restored"
                last.restored_at = self.clock.time()
                self._save()
                self._emit(
                    "restore_confirmed",
                    burner,
                    source="startup",
                    command_id=last.command_id,
                    detail={"seen": "found restored at start-up (the relay's own off-delay)"},
                )
            return
        # Found cut and not locked: a pulse the previous daemon did not finish, or a
        # cut someone made (Mi Home, a button) while we were starting. Either way it is
        # held for a full pulse_s before it is restored: a cut never ends early.
        burner.seen(True, self.clock.monotonic())
        interrupted = last is not None and last.outcome == "cutting"
        command_id = (last.command_id if interrupted and last else None) or "startup"
        self._start_shutoff(burner, Command(action="shutoff", source="startup", id=command_id))

    async def _hold_if_found_cut(self, burner: _Burner) -> None:
        """Start-up with the saved state lost (invariant 3): nothing is restored on the
        strength of it. A burner found cut may have been locked, so it is held locked
        (by ``startup``) until a person unlocks it. One that cannot be read is read
        again until it can: it is neither cut nor restored meanwhile."""
        delays = backoff()
        while True:
            try:
                on = await burner.spec.relay.read(burner.spec.channel)
                break
            except RelayError as exc:
                if burner.link_fault is None:
                    log.warning("%s: cannot read relay at start-up: %s", burner.spec.key, exc)
                    burner.link_fault = f"relay not answering: {exc}"
            await self.clock.sleep(next(delays))
        burner.link_fault = None
        burner.seen(burner.spec.wiring.is_cut(on), self.clock.monotonic())
        if not burner.relay_cut or burner.lock is not None:
            return
        log.error("%s: found cut with the saved state lost: held locked", burner.spec.key)
        self._lock(burner, Command(action="lock", source="startup", id="state-lost"))

    # -- commands ----------------------------------------------------------------

    async def execute(
        self, cmd: Command, wait: Wait = "done", timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Run one command and return a JSON-able result. Raises CommandError."""
        try:
            self._check_trust(cmd)
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
        started: list[tuple[_Burner, _Shutoff, bool]] = []
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

    def _check_trust(self, cmd: Command) -> None:
        if cmd.action not in RESTORE_ACTIONS:
            return
        if cmd.source not in self.trust.allowed(cmd.action):
            allowed = ", ".join(self.trust.allowed(cmd.action))
            raise CommandError(
                "not_allowed",
                f"{cmd.action} is not accepted from {cmd.source} (allowed: {allowed})",
            )
        if cmd.retained:
            raise CommandError("stale", f"{cmd.action} from a retained message is ignored")
        if cmd.ts is None and (cmd.source == "mqtt" or cmd.remote):
            raise CommandError(
                "stale",
                f"{cmd.action} over MQTT must carry ts (when it was sent)"
                + (', as in {"text": ..., "ts": ...}' if cmd.source == "voice" else ""),
            )
        if cmd.ts is not None:
            age = self.clock.time() - cmd.ts
            if abs(age) > self.trust.max_command_age_s:
                when = f"{age:.0f} s old" if age > 0 else f"dated {-age:.0f} s in the future"
                raise CommandError(
                    "stale",
                    f"{cmd.action} is {when}; at most "
                    f"{self.trust.max_command_age_s:g} s either way is accepted",
                )

    def burners(self) -> list[_Burner]:
        return list(self._burners.values())

    def _in(self, stove: str | None) -> list[_Burner]:
        """Every burner, or only ``stove``'s."""
        if stove is None:
            return list(self._burners.values())
        return [b for b in self._burners.values() if b.spec.stove == stove]

    def local_now(self) -> dt.datetime:
        """Now on the controller's clock, in the config's time zone."""
        return dt.datetime.fromtimestamp(self.clock.time(), self.zone)

    def vocabulary(self, stove: str | None = None) -> dict[str, str]:
        """Words that name each burner (of ``stove`` only, if given), for text commands."""
        return burner_vocabulary(
            (b.spec.key, b.spec.id, b.spec.name, list(b.spec.aliases)) for b in self._in(stove)
        )

    def resolve(
        self, name: str | None, required: bool = False, stove: str | None = None
    ) -> list[_Burner]:
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
        self, burner: _Burner, cmd: Command, verify: bool = True
    ) -> tuple[_Shutoff, bool]:
        """Start a shutoff, or join the one in flight (invariant 5). Returns (it, joined).

        Only a pulse still holding the circuit cut can be joined. Once its restore has
        begun, the burner may be relit at any moment (a person at the knob), so a new
        request gets a full pulse of its own, right after the restore.
        """
        current = burner.shutoff if burner.pulsing else None
        if current is not None and self._joinable(burner, current):
            return current, True
        loop = asyncio.get_running_loop()
        shutoff = _Shutoff(
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
        shutoff.task = self._spawn(burner, self._run_shutoff(burner, shutoff))
        return shutoff, False

    def _joinable(self, burner: _Burner, shutoff: _Shutoff) -> bool:
        """Will the circuit still be cut for a while after now? Where the relay times the
        pulse itself, its auto-off may come well before our confirmation-based hold
        ends (a slow read-back), so the device's own clock decides."""
        if shutoff.restoring:
            return False
        ends = burner.pulse_ends
        return ends is None or self.clock.monotonic() < ends - JOIN_MARGIN_S

    async def _run_shutoff(self, burner: _Burner, shutoff: _Shutoff) -> None:
        record = shutoff.record
        started = self.clock.monotonic()
        try:
            if shutoff.after is not None:
                await shutoff.after
            before = self._flame_before_cut(burner)
            burner.pulse_ends = None
            latency = await self._drive(
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
            self._save()
            flame = burner.spec.flame
            if shutoff.verify and flame is not None and flame.flame() is not None:
                self._spawn(burner, self._verify_flame_out(burner, record, started, before))
            await self.clock.sleep(burner.spec.pulse_s)
            shutoff.restoring = True
            restored = await self._drive(
                burner, cut=False, source=record.source, command_id=record.command_id
            )
            if restored is None:
                record.outcome = "locked"
            else:
                record.outcome = "restored"
                record.restored_at = self.clock.time()
            self._save()
        finally:
            for future in (shutoff.cut_confirmed, shutoff.done):
                if not future.done():
                    future.set_result(None)

    def _flame_before_cut(self, burner: _Burner) -> Sample | None:
        """The flame input's reading with the circuit intact, just before a cut."""
        flame = burner.spec.flame
        if flame is None or burner.relay_cut is not False:
            return None
        return flame.reading()

    async def _verify_flame_out(
        self, burner: _Burner, record: ShutoffRecord, started: float, before: Sample | None
    ) -> None:
        """Closed loop (invariants 6, 10): the flame must be seen out within confirm_s
        of the cut (or a lagging reading seen falling); else cut again; still lit, lock
        the burner and raise an alarm. A reading that fell and rises again is a person
        relighting the burner: recorded, never cut again for it."""
        source, command_id = record.source, record.command_id
        flame = burner.spec.flame
        assert flame is not None
        for attempt in (1, 2):
            seen, trend = await watch_flame(
                flame, self.clock, self.confirm_s, before, lambda: burner.intact_since
            )
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
        started: list[tuple[_Burner, _Shutoff, bool]],
        wait: Wait,
        timeout_s: float | None,
    ) -> dict[str, Any]:
        if wait != "accepted":
            futures = [s.done if wait == "done" else s.cut_confirmed for _, s, _ in started]
            default = max(b.spec.pulse_s for b, _, _ in started) + WAIT_SLACK_S
            work = futures[0] if len(futures) == 1 else asyncio.gather(*futures)
            await self._wait_any(work, timeout_s or default)
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
        self, targets: list[_Burner], cmd: Command, wait: Wait, timeout_s: float | None
    ) -> dict[str, Any]:
        futures = [self._lock(b, cmd) for b in targets]
        if wait != "accepted":
            await self._wait_any(asyncio.gather(*futures), timeout_s or WAIT_SLACK_S)
        results = [
            {"burner": b.spec.key, "locked": True, "confirmed": f.done(), "fault": b.fault}
            for b, f in zip(targets, futures, strict=True)
        ]
        return {"ok": all(r["confirmed"] for r in results), "action": "lock", "burners": results}

    def _lock(self, burner: _Burner, cmd: Command) -> asyncio.Future[None]:
        if burner.lock is not None and burner.lock_confirmed is not None:
            return burner.lock_confirmed
        burner.lock = LockRecord(since=self.clock.time(), source=cmd.source, command_id=cmd.id)
        self._save()  # persist first: a crash now still re-asserts the lock at start-up
        self._emit("lock", burner, source=cmd.source, command_id=cmd.id)
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        burner.lock_confirmed = confirmed

        lock = burner.lock

        async def hold() -> None:
            await self._drive(
                burner,
                cut=True,
                source=cmd.source,
                command_id=cmd.id,
                wanted=lambda: burner.lock is lock,
            )
            if not confirmed.done():
                confirmed.set_result(None)

        self._spawn(burner, hold())
        return confirmed

    async def _unlock_all(
        self, targets: list[_Burner], cmd: Command, wait: Wait, timeout_s: float | None
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
            await self._wait_any(asyncio.gather(*restores), timeout_s or WAIT_SLACK_S)
        for result in results:
            burner = self._burners[str(result["burner"])]
            result["restored"] = burner.relay_cut is False
        return {"ok": True, "action": "unlock", "burners": results}

    def _release(
        self, burner: _Burner, source: str, command_id: str | None
    ) -> asyncio.Task[Any] | None:
        """End a lock and restore the circuit (unless a shutoff is in flight)."""
        burner.lock = None
        burner.lock_confirmed = None
        self._save()
        self._emit("unlock", burner, source=source, command_id=command_id)
        if burner.pulsing:  # an in-flight shutoff restores on its own
            return None
        return self._spawn(
            burner,
            self._drive(
                burner,
                cut=False,
                source=source,
                command_id=command_id,
                wanted=lambda: not burner.pulsing,
            ),
        )

    async def release_lock(self, key: str, owner: str) -> bool:
        """End a lock only if ``owner`` (e.g. a lock window) set it; a lock someone
        else set since (a person, a gas alarm) stays."""
        burner = self._burners[key]
        if burner.lock is None or burner.lock.command_id != owner:
            return False
        self._release(burner, "timer", owner)
        return True

    # -- the relay ---------------------------------------------------------------

    async def _drive(
        self,
        burner: _Burner,
        cut: bool,
        source: str,
        command_id: str | None,
        since: float | None = None,
        wanted: Callable[[], bool] = lambda: True,
        device_pulse_s: float | None = None,
    ) -> float | None:
        """Set the circuit and confirm by reading back; retry until it holds.

        Returns the latency in ms from ``since`` (or from the first attempt) to the
        confirmation, or None when the work is no longer wanted. A restore is never
        wanted on a locked burner: nothing restores a locked burner. With
        ``device_pulse_s`` a cut uses the relay's own auto-off where it has one
        (invariant 2), so the circuit comes back even if this daemon dies mid-pulse.
        """
        started = since if since is not None else self.clock.monotonic()
        burner.driving += 1
        try:
            return await self._drive_loop(
                burner, cut, source, command_id, started, wanted, device_pulse_s
            )
        finally:
            burner.driving -= 1

    async def _drive_loop(
        self,
        burner: _Burner,
        cut: bool,
        source: str,
        command_id: str | None,
        started: float,
        wanted: Callable[[], bool],
        device_pulse_s: float | None,
    ) -> float | None:
        spec = burner.spec
        want = spec.wiring.relay_on_for(cut)
        what = "cut" if cut else "restore"
        delays = backoff()
        attempt = 0
        while True:
            attempt += 1
            self._preempt_polls(spec.relay)
            async with burner.io:
                if not wanted() or (not cut and burner.lock is not None):
                    return None
                try:
                    # Never on a locked (or being locked) burner: the device would
                    # end the lock by itself once the hold is over.
                    if (
                        device_pulse_s
                        and want
                        and burner.lock is None
                        and spec.relay.can_pulse(spec.channel)
                    ):
                        # Counted from before sending: the device starts no earlier.
                        burner.pulse_ends = self.clock.monotonic() + device_pulse_s
                        await spec.relay.pulse(spec.channel, want, device_pulse_s)
                    else:
                        await spec.relay.set(spec.channel, want)
                    self._emit(
                        "cut_commanded" if cut else "restore_commanded",
                        burner,
                        source=source,
                        command_id=command_id,
                        latency_ms=self._ms_since(started),
                        detail={"attempt": attempt} if attempt > 1 else {},
                    )
                    actual = await spec.relay.read(spec.channel)
                    if actual != want:
                        raise RelayMismatch(
                            f"relay {spec.relay.name!r} channel {spec.channel} reads "
                            f"{'on' if actual else 'off'} after being set "
                            f"{'on' if want else 'off'}"
                        )
                except RelayError as exc:
                    failure: RelayError = exc
                else:
                    burner.seen(cut, self.clock.monotonic())
                    latency = self._ms_since(started)
                    if burner.fault is not None:
                        self._emit("recovered", burner, source=source, detail={"was": burner.fault})
                        burner.fault = None
                    self._emit(
                        "cut_confirmed" if cut else "restore_confirmed",
                        burner,
                        source=source,
                        command_id=command_id,
                        latency_ms=latency,
                    )
                    return latency
            delay = next(delays)
            if burner.fault != f"{what} failed: {failure}":
                log.warning("%s: %s failed, retrying: %s", spec.key, what, failure)
            burner.fault = f"{what} failed: {failure}"
            self._emit(
                "fault",
                burner,
                source=source,
                command_id=command_id,
                detail={
                    "error": str(failure),
                    "type": type(failure).__name__,
                    "attempt": attempt,
                    "retry_in_s": round(delay, 2),
                },
            )
            if attempt == 1:
                self._save()  # an unconfirmed shutoff must survive a restart
            await self.clock.sleep(delay)

    # -- changes made by others (Mi Home app, XiaoAi, a power cut) -----------------

    async def _poll(self, burners: list[_Burner]) -> None:
        relay = burners[0].spec.relay
        assert relay.poll_s
        while True:
            await self.clock.sleep(relay.poll_s)
            # While any burner of this relay is being driven (or retried), the relay
            # is being read back anyway; polling would only hold up the retries on a
            # device that answers one request at a time.
            if any(b.driving or b.io.locked() for b in burners):
                continue
            # A relay that does not answer is probed through one burner, not all.
            if any(b.link_fault is not None for b in burners):
                await self._check_external(burners[0])
                if burners[0].link_fault is not None:
                    continue
            for burner in burners:
                if not burner.io.locked() and not burner.driving:
                    await self._check_external(burner)

    def _preempt_polls(self, relay: Relay) -> None:
        """A polling read on this relay gives way to a cut or restore. The device answers
        one request at a time, and a read it does not answer holds it for up to the
        relay's timeout (2 s for miIO): the drive reads the relay back itself anyway."""
        for other in self._burners.values():
            if other.poll_read is not None and other.spec.relay is relay:
                other.poll_read.cancel()

    async def _check_external(self, burner: _Burner) -> None:
        spec = burner.spec
        source = spec.relay.external_source
        async with burner.io:
            # A locked burner's state is asked of the device, not taken from a report
            # anyone who may publish on the relay's topics could have sent.
            fresh = burner.lock is not None
            read = asyncio.ensure_future(spec.relay.read(spec.channel, fresh=fresh))
            burner.poll_read = read
            try:
                await asyncio.wait({read})
            except asyncio.CancelledError:  # the poller itself is being stopped
                read.cancel()
                raise
            finally:
                burner.poll_read = None
            if read.cancelled():
                return  # preempted by a drive (_preempt_polls)
            try:
                cut_now = spec.wiring.is_cut(read.result())
            except RelayError as exc:
                if burner.link_fault is None:
                    log.warning("%s: relay not answering: %s", spec.key, exc)
                    burner.link_fault = f"relay not answering: {exc}"
                    self._emit("fault", burner, detail={"error": str(exc), "while": "polling"})
                return
            if burner.link_fault is not None:
                self._emit("recovered", burner, detail={"was": burner.link_fault})
                burner.link_fault = None
            known = burner.relay_cut
            burner.seen(cut_now, self.clock.monotonic())
        if known is None or cut_now == known:
            return
        if cut_now and burner.lock is None and not burner.pulsing:
            # Cut by someone else: record it as their shutoff, and make sure it
            # ends restored after pulse_s like any other.
            cmd = Command.model_validate({"action": "shutoff", "source": source})
            self._emit(
                "command",
                source=source,
                command_id=cmd.id,
                detail={"action": "shutoff", "burner": spec.key, "seen": "relay switched to cut"},
            )
            self._start_shutoff(burner, cmd)
        elif not cut_now and burner.lock is not None and not burner.reasserting:
            self._spawn(burner, self._reassert(burner, source))

    async def _reassert(self, burner: _Burner, source: str) -> None:
        burner.reasserting = True
        lock = burner.lock
        try:
            done = await self._drive(
                burner,
                cut=True,
                source=source,
                command_id=None,
                wanted=lambda: burner.lock is lock,
            )
        finally:
            burner.reasserting = False
        if done is not None:
            self._emit("lock_reasserted", burner, source=source, detail={"seen": "relay restored"})

    # -- views -------------------------------------------------------------------

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
            "event_store": self.events.store_error or "ok",
            "state_store": self.state.health(),
            **{name: check() for name, check in self.health.items()},
            "burners": burners,
        }

    # -- helpers -----------------------------------------------------------------

    def _ms_since(self, started: float) -> float:
        return round((self.clock.monotonic() - started) * 1000.0, 3)

    def _emit(self, kind: EventKind, burner: _Burner | None = None, **fields: Any) -> None:
        self.events.emit(
            kind, self.clock.time(), burner=burner.spec.key if burner else None, **fields
        )

    def _save(self) -> None:
        self.state.save(
            PersistedState(
                locks={k: b.lock for k, b in self._burners.items() if b.lock is not None},
                last_shutoff={
                    k: b.last_shutoff
                    for k, b in self._burners.items()
                    if b.last_shutoff is not None
                },
            )
        )

    async def _wait_any(self, work: Awaitable[Any], timeout_s: float) -> None:
        """Wait for ``work`` or for ``timeout_s`` on our clock, whichever comes first.

        The work is shielded: giving up waiting never cancels a cut.
        """
        inner = asyncio.ensure_future(work)
        if inner.done():
            return
        # Callbacks on one future, not asyncio.wait + shield: a shutoff's result waits
        # here, set up right after its relay command is written (less CPU taken from
        # the broker forwarding it), and nothing here can cancel ``inner``.
        woken = asyncio.get_running_loop().create_future()

        def wake(_: asyncio.Future[Any]) -> None:
            if not woken.done():
                woken.set_result(None)

        timer = self.clock.call_later(timeout_s, lambda: wake(inner))
        inner.add_done_callback(wake)
        try:
            await woken
        finally:
            timer.cancel()
            inner.remove_done_callback(wake)


def _stove_of(cmd: Command) -> dict[str, str]:
    """``{"stove": …}`` for a command confined to one stove (its MQTT topics), so that
    its events go to that stove's topics only; nothing for any other command."""
    return {"stove": cmd.stove} if cmd.stove is not None else {}


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
