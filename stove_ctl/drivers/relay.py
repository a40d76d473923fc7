"""The relay interface every driver satisfies, and what a wiring mode means.

A relay knows channels that are on or off. Whether "on" cuts a burner's
thermocouple circuit depends on how the contact is wired (DESIGN section 1); the
controller asks :class:`Wiring` and never says "on" where it means "cut".
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Protocol


class Wiring(enum.StrEnum):
    NC_SERIES = "nc_series"
    NO_PARALLEL = "no_parallel"
    NO_SERIES = "no_series"

    def relay_on_for(self, cut: bool) -> bool:
        """The relay output that cuts (``cut=True``) or restores the circuit."""
        on_means_cut = self is not Wiring.NO_SERIES
        return cut if on_means_cut else not cut

    def is_cut(self, relay_on: bool) -> bool:
        """Whether a relay output means the circuit is cut."""
        return self.relay_on_for(True) == relay_on


class Relay(Protocol):
    """A relay device with numbered channels.

    Methods raise :class:`stove_ctl.errors.RelayError` subclasses on failure. ``set``
    returning means the device accepted the command, not that it obeyed: callers
    confirm with ``read``.
    """

    name: str
    # How often to read the relay back to see changes made by others (None: never),
    # and the source those changes are attributed to.
    poll_s: float | None
    external_source: str

    async def set(self, channel: int, on: bool) -> None: ...

    async def read(self, channel: int, fresh: bool = False) -> bool:
        """The channel's state. ``fresh``: the device's answer to a question asked now,
        where a driver could otherwise answer from what the device reported earlier."""
        ...

    def can_pulse(self, channel: int) -> bool:
        """Whether the device can switch ``on`` and back by itself (device-side pulse)."""
        ...

    async def pulse(self, channel: int, on: bool, hold_s: float) -> None:
        """Switch to ``on`` and have the device switch back after ``hold_s``."""
        ...

    async def close(self) -> None: ...


class Sample(NamedTuple):
    """One reading of a flame input that measures, and when it was taken."""

    mv: float
    at: float  # the clock's monotonic time


class FlameInput(Protocol):
    """Something that knows whether a burner's flame is lit (None: cannot tell)."""

    def flame(self) -> bool | None: ...

    def reading(self) -> Sample | None:
        """The latest reading in millivolts, for an input that measures (a thermocouple
        tap, which lags the flame); None for an on/off input or no fresh reading."""
        ...
