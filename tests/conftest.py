"""Shared test helpers: a simulated kitchen wired to a controller on a manual clock."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

import hardware
from stove_ctl.clock import ManualClock
from stove_ctl.config import TrustConfig
from stove_ctl.core.burner import BurnerSpec
from stove_ctl.core.commands import Command
from stove_ctl.core.controller import Controller
from stove_ctl.core.events import Event, EventLog
from stove_ctl.core.rules import MqttFlame
from stove_ctl.core.state import StateStore
from stove_ctl.drivers.broker import Incoming
from stove_ctl.drivers.relay import FlameInput, Wiring
from stove_ctl.drivers.simulated import SimulatedFlame, SimulatedRelay

# Property tests find bugs when someone is looking, not in CI (STYLE 15). "ci": the
# same examples on every run (derandomized, seeded from each test's name), no example
# database to carry between runs, and a failure prints the blob that reproduces it
# (@reproduce_failure). "explore": random examples, with the database in
# .hypothesis/ so a failure found is tried first next time; turn one into an
# explicit @example. Per-test @settings(max_examples=...) keep their counts under
# both: they inherit every field they do not set from the profile loaded here,
# before the test modules are imported.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE")
    or ("ci" if os.environ.get("CI", "").lower() == "true" else "explore")
)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@dataclass
class Kitchen:
    """A controller over simulated relays, with the physical burners behind them."""

    clock: ManualClock
    board: hardware.SimRelay
    stove: hardware.Stove
    controller: Controller
    events: EventLog
    state_dir: Path
    # Thermocouple millivolt taps (MQTT flame inputs), fed by feed_taps()
    taps: dict[str, MqttFlame]

    def burner(self, name: str) -> hardware.Burner:
        return self.stove.burners[name]

    def kinds(self, burner: str | None = None) -> list[str]:
        return [e.kind for e in self.log(burner)]

    def log(self, burner: str | None = None) -> list[Event]:
        keys = None if burner is None else [burner]
        return self.events.query(10_000, keys)

    async def do(self, action: str, burner: str | None = None, **kw: Any) -> dict[str, Any]:
        cmd = Command(action=action, burner=burner, **kw)  # type: ignore[arg-type]
        return await self.controller.execute(cmd, wait="accepted")

    def feed_taps(self, period_s: float = 1.0, terminals: bool = False) -> asyncio.Task[None]:
        """Publish each burner's thermocouple EMF to its tap every ``period_s``, as
        the simulated MQTT sensor does (hardware.mqtt_devices.FlameSensor).
        ``terminals``: the voltage across the thermocouple's terminals instead, which
        the relay contact moves too (hardware.Burner.terminal_mv)."""

        async def feed() -> None:
            while True:
                for name, tap in self.taps.items():
                    burner = self.burner(name)
                    value = burner.terminal_mv if terminals else burner.thermocouple_mv
                    mv = f"{value:.2f}".encode()
                    tap.update(Incoming(f"sensor/{name}", mv, retain=False))
                await self.clock.sleep(period_s)

        return asyncio.ensure_future(feed())

    async def advance(self, seconds: float, step: float = 0.05) -> None:
        """Advance in small steps so the physics sees each change when it happens."""
        steps = round(seconds / step)
        for _ in range(steps):
            await self.clock.advance(step)


def make_kitchen(
    state_dir: Path,
    wirings: dict[str, Wiring] | None = None,
    pulse_s: float = 3.0,
    trust: TrustConfig | None = None,
    lit: bool = True,
    events_path: Path | str | None = "default",
    contact_ohm: dict[str, float] | None = None,
    confirm_s: float = 30.0,
    lit_above_mv: float | None = None,
) -> Kitchen:
    """With ``lit_above_mv``, each burner's flame input is a thermocouple tap over MQTT
    (lags the flame) instead of the simulator's own knowledge of the flame."""
    wirings = wirings or {"left": Wiring.NC_SERIES, "right": Wiring.NC_SERIES}
    clock = ManualClock()
    stove = hardware.Stove(clock)
    board = hardware.SimRelay(channels=len(wirings), state_file=state_dir / "relay.json")
    relay = SimulatedRelay("board", board)
    specs = []
    taps: dict[str, MqttFlame] = {}
    for channel, (name, wiring) in enumerate(wirings.items(), start=1):
        physical = stove.add_burner(
            name,
            hardware.Wiring(wiring.value),
            contact_resistance_ohm=(contact_ohm or {}).get(name, 0.005),
        )
        board.attach(channel, physical.contact)
        if lit:
            if wiring is Wiring.NO_SERIES:
                board.set(channel, True)  # the circuit is intact only when energised
            physical.light_and_hold()
        flame: FlameInput = SimulatedFlame(physical)
        if lit_above_mv is not None:
            flame = taps[name] = MqttFlame(clock, lit_above_mv, "ON", "OFF", stale_s=30)
        specs.append(
            BurnerSpec(
                stove="kitchen",
                id=name,
                relay=relay,
                channel=channel,
                wiring=wiring,
                pulse_s=pulse_s,
                flame=flame,
            )
        )
    path = state_dir / "events.db" if events_path == "default" else events_path
    events = EventLog(Path(path) if path is not None else None)
    controller = Controller(
        specs, events, StateStore(state_dir / "state.db"), clock, trust, confirm_s=confirm_s
    )
    return Kitchen(clock, board, stove, controller, events, state_dir, taps)


@pytest.fixture
def kitchen_factory(tmp_path: Path) -> Callable[..., Kitchen]:
    made: list[Kitchen] = []

    def factory(**kw: Any) -> Kitchen:
        kitchen = make_kitchen(kw.pop("state_dir", tmp_path), **kw)
        made.append(kitchen)
        return kitchen

    yield factory  # type: ignore[misc]
    for kitchen in made:
        kitchen.events.close()


@pytest.fixture
def broker(tmp_path: Path):
    """A real Mosquitto on a free loopback port, for this test only."""
    from tests.broker import Mosquitto

    b = Mosquitto(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def daemons():
    """Start real daemon processes from configs; kill whatever is left at the end."""
    from tests.daemon import Daemon

    started: list[Daemon] = []

    def start(config: Path) -> Daemon:
        daemon = Daemon(config).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(timeout=10)


@pytest.fixture
def cleanup():
    """Things to stop at the end of a test: daemons (killed) and anything with stop()."""
    from tests.daemon import Daemon

    things: list[Any] = []
    yield things
    for thing in reversed(things):
        if isinstance(thing, Daemon):
            if thing.proc is not None and thing.proc.poll() is None:
                thing.proc.kill()
                thing.proc.wait(timeout=10)
        else:
            thing.stop()
