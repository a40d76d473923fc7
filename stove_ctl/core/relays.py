"""The relays, as the controller drives and watches them.

``RelaySupervisor`` sets a burner's circuit and confirms it by reading the relay back,
retrying until it holds (a cut is never abandoned); polls each relay for changes made
by others (the Mi Home app, a wall button, a power cut) and turns them into shutoffs or
re-asserted locks; and reconciles every relay with the saved state at start-up. What
to cut and why is the controller's (``stove_ctl.core.controller``): it hands this
supervisor the two things it may start on its own, a shutoff and a lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from stove_ctl.clock import Clock, wait_or_give_up
from stove_ctl.core.burner import Burner, log_crash
from stove_ctl.core.commands import Command
from stove_ctl.drivers.relay import Relay
from stove_ctl.errors import RelayError, RelayMismatch
from stove_ctl.retry import backoff

log = logging.getLogger(__name__)

Emit = Callable[..., None]  # (kind, burner=None, **event fields)


class RelaySupervisor:
    def __init__(
        self,
        burners: dict[str, Burner],
        clock: Clock,
        emit: Emit,
        save: Callable[[Burner], None],
        start_shutoff: Callable[[Burner, Command], Any],
        lock: Callable[[Burner, Command], Any],
    ) -> None:
        self.clock = clock
        self._emit = emit
        self._save = save
        self._start_shutoff = start_shutoff
        self._lock_burner = lock
        self._pollers: set[asyncio.Task[None]] = set()
        self._on_relay: dict[int, list[Burner]] = {}  # id(relay): the burners it switches
        for burner in burners.values():
            self._on_relay.setdefault(id(burner.spec.relay), []).append(burner)

    def start_polling(self) -> None:
        """Poll every relay that asks for it (``poll_s``): one task per relay."""
        for burners in self._on_relay.values():
            if not burners[0].spec.relay.poll_s:
                continue
            task = asyncio.ensure_future(self._poll(burners))
            task.add_done_callback(log_crash)
            self._pollers.add(task)

    async def stop_polling(self) -> None:
        for poller in self._pollers:
            poller.cancel()
        await asyncio.gather(*self._pollers, return_exceptions=True)

    async def reconcile(self, burner: Burner, state_lost: bool) -> None:
        """Start-up: re-assert locks; finish (hold, then restore) a cut found on an
        unlocked burner; make an owed shutoff."""
        lock = burner.lock
        if lock is not None:
            done = await self.drive(
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
        if state_lost:
            await self._hold_if_found_cut(burner)
            return
        try:
            found_cut = burner.spec.wiring.is_cut(await burner.spec.relay.read(burner.spec.channel))
        except RelayError as exc:
            log.warning("%s: cannot read relay at start-up (%s); restoring", burner.spec.key, exc)
            await self.drive(
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
                self._save(burner)
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

    async def _hold_if_found_cut(self, burner: Burner) -> None:
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
        self._lock_burner(burner, Command(action="lock", source="startup", id="state-lost"))

    async def restore_unlocked(self, burner: Burner, source: str, command_id: str | None) -> None:
        """Restore the circuit of a burner just unlocked. A shutoff the lock held cut
        (its outcome "locked") is restored by this: its record says so, and when."""
        held = burner.last_shutoff
        done = await self.drive(
            burner,
            cut=False,
            source=source,
            command_id=command_id,
            wanted=lambda: not burner.pulsing,
        )
        still_held = held is not None and held.outcome == "locked" and burner.last_shutoff is held
        if done is not None and still_held and burner.lock is None:
            assert held is not None
            held.outcome = "restored"
            held.restored_at = self.clock.time()
            self._save(burner)

    async def drive(
        self,
        burner: Burner,
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
        burner: Burner,
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
                pulse_ends = None
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
                        pulse_ends = self.clock.monotonic() + device_pulse_s
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
                    # Only a confirmed pulse has an end the device keeps: while a cut
                    # is still failing, a new request joins it (invariant 5).
                    burner.pulse_ends = pulse_ends
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
            retry = wanted()  # not when a newer shutoff came during this attempt
            if burner.fault != f"{what} failed: {failure}":
                log.warning("%s: %s failed, retrying: %s", spec.key, what, failure)
            burner.fault = f"{what} failed: {failure}"
            detail: dict[str, Any] = {
                "error": str(failure),
                "type": type(failure).__name__,
                "attempt": attempt,
            }
            if retry:
                detail["retry_in_s"] = round(delay, 2)
            else:
                detail["then"] = "gave way to a newer shutoff of this burner"
            self._emit("fault", burner, source=source, command_id=command_id, detail=detail)
            if attempt == 1:
                self._save(burner)  # an unconfirmed shutoff must survive a restart
            if not retry:
                continue  # the top of the loop gives it up at once
            # A newer shutoff ends this wait early (``Burner.retry_now``): the next
            # attempt then finds the restore no longer wanted and gives way to the cut.
            wait: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            burner.retry_waits.add(wait)
            try:
                await wait_or_give_up(self.clock, wait, delay)
            finally:
                burner.retry_waits.discard(wait)

    async def _poll(self, burners: list[Burner]) -> None:
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
        for other in self._on_relay.get(id(relay), ()):
            if other.poll_read is not None:
                other.poll_read.cancel()

    async def _check_external(self, burner: Burner) -> None:
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
            burner.spawn(self._reassert(burner, source))

    async def _reassert(self, burner: Burner, source: str) -> None:
        burner.reasserting = True
        lock = burner.lock
        try:
            done = await self.drive(
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

    def _ms_since(self, started: float) -> float:
        return round((self.clock.monotonic() - started) * 1000.0, 3)
