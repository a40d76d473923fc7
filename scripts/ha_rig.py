"""The rig of scripts/ha-check: the simulated kitchen, the broker traffic, the stove-ctl
daemon, the entities its discovery describes, and the report."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hardware.mqtt_devices import FlameSensor, TasmotaRelay  # noqa: E402
from hardware.relay import SimRelay  # noqa: E402
from hardware.stove import Burner, Stove  # noqa: E402


def _load(path: Path) -> Any:
    """A module of tests/ by its path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"ha_check_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


broker = _load(REPO / "tests" / "broker.py")

BURNERS = {"left": 1, "right": 2}  # burner -> relay channel
PULSE_S = 2.0
TIMER_MIN = 1  # the timer set from Home Assistant: the shortest the number allows
# Discovery (component, object id suffix) -> the entity's role.
ROLES = [
    ("button", "_shutoff", "shutoff"),
    ("lock", "_lock", "lock"),
    ("switch", "_lock", "lock"),
    ("binary_sensor", "_flame", "flame"),
    ("binary_sensor", "_fault", "fault"),
    ("sensor", "_mode", "mode"),
    ("sensor", "_next_cut", "next_cut"),
    ("number", "", "timer"),
    ("event", "", "events"),
]


class Failed(Exception):
    """A check failed; the message says what was seen."""


class Skipped(Exception):
    """A check does not apply (e.g. the discovery has no such entity)."""


def wait(
    predicate: Callable[[], Any], timeout_s: float, what: str, seen: Callable[[], Any] = str
) -> Any:
    """Poll until ``predicate`` is true; else fail with ``what`` and what was seen last."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"{what}: not within {timeout_s:.0f} s (seen: {seen()})")
        time.sleep(0.25)


def parse_time(text: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


# -- the physical world -------------------------------------------------------------


class WallClock:
    def monotonic(self) -> float:
        return time.monotonic()


class Kitchen:
    """A two-burner hob, both lit, whose thermocouple circuits run through a simulated
    Tasmota relay, with a thermocouple millivolt tap per burner: one daemon's world."""

    def __init__(self, broker_port: int, relay_topic: str, sensor_prefix: str) -> None:
        self.stove = Stove(WallClock())
        self.board = SimRelay(channels=len(BURNERS))
        for name, channel in BURNERS.items():
            burner = self.stove.add_burner(name)
            self.board.attach(channel, burner.contact)
            burner.light_and_hold()
        self.relay_topic = relay_topic
        self.sensor_prefix = sensor_prefix
        self.devices = [TasmotaRelay(self.board, broker_port, topic=relay_topic)] + [
            FlameSensor(self.stove.burners[n], broker_port, prefix=sensor_prefix) for n in BURNERS
        ]

    def start(self) -> None:
        for device in self.devices:
            device.start()

    def stop(self) -> None:
        for device in self.devices:
            device.stop()

    def burner(self, name: str) -> Burner:
        return self.stove.burners[name]

    def lit(self, name: str) -> bool:
        return self.burner(name).flame

    def cut(self, name: str) -> bool:
        return not self.burner(name).circuit_intact

    def light(self, name: str) -> None:
        """Lit long ago (works only while the circuit is intact)."""
        if not self.lit(name):
            self.burner(name).light_and_hold()

    def relight(self, name: str, hold_s: float = 6.0) -> bool:
        """A person lights it: press and turn the knob, hold, let go. True if it stays lit."""
        burner = self.burner(name)
        burner.press_and_turn()
        time.sleep(hold_s)
        burner.release()
        time.sleep(0.3)
        return burner.flame and burner.valve_open

    def expect(
        self, name: str, timeout_s: float, lit: bool | None = None, cut: bool | None = None
    ) -> None:
        """Wait until the burner's flame is ``lit`` and its circuit ``cut`` (None: either)."""
        want = []
        if lit is not None:
            want.append("flame " + ("lit" if lit else "out"))
        if cut is not None:
            want.append("circuit " + ("cut" if cut else "intact"))
        wait(
            lambda: (
                (lit is None or self.lit(name) == lit) and (cut is None or self.cut(name) == cut)
            ),
            timeout_s,
            f"{name}: {', '.join(want)}",
            lambda: self.describe(name),
        )

    def describe(self, name: str) -> str:
        b = self.burner(name)
        flame, valve = ("lit" if b.flame else "out"), ("open" if b.valve_open else "closed")
        circuit = "CUT" if self.cut(name) else "intact"
        return (
            f"{name}: flame {flame}, valve {valve}, circuit {circuit}, {b.thermocouple_mv:.1f} mV"
        )


