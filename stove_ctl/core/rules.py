"""Safety rules: max flame-on time, unattended cooking, gas/smoke/CO alarms, away.

The engine reads each burner's flame input once a second (on the injected clock, so
tests step it), warns ``warning_lead_s`` before a rule cuts, and accepts ``snooze``
(a restore-direction action: allowed sources and freshness apply) up to a cap per
lit period. Alarm and presence inputs arrive from MQTT through :class:`MqttInputs`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any

from stove_ctl.clock import Clock
from stove_ctl.config import InputsConfig, RulesConfig
from stove_ctl.core.burner import Burner
from stove_ctl.core.commands import Command
from stove_ctl.core.controller import Controller
from stove_ctl.core.events import EventLog
from stove_ctl.drivers.broker import BrokerLink, Incoming
from stove_ctl.drivers.relay import Sample
from stove_ctl.errors import CommandError

log = logging.getLogger(__name__)
TICK_S = 1.0


@dataclass
class _Watch:
    lit_since: float | None = None
    snoozed_s: float = 0.0
    warned: str | None = None  # the rule already warned about, for this deadline
    cut_by: str | None = None  # a rule that already cut this lit period


class RuleEngine:
    def __init__(
        self,
        controller: Controller,
        events: EventLog,
        clock: Clock,
        rules: RulesConfig,
        watches_motion: bool = True,
    ) -> None:
        self.controller = controller
        self.events = events
        self.clock = clock
        self.rules = rules
        # Without a motion input nobody can be seen, so "unattended" would only be a
        # second max-flame-on timer: it is off.
        self.watches_motion = watches_motion
        self.watch: dict[str, _Watch] = {}
        self.last_motion = clock.monotonic()  # nobody knows better at start: assume present
        self.active_alarms: set[str] = set()
        self.away = False
        self._task: asyncio.Task[None] | None = None
        controller.handlers["snooze"] = self._snooze

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self.clock.sleep(TICK_S)
            try:
                await self.evaluate()
            except CommandError as exc:
                log.error("rule could not act: %s", exc.message)

    # -- inputs ------------------------------------------------------------------

    def motion(self) -> None:
        self.last_motion = self.clock.monotonic()

    async def alarm(self, name: str, kind: str, active: bool) -> None:
        """A gas / smoke / CO detector changed: on → cut every burner and lock."""
        if not active:
            if name in self.active_alarms:
                self.active_alarms.discard(name)
                self._emit("alarm", detail={"input": name, "kind": kind, "active": False})
            return
        if name in self.active_alarms:
            return
        self.active_alarms.add(name)
        self._emit("alarm", detail={"input": name, "kind": kind, "active": True})
        await self._act("shutoff", "all", f"rule:alarm:{name}")
        if self.rules.alarm_lock:
            await self._act("lock", "all", f"rule:alarm:{name}")

    async def presence(self, away: bool) -> None:
        was, self.away = self.away, away
        if away and not was and self.rules.away_shutoff:
            self._emit("warning", detail={"rule": "away", "cut_in_s": 0})
            await self._act("shutoff", "all", "rule:away")

    # -- evaluation ----------------------------------------------------------------

    def _deadlines(self, w: _Watch) -> list[tuple[float, str]]:
        assert w.lit_since is not None
        out = []
        if self.rules.max_flame_on_min:
            out.append(
                (w.lit_since + self.rules.max_flame_on_min * 60 + w.snoozed_s, "max_flame_on")
            )
        if self.rules.unattended_min and self.watches_motion:
            seen = max(self.last_motion, w.lit_since)
            out.append((seen + self.rules.unattended_min * 60 + w.snoozed_s, "unattended"))
        return out

    async def evaluate(self) -> None:
        now = self.clock.monotonic()
        for burner in self.controller.burners():
            key = burner.spec.key
            flame = burner.spec.flame.flame() if burner.spec.flame is not None else None
            w = self.watch.setdefault(key, _Watch())
            if flame is not True:
                if flame is False:
                    self.watch[key] = _Watch()  # out: a new lit period starts afresh
                continue
            if w.lit_since is None:
                w.lit_since = now
            deadlines = self._deadlines(w)
            if not deadlines or w.cut_by is not None:
                continue
            due, rule = min(deadlines)
            if now >= due:
                w.cut_by = rule
                await self._act("shutoff", key, f"rule:{rule}")
            elif now >= due - self.rules.warning_lead_s and w.warned != rule:
                w.warned = rule
                self._emit(
                    "warning",
                    burner,
                    detail={"rule": rule, "cut_in_s": round(due - now, 1)},
                )

    async def _act(self, action: str, burner: str, command_id: str) -> None:
        cmd = Command.model_validate(
            {"action": action, "burner": burner, "source": "rule", "id": command_id[:64]}
        )
        await self.controller.execute(cmd, wait="accepted")

    async def _snooze(self, cmd: Command, targets: list[Burner]) -> dict[str, Any]:
        assert cmd.in_s is not None
        cap = self.rules.snooze_max_min * 60
        results = []
        for burner in targets:
            w = self.watch.get(burner.spec.key)
            if w is None or w.lit_since is None:
                results.append({"burner": burner.spec.key, "snoozed_s": 0, "reason": "not lit"})
                continue
            granted = max(0.0, min(cmd.in_s, cap - w.snoozed_s))
            w.snoozed_s += granted
            w.warned = None
            self._emit(
                "snoozed",
                burner,
                source=cmd.source,
                command_id=cmd.id,
                detail={"asked_s": cmd.in_s, "granted_s": granted, "total_s": w.snoozed_s},
            )
            results.append(
                {"burner": burner.spec.key, "snoozed_s": granted, "total_s": w.snoozed_s}
            )
        if all(r["snoozed_s"] == 0 for r in results):
            raise CommandError(
                "not_allowed", f"nothing snoozed: not lit, or the {cap / 60:g} min cap is used up"
            )
        return {"ok": True, "action": "snooze", "burners": results}

    def _emit(
        self, kind: Any, burner: Burner | None = None, source: str = "rule", **fields: Any
    ) -> None:
        key = burner.spec.key if burner else None
        self.events.emit(kind, self.clock.time(), burner=key, source=source, **fields)


class MqttFlame:
    """A burner's flame as an MQTT sensor reports it; unknown when it goes quiet."""

    def __init__(
        self, clock: Clock, lit_above_mv: float | None, lit: str, out: str, stale_s: float
    ):
        self.clock = clock
        self.lit_above_mv = lit_above_mv
        self.payload_lit, self.payload_out = lit, out
        self.stale_s = stale_s
        self._value: bool | None = None
        self._mv: float | None = None
        self._at = 0.0

    def update(self, message: Incoming) -> None:
        text = message.payload.decode(errors="replace").strip()
        value: bool | None
        mv: float | None = None
        if self.lit_above_mv is not None:
            try:
                mv = float(text)
            except ValueError:
                log.warning("flame sensor sent %r, not millivolts; ignored", text[:40])
                return
            if not math.isfinite(mv):
                log.warning("flame sensor sent %r, not millivolts; ignored", text[:40])
                return
            value = mv >= self.lit_above_mv
        elif text == self.payload_lit:
            value = True
        elif text == self.payload_out:
            value = False
        else:
            log.warning("flame sensor sent %r; ignored", text[:40])
            return
        self._value, self._mv, self._at = value, mv, self.clock.monotonic()

    def flame(self) -> bool | None:
        if self._value is None or self.clock.monotonic() - self._at > self.stale_s:
            return None
        return self._value

    def reading(self) -> Sample | None:
        if self.flame() is None or self._mv is None:
            return None
        return Sample(self._mv, self._at)


