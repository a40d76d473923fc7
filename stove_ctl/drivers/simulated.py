"""The ``simulated`` driver: a relay board from ``hardware/`` switched in-process."""

from __future__ import annotations

from hardware import Burner, RelayOffline, SimRelay
from stove_ctl.drivers.relay import Sample
from stove_ctl.errors import RelayRejected, RelayUnreachable


class SimulatedRelay:
    """Drives a :class:`hardware.SimRelay` board directly."""

    poll_s: float | None = None  # nothing else switches an in-process board
    external_source = "cli"

    def __init__(self, name: str, board: SimRelay) -> None:
        self.name = name
        self.board = board

    def can_pulse(self, channel: int) -> bool:
        return False

    async def pulse(self, channel: int, on: bool, hold_s: float) -> None:
        raise RelayRejected(f"relay {self.name!r} has no device-side pulse")

    async def set(self, channel: int, on: bool) -> None:
        try:
            self.board.set(channel, on)
        except RelayOffline as exc:
            raise RelayUnreachable(f"relay {self.name!r}: {exc}") from exc

    async def read(self, channel: int, fresh: bool = False) -> bool:
        try:
            return self.board.get(channel)
        except RelayOffline as exc:
            raise RelayUnreachable(f"relay {self.name!r}: {exc}") from exc

    async def close(self) -> None:
        return None


class SimulatedFlame:
    """Reads the flame straight from the stove model (the simulator knows)."""

    def __init__(self, burner: Burner) -> None:
        self._burner = burner

    def flame(self) -> bool | None:
        return self._burner.flame

    def reading(self) -> Sample | None:
        return None  # it knows the flame itself, with no lag to judge by a trend