# -- the broker and the daemon ------------------------------------------------------


class Wire:
    """Everything on the broker: the retained discovery configs, and the recent
    commands and replies (to say what Home Assistant sent when a check fails)."""

    def __init__(self, port: int, prefix: str = "homeassistant") -> None:
        self.prefix = prefix
        self.configs: dict[str, dict[str, Any]] = {}
        self.traffic: deque[tuple[float, str, str]] = deque(maxlen=2000)
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="ha-check-wire")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("#", 0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        payload = message.payload.decode(errors="replace")
        with self.lock:
            if message.topic.startswith(self.prefix + "/") and message.topic.endswith("/config"):
                try:
                    self.configs[message.topic] = json.loads(payload) if payload else {}
                except ValueError:
                    self.configs[message.topic] = {"_invalid": payload}
            elif re.search(r"/(cmd|cmd/text|result)$", message.topic):
                self.traffic.append((time.time(), message.topic, payload))

    def since(self, t: float, base: str) -> list[str]:
        with self.lock:
            return [
                f"{topic}: {p}"
                for when, topic, p in self.traffic
                if when >= t and topic.startswith(base)
            ]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class StoveDaemon:
    """A stove-ctl daemon (``python -m stove_ctl run``, this repo's code) for a kitchen."""

    def __init__(
        self, python: str, workdir: Path, broker_port: int, kitchen: Kitchen, base_topic: str
    ) -> None:
        self.python = python
        self.dir = workdir / base_topic
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "config.yaml"
        self.broker_port = broker_port
        self.kitchen = kitchen
        self.base_topic = base_topic
        self.names = {"left": "Left burner", "right": "Right burner"}
        self.ids = {b: b for b in BURNERS}  # the kitchen's burner -> its id in the config
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout, not an install

    def write_config(self) -> None:
        k = self.kitchen
        data = {
            "state_dir": str(self.dir / "state"),
            "socket": str(self.dir / "ctl.sock"),
            "log_level": "info",
            "mqtt": {
                "host": "127.0.0.1",
                "port": self.broker_port,
                "base_topic": self.base_topic,
                "discovery": True,
            },
            "relays": {
                "hob": {
                    "driver": "mqtt",
                    "preset": "tasmota",
                    "device": k.relay_topic,
                    "channels": 2,
                }
            },
            "stoves": [
                {
                    "id": "kitchen",
                    "name": "Kitchen gas hob",
                    "burners": [
                        {
                            "id": self.ids[b],
                            "name": self.names[b],
                            "relay": {"device": "hob", "channel": ch},
                            "pulse_s": PULSE_S,
                        }
                        for b, ch in BURNERS.items()
                    ],
                }
            ],
            "inputs": {
                "flame": [
                    {
                        "burner": self.ids[b],
                        "topic": f"{k.sensor_prefix}/sensor/{b}_thermocouple/state",
                        "lit_above_mv": 12,
                    }
                    for b in BURNERS
                ]
            },
            "trust": {"unlock_sources": ["cli", "mqtt"]},
        }
        self.config.write_text(yaml.safe_dump(data, sort_keys=False))

    def start(self) -> None:
        self.write_config()
        log = open(self.dir / "daemon.log", "ab")  # noqa: SIM115 - the child's
        self.proc = subprocess.Popen(
            [self.python, "-m", "stove_ctl", "run", "-c", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=self.env,
        )
        log.close()
        wait(self._up, 30, f"daemon {self.base_topic} answering", self.log_tail)

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise Failed(f"daemon exited with {self.proc.returncode}: {self.log_tail()}")
        try:
            return all(b["circuit"] != "unknown" for b in self.status().values())
        except Failed:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [self.python, "-m", "stove_ctl", *args, "-c", str(self.config)],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=self.env,
            timeout=60,
        )
        if done.returncode != 0:
            raise Failed(
                f"stove-ctl {' '.join(args)}: exit {done.returncode}: {done.stdout}{done.stderr}"
            )
        return done.stdout

    def status(self) -> dict[str, dict[str, Any]]:
        """Burner id -> its status (``stove-ctl status --json``)."""
        reply = json.loads(self.cli("status", "--json"))
        return {b["id"]: b for b in reply["burners"]}

    def rejected_since(self, t: float) -> list[str]:
        lines = self.cli("events", "--json", "-n", "50").splitlines()
        events = [json.loads(line) for line in lines if line.strip()]
        return [
            f"{e['kind']}: {json.dumps(e.get('detail'), ensure_ascii=False)}"
            for e in events
            if e["kind"] == "rejected" and _event_time(e) >= t - 1
        ]

    def log_tail(self) -> str:
        path = self.dir / "daemon.log"
        return path.read_text()[-2000:] if path.exists() else ""


def _event_time(event: dict[str, Any]) -> float:
    return float(event.get("ts") or time.time())


# -- what Home Assistant shows ------------------------------------------------------


@dataclass
class Entity:
    """One discovery config and the Home Assistant entity made from it."""

    topic: str
    component: str
    config: dict[str, Any]
    role: str
    burner: str | None
    entity_id: str | None = None
    device_id: str | None = None

    @property
    def unique_id(self) -> str:
        return str(self.config.get("unique_id"))


def entities_of(wire: Wire, base_topic: str) -> list[Entity]:
    """The entities a daemon published (its discovery configs, non-empty)."""
    out = []
    with wire.lock:
        configs = dict(wire.configs)
    for topic, config in sorted(configs.items()):
        if not str(config.get("availability_topic", "")).startswith(base_topic + "/"):
            continue
        parts = topic[len(wire.prefix) + 1 :].split("/")
        component, object_id = parts[0], parts[-2]
        burner = next((b for b in BURNERS if object_id.startswith(b + "_")), None)
        role = next(
            (r for c, suffix, r in ROLES if c == component and object_id.endswith(suffix)),
            "other",
        )
        out.append(Entity(topic, component, config, role, burner))
    return out


@dataclass
class Report:
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    tallies: dict[str, dict[str, int]] = field(default_factory=dict)
    first_failure: dict[str, str] = field(default_factory=dict)

    def run(self, name: str, check: Callable[..., Any], *args: Any) -> bool:
        """Run a check and record it: ok, FAILED (with what was seen) or skipped."""
        started = time.monotonic()
        try:
            status, detail = "ok", str(check(*args) or "")
        except Skipped as exc:
            status, detail = "skipped", str(exc)
        except Failed as exc:
            status, detail = "FAILED", str(exc)
        except Exception as exc:  # noqa: BLE001 - a crashed check is a failed check
            status, detail = "FAILED", f"{type(exc).__name__}: {exc}"
        took = time.monotonic() - started
        self.rows.append((status, name, detail))
        print(f"  {status:7} {name} ({took:.0f} s){': ' + detail if detail else ''}", flush=True)
        return status == "ok"

    def tally(self, name: str, check: Callable[..., Any], *args: Any) -> None:
        """A repeated check (``--minutes``): counted, with the first failure kept."""
        counts = self.tallies.setdefault(name, {"ok": 0, "failed": 0, "skipped": 0})
        try:
            check(*args)
            counts["ok"] += 1
        except Skipped:
            counts["skipped"] += 1
        except Exception as exc:  # noqa: BLE001 - counted as a failure
            counts["failed"] += 1
            self.first_failure.setdefault(name, f"{type(exc).__name__}: {exc}")
            print(f"  FAILED  {name}: {exc}", flush=True)

    def add_tallies(self) -> None:
        for name, n in self.tallies.items():
            status = "FAILED" if n["failed"] else ("skipped" if not n["ok"] else "ok")
            counted = f"{name}: {n['ok']} ok, {n['failed']} failed, {n['skipped']} skipped"
            self.rows.append((status, counted, self.first_failure.get(name, "")))

    def failures(self) -> int:
        return sum(1 for s, _, _ in self.rows if s == "FAILED")
