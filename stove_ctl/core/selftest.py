"""The relay self-test, on a schedule, and the commissioning records.

A self-test of a burner cuts its relay channel for a short pulse and restores it,
confirming each by reading the relay back (as every cut and restore is), reads it back
once more on its own, and checks that the flame input (if any) reads "out". It runs only
on a burner that is out (its flame input says so; a burner without one is tested as it
is: a cut only ever takes gas away), unlocked, with no shutoff in progress, no relay
fault and its circuit known intact; otherwise it is skipped, and why is recorded.
Restoring only restores the circuit: it cannot open a valve (invariant 1). A shutoff or
lock that arrives during the pulse takes over: the self-test then leaves the restore
to it, and the relay's own auto-off (where it has one) or the start-up reconcile ends
a pulse the daemon did not finish (invariant 2).

Schedule (``self_test: {every_days: N, at: "03:30"}``, in the config's time zone): a
burner is due at ``at`` on the day ``every_days`` after its last self-test, or at the
first ``at`` after the daemon starts if it was never tested (a daemon started after a
due time catches up at the next ``at``, never at start-up). A burner skipped (lit,
locked…) or failed is tried again at the next day's ``at``. Time comes from the
injected clock, so tests run the schedule on a manual clock.

Reminders in ``status``: a burner with no passing commissioning record, and (with
``self_test`` configured) one not self-tested for ``every_days`` plus a day.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from stove_ctl.clock import Clock, wait_or_give_up
from stove_ctl.config import SelfTestConfig
from stove_ctl.core.burner import Burner
from stove_ctl.core.commands import new_command_id
from stove_ctl.core.controller import Controller
from stove_ctl.core.records import CommissioningReport, RecordFile
from stove_ctl.errors import RelayError

log = logging.getLogger(__name__)

CONFIRM_S = 10.0  # each direction must be confirmed by the relay within this
WAKE_S = 300.0  # the schedule looks at the wall clock at least this often (clock steps)
DAY_S = 86400.0


class SelfTest:
    """The self-test of every burner, its schedule, and the commissioning records."""

    def __init__(
        self,
        controller: Controller,
        clock: Clock,
        config: SelfTestConfig | None,
        state_dir: Path | None,
        zone: dt.tzinfo = dt.UTC,
    ) -> None:
        self.controller = controller
        self.events = controller.events
        self.clock = clock
        self.config = config
        self.zone = zone
        self.results = RecordFile(state_dir / "self_test.json" if state_dir else None)
        self.commissioning = RecordFile(state_dir / "commissioning.json" if state_dir else None)
        self._task: asyncio.Task[None] | None = None
        self._running = asyncio.Lock()
        self._started_at: float | None = None
        self._retry_after: dict[str, float] = {}  # skipped or failed: not before then
        controller.burner_extras.append(self.extras)

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        """Run the schedule (if configured) in the background."""
        self._started_at = self.clock.time()
        if self.config is not None and self._task is None:
            self._task = asyncio.ensure_future(self._schedule())

    async def stop(self) -> None:
        """Stop the schedule; a self-test under way finishes its restore first."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        async with self._running:
            pass

    async def _schedule(self) -> None:
        while True:
            now = self.clock.time()
            burners = self.controller.burners()
            due = {b.spec.key: self.next_due(b.spec.key) for b in burners}
            soonest = min(due.values(), default=now + WAKE_S)
            if soonest > now:
                await self.clock.sleep(min(soonest - now, WAKE_S))
                continue
            try:
                await self.run([b for b in burners if due[b.spec.key] <= now], "schedule")
            except Exception:  # a scheduled self-test never takes the daemon down
                log.exception("self-test failed to run")
                for burner in burners:
                    self._retry_after[burner.spec.key] = now + 1.0

    def next_due(self, key: str) -> float:
        """When ``key`` is next self-tested on the schedule (Unix time)."""
        assert self.config is not None
        started = self._started_at if self._started_at is not None else self.clock.time()
        last = self.last(key)
        base = started
        if last is not None:
            day = dt.datetime.fromtimestamp(last["at"], self.zone).date()
            day += dt.timedelta(days=self.config.every_days)
            base = dt.datetime.combine(day, dt.time(0), tzinfo=self.zone).timestamp()
        base = max(base, started, self._retry_after.get(key, started))
        return self._next_at(base)

    def _next_at(self, after: float) -> float:
        """The first ``at`` (local time) at or after ``after``."""
        assert self.config is not None
        local = dt.datetime.fromtimestamp(after, self.zone)
        day = local.date()
        while True:
            candidate = dt.datetime.combine(day, self.config.at, tzinfo=self.zone).timestamp()
            if candidate >= after:
                return candidate
            day += dt.timedelta(days=1)

    # -- the test ----------------------------------------------------------------

    async def run(self, burners: list[Burner], source: str) -> list[dict[str, Any]]:
        """Self-test ``burners`` one after the other; the result of each."""
        results = []
        async with self._running:
            for burner in burners:
                results.append(await self._one(burner, source))
        return results

    def _skip_reason(self, burner: Burner) -> str | None:
        flame = burner.spec.flame.flame() if burner.spec.flame is not None else None
        if burner.lock is not None:
            return "locked"
        if burner.pulsing or burner.driving:
            return "a shutoff is in progress"
        if burner.fault or burner.link_fault:
            return f"relay fault: {burner.fault or burner.link_fault}"
        if flame:
            return "the burner is lit"
        if burner.relay_cut is None:
            return "the relay's state is not known yet"
        if burner.relay_cut:
            return "the circuit is cut"
        return None

    async def _one(self, burner: Burner, source: str) -> dict[str, Any]:
        spec = burner.spec
        started = self.clock.time()
        skip = self._skip_reason(burner)
        if skip is None and spec.flame is not None and spec.flame.flame() is None:
            return self._finish(
                burner,
                source,
                started,
                ["the flame input gives no reading (not connected, or gone quiet)"],
                {"flame_input": "no reading"},
            )
        if skip is not None:
            return self._skipped(burner, source, skip)
        command_id = f"self-test-{new_command_id()}"
        cut_done: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        pulse = burner.spawn(self._pulse(burner, command_id, cut_done))
        problems: list[str] = []
        checks: dict[str, str] = {}
        await wait_or_give_up(self.clock, cut_done, CONFIRM_S)
        if not cut_done.done():
            checks["cut"] = "not confirmed"
            problems.append(
                f"the relay did not confirm the cut within {CONFIRM_S:g} s "
                f"({burner.fault or 'no answer'}); it is still being tried"
            )
        elif cut_done.result() is None:
            return self._skipped(burner, source, "a shutoff or lock came first")
        else:
            checks["cut"] = "confirmed"
            problems += await self._read_back(burner, cut=True, checks=checks)
            if spec.flame is not None:
                flame = spec.flame.flame()
                checks["flame_input"] = {None: "no reading", True: "lit", False: "out"}[flame]
                if flame is not False:
                    problems.append(f"the flame input reads {checks['flame_input']}, not out")
        await wait_or_give_up(self.clock, pulse, self._pulse_s() + CONFIRM_S)
        if not pulse.done():
            checks["restore"] = "not confirmed"
            problems.append(
                f"the relay did not confirm the restore within {CONFIRM_S:g} s "
                f"({burner.fault or 'no answer'}); it is still being tried"
            )
        elif checks.get("cut") == "confirmed":
            if pulse.result() is None:
                checks["restore"] = "left to a shutoff or lock that came during the test"
            else:
                checks["restore"] = "confirmed"
                problems += await self._read_back(burner, cut=False, checks=checks)
        return self._finish(burner, source, started, problems, checks)

    def _pulse_s(self) -> float:
        return self.config.pulse_s if self.config is not None else 0.5

    async def _pulse(
        self, burner: Burner, command_id: str, cut_done: asyncio.Future[float | None]
    ) -> float | None:
        relays = self.controller.relays
        hold = self._pulse_s()
        cut: float | None = None
        try:
            cut = await relays.drive(
                burner,
                cut=True,
                source="self_test",
                command_id=command_id,
                wanted=lambda: burner.lock is None and not burner.pulsing,
                device_pulse_s=hold,
            )
        finally:
            if not cut_done.done():
                cut_done.set_result(cut)
        if cut is None:
            return None  # a shutoff or a lock took over; it restores (or holds) itself
        await self.clock.sleep(hold)
        return await relays.drive(
            burner,
            cut=False,
            source="self_test",
            command_id=command_id,
            wanted=lambda: not burner.pulsing,
        )

    async def _read_back(self, burner: Burner, cut: bool, checks: dict[str, str]) -> list[str]:
        """Ask the relay once more, on its own, whether the circuit is ``cut``."""
        spec = burner.spec
        what = "cut" if cut else "restore"
        try:
            async with burner.io:
                on = await spec.relay.read(spec.channel, fresh=True)
        except RelayError as exc:
            checks[f"{what}_read_back"] = "no answer"
            return [f"the relay did not answer a read-back after the {what}: {exc}"]
        if spec.wiring.is_cut(on) != cut:
            checks[f"{what}_read_back"] = "wrong"
            state = "cut" if spec.wiring.is_cut(on) else "intact"
            return [f"after the {what} the relay reads back {state} (channel {spec.channel})"]
        checks[f"{what}_read_back"] = "ok"
        return []

    def _skipped(self, burner: Burner, source: str, reason: str) -> dict[str, Any]:
        key = burner.spec.key
        now = self.clock.time()
        record = {"at": now, "result": "skipped", "reason": reason, "source": source}
        self._retry_after[key] = now + 1.0
        self._store(key, "last_skip", record)
        self.events.emit("self_test", now, burner=key, source=source, detail=record)
        log.info("%s: self-test skipped: %s", key, reason)
        return {"burner": key, **record}

    def _finish(
        self,
        burner: Burner,
        source: str,
        started: float,
        problems: list[str],
        checks: dict[str, str],
    ) -> dict[str, Any]:
        key = burner.spec.key
        now = self.clock.time()
        record = {
            "at": started,
            "result": "failed" if problems else "ok",
            "problems": problems,
            "checks": checks,
            "source": source,
            "pulse_s": self._pulse_s(),
            "duration_s": round(now - started, 3),
        }
        self._store(key, "last", record)
        self.events.emit("self_test", now, burner=key, source=source, detail=record)
        if problems:
            self._retry_after[key] = now + 1.0
            error = "self-test failed: " + "; ".join(problems)
            log.warning("%s: %s", key, error)
            self.events.emit(
                "fault", now, burner=key, source=source, detail={"error": error, "type": "SelfTest"}
            )
            self.events.emit(
                "warning",
                now,
                burner=key,
                source=source,
                detail={"self_test": "failed", "error": error},
            )
        else:
            self._retry_after.pop(key, None)
            log.info("%s: self-test passed", key)
        return {"burner": key, **record}

    def _store(self, key: str, slot: str, record: dict[str, Any]) -> None:
        entry = dict(self.results.get(key) or {})
        entry[slot] = record
        try:
            self.results.put(key, entry)
        except OSError as exc:
            log.error("cannot write the self-test record: %s", exc)

    # -- commissioning -------------------------------------------------------------

    def record_commissioning(self, burner: Burner, report: CommissioningReport) -> dict[str, Any]:
        """Keep what ``stove-ctl commission`` found. Raises OSError if it cannot be
        written (the record is then kept in memory only)."""
        spec = burner.spec
        now = self.clock.time()
        record = {
            "at": now,
            "date": dt.datetime.fromtimestamp(now, self.zone).isoformat(timespec="seconds"),
            "wiring": spec.wiring.value,
            "relay": {"device": spec.relay.name, "channel": spec.channel},
            "pulse_s": spec.pulse_s,
            **report.model_dump(exclude={"action", "burner"}),
        }
        self.events.emit(
            "commissioned",
            now,
            burner=spec.key,
            source="cli",
            detail={"result": report.result, "diagnosis": report.diagnosis},
        )
        self.commissioning.put(spec.key, record)
        return record

    # -- status ------------------------------------------------------------------

    def last(self, key: str) -> dict[str, Any] | None:
        """The last self-test that ran (passed or failed), if any."""
        entry = self.results.get(key) or {}
        last = entry.get("last")
        return last if isinstance(last, dict) and isinstance(last.get("at"), int | float) else None

    def extras(self, key: str) -> dict[str, Any]:
        """This burner's commissioning and self-test, for ``status``."""
        commissioned = self.commissioning.get(key)
        last = self.last(key)
        skip = (self.results.get(key) or {}).get("last_skip")
        if skip is not None and last is not None and skip.get("at", 0) < last["at"]:
            skip = None
        return {
            "commissioning": {k: commissioned.get(k) for k in ("at", "result", "diagnosis")}
            if commissioned
            else None,
            "self_test": last,
            "self_test_skipped": skip,
            "self_test_problem": bool(last and last["result"] == "failed"),
            "reminders": self.reminders(key, commissioned, last),
        }

    def reminders(
        self, key: str, commissioned: dict[str, Any] | None, last: dict[str, Any] | None
    ) -> list[str]:
        burner_id = key.split("/", 1)[1]
        out = []
        if commissioned is None:
            out.append(f"never commissioned: run `stove-ctl commission {burner_id}`")
        elif commissioned.get("result") != "passed":
            out.append(
                f"commissioning {commissioned.get('result')} on {self._date(commissioned['at'])}: "
                f"fix it and run `stove-ctl commission {burner_id}` again"
            )
        if last is not None and last["result"] == "failed":
            out.append(
                f"self-test failed on {self._date(last['at'])}: " + "; ".join(last["problems"])
            )
        if self.config is not None:
            since = last["at"] if last else (commissioned or {}).get("at")
            period = (self.config.every_days + 1) * DAY_S
            if isinstance(since, int | float) and self.clock.time() - since > period:
                what = "" if last else "commissioning on "
                out.append(
                    f"not self-tested since {what}{self._date(since)} "
                    f"(self_test.every_days: {self.config.every_days})"
                )
        return out

    def _date(self, ts: float) -> str:
        return dt.datetime.fromtimestamp(ts, self.zone).strftime("%Y-%m-%d")
