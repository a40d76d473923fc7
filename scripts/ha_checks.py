"""The checks of scripts/ha-check, and the rig they act on: a broker, a simulated
kitchen and a stove-ctl daemon per installation, and Home Assistant. Each check acts
through Home Assistant and asserts what happened to the burners in the simulator, what
the daemon says and what Home Assistant shows; it returns what it saw, or raises
Failed (or Skipped where the discovery has no such entity)."""

from __future__ import annotations

import argparse
import datetime as dt
import math
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from ha_home import HaSocket, HomeAssistant
from ha_rig import (
    BURNERS,
    PULSE_S,
    TIMER_MIN,
    Entity,
    Failed,
    Kitchen,
    Report,
    Skipped,
    StoveDaemon,
    Wire,
    broker,
    entities_of,
    parse_time,
    wait,
)

# States that carry no value yet, by role: a button never pressed, an event entity
# before its first event. A number with no state topic has no value to show either.
UNKNOWN_IS_FINE = {"shutoff", "events"}


class Checks:
    """The rig (started by the first checks) and every check, as methods."""

    def __init__(self, args: argparse.Namespace, venv: Path) -> None:
        self.args = args
        self.report = Report()
        self.workdir = Path(tempfile.mkdtemp(prefix="ha-check-"))
        self.mosquitto = broker.Mosquitto(self.workdir)
        self.ha = HomeAssistant(venv, self.workdir / "ha-config", broker.free_port())
        self.ha_version = ""
        self.ws: HaSocket | None = None
        self.wire: Wire | None = None
        self.kitchens: list[Kitchen] = []
        self.daemons: list[StoveDaemon] = []
        self.snapshot: list[str] = []  # the entities at rest, for the report
        self.ha_problems: list[str] = []  # warnings and errors about MQTT or stove-ctl
        self.ha_other: list[str] = []
        self.last_shutoff: tuple[float, StoveDaemon, str] | None = None

    # -- the rig ---------------------------------------------------------------------

    def add_daemon(self, base_topic: str, relay_topic: str, sensors: str) -> StoveDaemon:
        kitchen = Kitchen(self.mosquitto.port, relay_topic, sensors)
        kitchen.start()
        self.kitchens.append(kitchen)
        daemon = StoveDaemon(
            self.args.python, self.workdir, self.mosquitto.port, kitchen, base_topic
        )
        daemon.start()
        self.daemons.append(daemon)
        return daemon

    def start_rig(self) -> str:
        self.mosquitto.start()
        self.wire = Wire(self.mosquitto.port)
        d = self.add_daemon("stove_ctl", "hob", "kitchen-sensors")
        return f"broker 127.0.0.1:{self.mosquitto.port}, daemon {d.dir}"

    def start_ha(self) -> str:
        took = self.ha.start()
        return f"API up after {took:.0f} s on {self.ha.base}"

    def onboard(self) -> str:
        self.ha.onboard()
        self.ws = self.ha.socket()
        self.ha_version = self.ws.ha_version
        self.ha.token = self.ws.long_lived_token()
        return f"owner created, websocket API connected (Home Assistant {self.ha_version})"

    def add_mqtt(self) -> str:
        entry = self.ha.add_mqtt(self.mosquitto.port)
        return f"config entry {entry.get('title')!r}"

    def teardown(self) -> None:
        if self.ws is not None:
            self.ws.close()
        self.ha.stop()
        for daemon in self.daemons:
            daemon.stop()
        for kitchen in self.kitchens:
            kitchen.stop()
        if self.wire is not None:
            self.wire.stop()
        self.mosquitto.stop()

    # -- what Home Assistant shows ----------------------------------------------------

    @property
    def socket(self) -> HaSocket:
        assert self.ws is not None
        return self.ws

    def match(self, d: StoveDaemon) -> list[Entity]:
        """The daemon's discovery configs, each with its entity in Home Assistant."""
        assert self.wire is not None
        registry = {e["unique_id"]: e for e in self.socket.entities() if e["platform"] == "mqtt"}
        found = entities_of(self.wire, d.base_topic)
        for entity in found:
            if entity.unique_id in registry:
                entity.entity_id = registry[entity.unique_id]["entity_id"]
                entity.device_id = registry[entity.unique_id]["device_id"]
        return found

    def entity(self, d: StoveDaemon, role: str, burner: str) -> Entity:
        for entity in self.match(d):
            if entity.role == role and entity.burner == burner and entity.entity_id:
                return entity
        raise Skipped(f"no {role} entity for {burner} in Home Assistant")

    def state(self, entity: Entity) -> str | None:
        found = self.socket.states().get(entity.entity_id or "")
        return None if found is None else str(found["state"])

    def expect(self, entity: Entity, want: str, timeout_s: float) -> None:
        """Wait until Home Assistant shows ``want`` for the entity."""
        shown = lambda: self.state(entity)  # noqa: E731
        wait(lambda: shown() == want, timeout_s, f"{entity.entity_id} {want}", shown)

    def expect_time(self, entity: Entity, text: str | None, timeout_s: float) -> None:
        """Wait until a timestamp entity shows the time ``text`` (to the second)."""

        def same() -> bool:
            shown, want = parse_time(self.state(entity)), parse_time(text)
            return (
                shown is not None and want is not None and abs((shown - want).total_seconds()) <= 1
            )

        wait(same, timeout_s, f"{entity.entity_id} {text}", lambda: self.state(entity))

    def judge(self, e: Entity, shown: dict[str, Any] | None, status: dict[str, Any]) -> str | None:
        """What is wrong with what Home Assistant shows for ``e`` (None: nothing), given
        the daemon's status of its burner."""
        if shown is None:
            return "not in Home Assistant's states"
        state = shown["state"]
        if state == "unavailable":
            return "unavailable"
        if e.role in UNKNOWN_IS_FINE or (e.role == "timer" and "state_topic" not in e.config):
            return None
        if e.role == "timer":  # minutes to the next cut, as of when it was set
            due = parse_time(status.get("next_cut"))
            if due is None:
                return None if state == "unknown" else f"{state!r}, expected unknown (nothing due)"
            left_min = (due - dt.datetime.now(dt.UTC)).total_seconds() / 60
            try:
                ok = math.ceil(left_min) - 1 <= float(state) <= 1440
            except ValueError:
                ok = False
            return None if ok else f"{state!r}, expected a number of minutes >= {left_min:.1f}"
        if e.role == "next_cut":
            due = parse_time(status.get("next_cut"))
            if due is None:
                return None if state == "unknown" else f"{state!r}, expected unknown (nothing due)"
            if state == "unknown":
                return f"unknown, expected {status['next_cut']}"
            shown_due = parse_time(state)
            if shown_due is None or abs((shown_due - due).total_seconds()) > 1:
                return f"{state!r}, expected {status['next_cut']}"
            return None
        want = {
            "lock": ("locked" if status["lock"] else "unlocked")
            if e.component == "lock"
            else ("on" if status["lock"] else "off"),
            "flame": {"lit": "on", "out": "off"}.get(status["flame"], "unknown"),
            "mode": status["mode"],
            "fault": "on" if status["fault"] else "off",
        }.get(e.role)
        if want is None:  # a role this check does not know: it should show some value
            return "unknown" if state == "unknown" else None
        return None if state == want else f"{state!r}, expected {want!r}"

    def problems(self, d: StoveDaemon) -> list[str]:
        status = d.status()
        states = self.socket.states()
        out = []
        for e in self.match(d):
            if e.entity_id is None:
                out.append(f"{e.unique_id}: no entity in Home Assistant")
                continue
            problem = self.judge(e, states.get(e.entity_id), status.get(e.burner or "", {}))
            if problem:
                out.append(f"{e.entity_id}: {problem}")
        return out

    def explain(self, d: StoveDaemon, since: float) -> str:
        """What went over the daemon's command topics since ``since``, and what it refused."""
        assert self.wire is not None
        sent = self.wire.since(since, d.base_topic) or ["nothing"]
        refused = d.rejected_since(since)
        return (
            "on the broker: "
            + " | ".join(sent)
            + (f"; daemon refused: {refused}" if refused else "")
        )

    def orphans(self, d: StoveDaemon, entities: list[Entity]) -> list[str]:
        """Entities of the daemon's device in Home Assistant that no config describes."""
        devices = {e.device_id for e in entities if e.device_id}
        known = {e.unique_id for e in entities}
        return [
            f"{e['entity_id']} ({e['unique_id']})"
            for e in self.socket.entities()
            if e["device_id"] in devices and e["unique_id"] not in known
        ]

    # -- checks: discovery and states -------------------------------------------------

    def check_discovered(self, d: StoveDaemon) -> str:
        assert self.wire is not None
        wait(lambda: entities_of(self.wire, d.base_topic), 20, "discovery configs on the broker")
        time.sleep(1)  # the rest of them
        invalid = [e.topic for e in entities_of(self.wire, d.base_topic) if "_invalid" in e.config]
        if invalid:
            raise Failed(f"discovery payloads that are not JSON: {invalid}")

        def missing() -> list[str]:
            return [e.topic for e in self.match(d) if e.entity_id is None]

        wait(lambda: not missing(), 30, "an entity for every discovery config", missing)
        entities = self.match(d)
        devices = {dev["id"]: dev for dev in self.socket.devices()}
        mine = {e.device_id for e in entities}
        if len(mine) != 1:
            raise Failed(f"the stove's entities are on {len(mine)} devices, expected 1")
        device = devices[mine.pop() or ""]
        if device.get("manufacturer") != "stove-ctl":
            raise Failed(
                f"device {device.get('name')!r}: manufacturer {device.get('manufacturer')!r}"
            )
        roles = sorted({e.role for e in entities})
        lacking = [
            f"{b}: {r}"
            for b in BURNERS
            for r in ("shutoff", "lock", "flame", "next_cut")
            if not any(e.role == r and e.burner == b for e in entities)
        ]
        if lacking:
            raise Failed(f"entities missing: {lacking}")
        return (
            f"device {device['name']!r} {device['identifiers']}, {len(entities)} entities, "
            f"roles: {', '.join(roles)}"
        )

    def check_states(self, d: StoveDaemon) -> str:
        if not self.match(d):
            raise Failed(f"no discovery config of the daemon on {d.base_topic}/ is left")
        wait(lambda: not self.problems(d), 20, "every entity sensible", lambda: self.problems(d))
        states = self.socket.states()
        lines = [
            f"{e.entity_id:58} {states[e.entity_id or '']['state']:26} "
            f"{e.component}/{e.role} unique_id={e.unique_id}"
            for e in self.match(d)
        ]
        self.snapshot = self.snapshot or lines  # the first: at rest
        return f"{len(lines)} entities, all as the daemon says"

    # -- checks: acting through Home Assistant -----------------------------------------

    def ready(self, d: StoveDaemon, burner: str) -> None:
        """The burner lit, unlocked, and Home Assistant showing its flame on."""
        if d.status()[burner]["lock"]:
            d.cli("unlock", burner)
        d.kitchen.expect(burner, 10, cut=False)
        d.kitchen.light(burner)
        flame = self.entity(d, "flame", burner)
        self.expect(flame, "on", 15)

    def check_shutoff(self, d: StoveDaemon, burner: str) -> str:
        k = d.kitchen
        button = self.entity(d, "shutoff", burner)
        self.ready(d, burner)
        t0, m0 = time.time(), time.monotonic()
        self.socket.service("button", "press", button.entity_id or "")
        try:
            k.expect(burner, 5, lit=False)
        except Failed as exc:
            raise Failed(f"{exc}; {self.explain(d, t0)}") from None
        out_s = (k.burner(burner).last("flame_out") or m0) - m0
        k.expect(burner, PULSE_S + 8, cut=False)
        last = d.status()[burner]["last_shutoff"] or {}
        if last.get("source") != "mqtt":
            raise Failed(f"the daemon's last shutoff is {last}, expected one from mqtt")
        flame = self.entity(d, "flame", burner)
        self.expect(flame, "off", 40)
        if not k.relight(burner):
            raise Failed(
                f"a person cannot relight {burner} after the shutoff: {k.describe(burner)}"
            )
        self.expect(flame, "on", 20)
        self.last_shutoff = (t0, d, burner)
        return (
            f"out {out_s * 1000:.0f} ms after the press, restored, relit by hand; HA: flame off, on"
        )

    def check_event(self) -> str:
        if self.last_shutoff is None:
            raise Skipped("no shutoff from Home Assistant to look for")
        t0, d, burner = self.last_shutoff
        events = self.entity(d, "events", burner)
        shown = self.socket.states().get(events.entity_id or "")
        when = parse_time(shown["state"]) if shown else None
        if shown is None or when is None or when.timestamp() < t0 - 1:
            raise Failed(f"{events.entity_id} after the shutoff: {shown and shown['state']!r}")
        kind = shown["attributes"].get("event_type")
        if kind != "shutoff":
            raise Failed(f"{events.entity_id}: event_type {kind!r}, expected 'shutoff'")
        source = shown["attributes"].get("source")
        return f"{events.entity_id}: {shown['state']} {kind}, source {source}"

    def lock_service(self, lock: Entity, locked: bool) -> None:
        if lock.component == "lock":
            self.socket.service("lock", "lock" if locked else "unlock", lock.entity_id or "")
        else:
            self.socket.service(
                lock.component, "turn_on" if locked else "turn_off", lock.entity_id or ""
            )

    def check_lock(self, d: StoveDaemon, burner: str) -> str:
        k = d.kitchen
        lock = self.entity(d, "lock", burner)
        self.ready(d, burner)
        t0 = time.time()
        self.lock_service(lock, True)
        try:
            k.expect(burner, 5, lit=False, cut=True)
        except Failed as exc:
            raise Failed(
                f"{lock.component} {lock.entity_id}: {exc}; {self.explain(d, t0)}"
            ) from None
        time.sleep(PULSE_S + 2)
        if not k.cut(burner):
            raise Failed(f"restored after {PULSE_S + 2:.0f} s: a shutoff, not a lock")
        if k.relight(burner):
            raise Failed(f"a person relit {burner} while it is locked: {k.describe(burner)}")
        status = d.status()[burner]
        if status["mode"] != "locked":
            raise Failed(f"daemon mode {status['mode']!r}, expected 'locked'")
        want = "locked" if lock.component == "lock" else "on"
        self.expect(lock, want, 10)
        return f"{lock.component}: relay holds the cut, relighting by hand fails, HA shows {want}"

    def check_unlock(self, d: StoveDaemon, burner: str) -> str:
        k = d.kitchen
        lock = self.entity(d, "lock", burner)
        note = ""
        if not d.status()[burner]["lock"]:
            d.cli("lock", burner)  # so that this check does not hang on the lock check
            note = " (locked with the CLI first: it was not locked)"
        k.expect(burner, 10, cut=True)
        t0 = time.time()
        self.lock_service(lock, False)
        try:
            k.expect(burner, 5, cut=False)
        except Failed as exc:
            raise Failed(
                f"{lock.component} {lock.entity_id}: {exc}; {self.explain(d, t0)}"
            ) from None
        if not k.relight(burner):
            raise Failed(f"a person cannot relight {burner} after the unlock: {k.describe(burner)}")
        want = "unlocked" if lock.component == "lock" else "off"
        self.expect(lock, want, 10)
        status = d.status()[burner]
        if status["mode"] != "ready":
            raise Failed(f"daemon mode {status['mode']!r}, expected 'ready'")
        return f"restored, relit by hand, HA shows {want}{note}"

    def check_next_cut(self, d: StoveDaemon, burner: str) -> str:
        """The next-cut sensor for a timer set elsewhere (the CLI), and after its cancel."""
        sensor = self.entity(d, "next_cut", burner)
        self.expect(sensor, "unknown", 10)
        d.cli("timer", burner, "10m")
        due = d.status()[burner].get("next_cut")
        if parse_time(due) is None:
            raise Failed(f"the daemon's next_cut after `timer {burner} 10m`: {due!r}")

        try:
            self.expect_time(sensor, due, 10)
        finally:
            d.cli("cancel", burner)
        self.expect(sensor, "unknown", 10)
        return f"unknown, then {due}, then unknown again"

    def check_timer(self, d: StoveDaemon, burner: str) -> str:
        k = d.kitchen
        number = self.entity(d, "timer", burner)
        self.ready(d, burner)
        t0 = time.time()
        self.socket.service("number", "set_value", number.entity_id or "", value=TIMER_MIN)
        try:
            due_text = wait(lambda: d.status()[burner].get("next_cut"), 5, "the daemon has a timer")
        except Failed as exc:
            raise Failed(f"{number.entity_id}: {exc}; {self.explain(d, t0)}") from None
        due = parse_time(due_text)
        if due is None or abs(due.timestamp() - (t0 + TIMER_MIN * 60)) > 5:
            raise Failed(f"timer due {due_text}, expected {TIMER_MIN} min after the set")
        sensor = self.entity(d, "next_cut", burner)
        self.expect_time(sensor, due_text, 10)
        k.expect(burner, TIMER_MIN * 60 + 20, lit=False)
        fired = time.time() - t0
        k.expect(burner, PULSE_S + 8, cut=False)
        self.expect(sensor, "unknown", 10)
        k.light(burner)
        return (
            f"{TIMER_MIN} min: next cut shown, flame out after {fired:.0f} s, then next cut unknown"
        )

    def check_fault(self, d: StoveDaemon, burner: str) -> str:
        """The relay drops off the network: HA shows the fault; a shutoff pressed
        meanwhile is made when the relay is back."""
        k = d.kitchen
        fault = self.entity(d, "fault", burner)
        self.ready(d, burner)
        relay = k.devices[0]
        relay.go_offline()
        try:
            wait(lambda: d.status()[burner]["fault"], 15, "the daemon sees the fault")
            self.expect(fault, "on", 10)
            problems = self.problems(d)
            if problems:
                raise Failed(f"while the relay is offline: {problems}")
            self.socket.service(
                "button", "press", self.entity(d, "shutoff", burner).entity_id or ""
            )
            time.sleep(2)
            if not k.lit(burner):
                raise Failed("went out while its relay was offline")
        finally:
            relay.come_back()
        k.expect(burner, 15, lit=False)
        k.expect(burner, PULSE_S + 8, cut=False)
        self.expect(fault, "off", 20)
        k.light(burner)
        return "fault on while the relay was away, the shutoff made when it came back, fault off"

    # -- checks: restart, rename, two daemons ----------------------------------------

    def check_restart(self, d: StoveDaemon) -> str:
        k = d.kitchen
        d.cli("lock", "right")
        k.expect("right", 5, cut=True)
        entities = self.match(d)
        d.stop()

        def unavailable() -> list[str]:
            states = self.socket.states()
            return [
                e.entity_id or ""
                for e in entities
                if states.get(e.entity_id or "", {}).get("state") != "unavailable"
            ]

        wait(
            lambda: not unavailable(),
            15,
            "every entity unavailable while the daemon is stopped",
            unavailable,
        )
        d.start()
        wait(
            lambda: not self.problems(d),
            30,
            "every entity sensible after the restart",
            lambda: self.problems(d),
        )
        if not k.cut("right"):
            raise Failed("the lock did not survive the restart")
        d.cli("unlock", "right")
        k.expect("right", 5, cut=False)
        k.light("right")
        return "unavailable while stopped; back, sensible, lock kept (HA shows it)"

    def check_rename(self, d: StoveDaemon) -> str:
        before = {e.unique_id: e.entity_id for e in self.match(d)}
        d.stop()
        d.names["left"] = "Front left"
        d.start()

        def not_renamed() -> list[str]:
            states = self.socket.states()
            names = {
                e.entity_id: states.get(e.entity_id or "", {})
                .get("attributes", {})
                .get("friendly_name")
                for e in self.match(d)
                if e.burner == "left"
            }
            return [f"{i}: {n!r}" for i, n in names.items() if "Front left" not in str(n)]

        wait(lambda: not not_renamed(), 30, "names with 'Front left'", not_renamed)
        after = self.match(d)
        moved = [
            f"{u}: {before.get(u)} -> {e}"
            for u, e in ((e.unique_id, e.entity_id) for e in after)
            if before.get(u) != e
        ]
        if moved:
            raise Failed(f"entity ids changed or entities added: {moved}")
        orphans = self.orphans(d, after)
        if orphans:
            raise Failed(f"entities left behind: {orphans}")
        wait(
            lambda: not self.problems(d),
            20,
            "every entity sensible after the rename",
            lambda: self.problems(d),
        )
        return "entity names follow, entity ids kept, nothing left behind"

    def check_replace(self, d: StoveDaemon) -> str:
        """A burner's id changes (right -> back) and back again: the old entities leave
        Home Assistant (the daemon clears their configs), the new ones come."""
        gone = {e.unique_id for e in self.match(d) if e.burner == "right"}

        def swapped(old: set[str]) -> list[str]:
            registry = {e["unique_id"] for e in self.socket.entities() if e["platform"] == "mqtt"}
            left_over = sorted(old & registry)
            missing = [e.unique_id for e in self.match(d) if e.entity_id is None]
            return [f"still in HA: {u}" for u in left_over] + [f"not in HA: {u}" for u in missing]

        d.stop()
        d.ids["right"] = "back"
        d.start()
        time.sleep(1)
        wait(
            lambda: not swapped(gone),
            30,
            "right's entities gone, back's there",
            lambda: swapped(gone),
        )
        backs = {
            e.unique_id for e in self.match(d) if e.unique_id not in gone and "back" in e.unique_id
        }
        d.stop()
        d.ids["right"] = "right"
        d.start()
        time.sleep(1)
        wait(
            lambda: not swapped(backs),
            30,
            "back's entities gone, right's again",
            lambda: swapped(backs),
        )
        wait(
            lambda: not self.problems(d),
            20,
            "every entity sensible again",
            lambda: self.problems(d),
        )
        return f"{len(gone)} entities of right removed, {len(backs)} of back added, and back again"

    def check_ha_restart(self, d: StoveDaemon) -> str:
        """Home Assistant restarts while the stove changes (right locked by the CLI)."""
        self.socket.close()
        self.ha.stop()
        d.cli("lock", "right")
        d.kitchen.expect("right", 5, cut=True)
        took = self.ha.start()
        self.ws = self.ha.socket()
        count = len(self.match(d))
        wait(lambda: all(e.entity_id for e in self.match(d)), 30, "every entity back in HA")
        wait(lambda: not self.problems(d), 30, "every entity sensible", lambda: self.problems(d))
        d.cli("unlock", "right")
        d.kitchen.expect("right", 5, cut=False)
        d.kitchen.light("right")
        wait(lambda: not self.problems(d), 20, "every entity sensible", lambda: self.problems(d))
        return f"API up after {took:.0f} s, {count} entities, the lock set meanwhile shown"

    def check_two(self) -> str:
        first = self.daemons[0]
        count = len(self.match(first))
        second = self.add_daemon("stove_ctl_flat2", "hob2", "flat2-sensors")
        assert self.wire is not None
        wait(lambda: entities_of(self.wire, second.base_topic), 20, "the second daemon's discovery")
        time.sleep(2)
        ones, twos = self.match(first), self.match(second)
        if len(ones) != count:
            raise Failed(
                f"the first daemon's {count} discovery configs are now {len(ones)}: the second "
                f"publishes on the same discovery topics ({twos[0].topic if twos else '?'})"
            )
        shared = {e.unique_id for e in ones} & {e.unique_id for e in twos}
        if shared:
            raise Failed(f"both daemons use unique_ids {sorted(shared)[:3]}...")

        def devices() -> list[str]:
            found = [dev for dev in self.socket.devices() if dev.get("manufacturer") == "stove-ctl"]
            return [f"{dev['name']} {dev['identifiers']}" for dev in found]

        wait(lambda: len(devices()) == 2, 30, "two stove-ctl devices", devices)
        wait(
            lambda: all(e.entity_id for e in self.match(second)), 30, "the second daemon's entities"
        )
        self.ready(second, "left")
        self.ready(first, "left")
        button = self.entity(second, "shutoff", "left")
        t0, shown = time.time(), self.state(button)  # HA does not press an unavailable button
        self.socket.service("button", "press", button.entity_id or "")
        try:
            second.kitchen.expect("left", 5, lit=False)
        except Failed as exc:
            raise Failed(
                f"{button.entity_id} ({shown} when pressed): {exc}; {self.explain(second, t0)}"
            ) from None
        if not first.kitchen.lit("left"):
            raise Failed("pressing flat2's button also put out the first kitchen's left burner")
        second.kitchen.expect("left", PULSE_S + 8, cut=False)
        second.kitchen.light("left")
        return f"devices: {devices()}; flat2's button cut flat2's burner only"

    def check_client_ids(self) -> str:
        log = self.mosquitto.log_path.read_text(errors="replace")
        clashes = sorted(
            set(re.findall(r"Client (\S+) already connected, closing old connection", log))
        )
        if clashes:
            raise Failed(f"two clients with one client id take turns on the broker: {clashes}")
        return "each client has its own id"

    # -- checks: the log -----------------------------------------------------------------

    def check_log(self) -> str:
        names = [
            re.escape(e.entity_id or "") for d in self.daemons for e in self.match(d) if e.entity_id
        ]
        words = [
            "mqtt",
            "stove",
            "(?<![/.])homeassistant/",  # the discovery prefix, not a source path
            r"\[homeassistant\.helpers\.template\]",  # only MQTT entities have templates here
            *[re.escape(d.base_topic) for d in self.daemons],
            *names,
        ]
        relevant = re.compile("|".join(words), re.IGNORECASE)
        for record in self.ha.log_records():
            if not re.match(r"\S+ \S+ (WARNING|ERROR|CRITICAL) ", record):
                continue
            (self.ha_problems if relevant.search(record) else self.ha_other).append(record)
        if self.ha_problems:
            raise Failed(
                f"{len(self.ha_problems)} warning(s)/error(s) about MQTT or stove-ctl (below)"
            )
        return f"no warning or error about MQTT or stove-ctl ({len(self.ha_other)} others)"

    # -- the whole run -----------------------------------------------------------------

    def cycle(self, minutes: float) -> None:
        d = self.daemons[0]
        deadline = time.monotonic() + minutes * 60
        n = 0
        while time.monotonic() < deadline:
            burner = list(BURNERS)[n % len(BURNERS)]
            self.report.tally("cycle: shutoff", self.check_shutoff, d, burner)
            self.report.tally("cycle: lock", self.check_lock, d, burner)
            self.report.tally("cycle: unlock", self.check_unlock, d, burner)
            if n % 3 == 2:
                self.report.tally("cycle: timer", self.check_timer, d, burner)
            n += 1
            print(
                f"  cycle {n} done, {max(0, deadline - time.monotonic()) / 60:.1f} min left",
                flush=True,
            )