class MqttInputs:
    """Subscribes the motion, alarm and presence inputs and feeds the rule engine."""

    def __init__(self, link: BrokerLink, inputs: InputsConfig, engine: RuleEngine) -> None:
        self.engine = engine
        self.tasks: set[asyncio.Task[None]] = set()
        for motion in inputs.motion:
            link.subscribe(
                motion.topic,
                lambda m, on=motion.payload_on: self._motion(m, on),  # type: ignore[misc]
            )
        for alarm in inputs.alarms:
            link.subscribe(alarm.topic, lambda m, a=alarm: self._alarm(m, a))  # type: ignore[misc]
        if inputs.presence is not None:
            away = inputs.presence.payload_away
            link.subscribe(inputs.presence.topic, lambda m: self._presence(m, away))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _motion(self, message: Incoming, on: str) -> None:
        if message.payload.decode(errors="replace").strip() == on:
            self.engine.motion()

    def _alarm(self, message: Incoming, alarm: Any) -> None:
        text = message.payload.decode(errors="replace").strip()
        if text in (alarm.payload_on, alarm.payload_off):
            self._spawn(self.engine.alarm(alarm.name, alarm.kind, text == alarm.payload_on))
        else:
            log.warning("alarm input %s sent %r; ignored", alarm.name, text[:40])

    def _presence(self, message: Incoming, away: str) -> None:
        text = message.payload.decode(errors="replace").strip()
        self._spawn(self.engine.presence(text == away))
