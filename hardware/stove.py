"""Physical model of a gas burner with a thermocouple flame-failure device.

Each burner is a knob, an igniter, a flame, a thermocouple, the magnet unit that
holds the gas valve open, and a relay contact wired into the thermocouple circuit in
one of the three wiring modes. Time comes from a clock with ``monotonic()``; the
model integrates lazily up to the clock's time whenever it is read or an input
changes, so a test can step the clock and a daemon can run it in real time.

The property that matters most is built into the structure, not into a rule: the
valve can only be *opened* by a pressed knob; the coil can only *hold* it. Nothing a
relay does can supply gas.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Protocol

from hardware import constants as k


class Clock(Protocol):
    """Anything with a monotonic time in seconds."""

    def monotonic(self) -> float: ...


class SteppableClock:
    """A clock that only moves when a test steps it."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def monotonic(self) -> float:
        return self._now

    def step(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot step backwards")
        self._now += seconds


class Wiring(enum.StrEnum):
    """Where the relay contact sits in the thermocouple circuit."""

    NC_SERIES = "nc_series"  # normally-closed contact in series: energised = cut
    NO_PARALLEL = "no_parallel"  # normally-open contact across the terminals: energised = short
    NO_SERIES = "no_series"  # normally-open contact in series: energised = circuit intact


@dataclass
class RelayContact:
    """One relay contact. ``energized`` is the relay coil state (relay "on")."""

    normally_closed: bool
    resistance_ohm: float = k.HEALTHY_CONTACT_OHM
    energized: bool = False
    before_change: list[_Hook] = field(default_factory=list, repr=False)

    @property
    def closed(self) -> bool:
        return self.energized != self.normally_closed

    def set(self, energized: bool) -> None:
        """Energise or release the relay coil driving this contact."""
        for hook in self.before_change:
            hook()
        self.energized = energized


class _Hook(Protocol):
    def __call__(self) -> None: ...


class Burner:
    """One burner of the physical stove."""

    def __init__(
        self,
        name: str,
        clock: Clock,
        wiring: Wiring = Wiring.NC_SERIES,
        contact_resistance_ohm: float = k.HEALTHY_CONTACT_OHM,
        flame_emf_mv: float = k.FLAME_EMF_MV,
    ) -> None:
        self.name = name
        self.wiring = Wiring(wiring)
        self.flame_emf_mv = flame_emf_mv
        self._clock = clock
        self._t = clock.monotonic()
        self.contact = RelayContact(
            normally_closed=self.wiring is Wiring.NC_SERIES,
            resistance_ohm=contact_resistance_ohm,
        )
        self.contact.before_change.append(self.sync)
        self._knob_open = False
        self._knob_pressed = False
        self._valve_open = False
        self._flame = False
        self._emf_mv = 0.0
        self._coil_a = 0.0
        # (time, what) for every discrete change, for tests and the simulator's log.
        self.transitions: list[tuple[float, str]] = []

    # -- hands on the knob -------------------------------------------------------

    def press_and_turn(self) -> None:
        """Push the knob in and turn it to on: opens the valve by hand and sparks."""
        self.sync()
        self._knob_open = True
        self._knob_pressed = True
        self._settle()

    def release(self) -> None:
        """Let go of the knob; it stays turned on. The coil must now hold the valve."""
        self.sync()
        self._knob_pressed = False
        self._settle()

    def turn_off(self) -> None:
        """Turn the knob back to off (closes the tap; the flame goes out)."""
        self.sync()
        self._knob_open = False
        self._knob_pressed = False
        self._settle()

    def blow_out(self) -> None:
        """Lose the flame while gas still flows (boil-over, draught)."""
        self.sync()
        if self._flame:
            self._flame = False
            self._log("flame_out")

    def light_and_hold(self) -> None:
        """Put the burner in the state of one lit long ago: hot, held by its coil."""
        self.sync()
        self._knob_open = True
        self._knob_pressed = False
        self._emf_mv = self.flame_emf_mv
        self._coil_a = self._coil_target_a()
        if self._coil_a >= k.HOLD_CURRENT_A:
            self._valve_open = True
            self._flame = True
            self._log("valve_open")
            self._log("flame_lit")

    # -- what can be observed ----------------------------------------------------

    @property
    def valve_open(self) -> bool:
        self.sync()
        return self._valve_open

    @property
    def flame(self) -> bool:
        self.sync()
        return self._flame

    @property
    def thermocouple_mv(self) -> float:
        """Open-circuit EMF at the thermocouple tip (what a millivolt tap reads)."""
        self.sync()
        return self._emf_mv

    @property
    def terminal_mv(self) -> float:
        """The voltage across the thermocouple's terminals, under the circuit's load:
        what a millivolt tap wired across them reads. It follows the relay contact as
        well as the tip: a cut series contact unloads it (the full EMF), a parallel
        contact shorts it (towards 0)."""
        self.sync()
        load = k.WIRING_OHM + k.COIL_OHM
        if self.wiring in (Wiring.NC_SERIES, Wiring.NO_SERIES):
            if not self.contact.closed:
                return self._emf_mv
            load += self.contact.resistance_ohm
        elif self.contact.closed:
            short = self.contact.resistance_ohm
            load = short * load / (short + load)
        return self._emf_mv * load / (k.THERMOCOUPLE_OHM + load)

    @property
    def coil_current_a(self) -> float:
        self.sync()
        return self._coil_a

    @property
    def circuit_intact(self) -> bool:
        """True when the relay contact lets the thermocouple drive the coil."""
        if self.wiring is Wiring.NO_PARALLEL:
            return not self.contact.closed
        return self.contact.closed

    def last(self, what: str) -> float | None:
        """Time of the latest transition named ``what``, or None."""
        self.sync()
        for t, name in reversed(self.transitions):
            if name == what:
                return t
        return None

    # -- the physics -------------------------------------------------------------

    def _coil_target_a(self) -> float:
        """Steady coil current for the present EMF and contact positions."""
        load = k.WIRING_OHM + k.COIL_OHM
        if self.wiring in (Wiring.NC_SERIES, Wiring.NO_SERIES):
            if not self.contact.closed:
                return 0.0
            load += self.contact.resistance_ohm
            return self._emf_mv / 1000.0 / (k.THERMOCOUPLE_OHM + load)
        if not self.contact.closed:
            return self._emf_mv / 1000.0 / (k.THERMOCOUPLE_OHM + load)
        short = self.contact.resistance_ohm
        parallel = short * load / (short + load)
        terminal_v = self._emf_mv / 1000.0 * parallel / (k.THERMOCOUPLE_OHM + parallel)
        return terminal_v / load

    def _emf_target(self) -> float:
        return self.flame_emf_mv if self._flame else 0.0

    def _log(self, what: str) -> None:
        self.transitions.append((self._t, what))

    def _settle(self) -> None:
        """Apply the discrete rules at the present instant."""
        if self._knob_pressed and self._knob_open:
            if not self._valve_open:
                self._valve_open = True
                self._log("valve_open")
        elif self._valve_open and self._coil_a < k.HOLD_CURRENT_A:
            self._valve_open = False
            self._log("valve_closed")
        gas = self._valve_open and self._knob_open
        if self._flame and not gas:
            self._flame = False
            self._log("flame_out")
        elif gas and self._knob_pressed and not self._flame:
            self._flame = True  # the igniter sparks while the knob is pressed
            self._log("flame_lit")

    def _continuous(self, dt: float) -> None:
        emf_target = self._emf_target()
        tau = k.HEAT_TAU_S if emf_target > self._emf_mv else k.COOL_TAU_S
        self._emf_mv = emf_target + (self._emf_mv - emf_target) * math.exp(-dt / tau)
        coil_target = self._coil_target_a()
        self._coil_a = coil_target + (self._coil_a - coil_target) * math.exp(-dt / k.COIL_TAU_S)
        self._t += dt

    def _steady(self) -> bool:
        return (
            abs(self._emf_mv - self._emf_target()) < 1e-6
            and abs(self._coil_a - self._coil_target_a()) < 1e-9
        )

    def sync(self) -> None:
        """Integrate from the last update up to the clock's present time."""
        now = self._clock.monotonic()
        while self._t < now:
            remaining = now - self._t
            if not self._valve_open and not self._knob_pressed:
                # No discrete change is possible: the valve cannot open by itself and
                # no flame can exist. Jump in one exact step.
                self._continuous(remaining)
                self._coil_a = self._coil_target_a()
                break
            if self._steady():
                self._t = now
                break
            self._continuous(min(k.STEP_S, remaining))
            self._settle()
        self._t = max(self._t, now)


class Stove:
    """A stove: named burners sharing one clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.burners: dict[str, Burner] = {}

    def add_burner(
        self,
        name: str,
        wiring: Wiring | str = Wiring.NC_SERIES,
        contact_resistance_ohm: float = k.HEALTHY_CONTACT_OHM,
    ) -> Burner:
        if name in self.burners:
            raise ValueError(f"burner {name!r} already exists")
        burner = Burner(name, self.clock, Wiring(wiring), contact_resistance_ohm)
        self.burners[name] = burner
        return burner
