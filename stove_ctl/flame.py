"""Judging a cut by a flame input that lags the flame (DESIGN invariant 10).

A thermocouple tap reads the tip's EMF, which takes ~15 s to cool once the flame is
gone: right after a good cut it still reads "lit". So where the input gives a
reading, a cut is judged by its trend. After a cut that put the flame out, the
reading falls. One that fell and rises again is a person relighting the burner, not
a failed cut. One that never falls is a cut that did not close the valve.
"""

from __future__ import annotations

from typing import Literal

from stove_ctl.clock import Clock
from stove_ctl.relay import FlameInput

Seen = Literal["out", "relit", "lit"]

# A full flame reads 18-30 mV. Once it is out, the tip cools by FALL_MV in about 2 s;
# a burner still lit wavers by less. After that fall, only a flame warms the tip
# again: a rise of RISE_MV is a relight (from a warm tip, ~2 s of flame).
FALL_MV = 3.0
RISE_MV = 1.0


class Trend:
    """The readings of one flame input since a cut."""

    def __init__(self) -> None:
        self.high: float | None = None  # the highest reading until it fell
        self.low: float | None = None  # the lowest reading since it fell
        self.last: float | None = None
        self.relit = False

    @property
    def fell(self) -> bool:
        return self.low is not None

    def add(self, mv: float | None) -> None:
        if mv is None or self.relit:
            return
        self.last = mv
        if self.low is None:
            self.high = mv if self.high is None else max(self.high, mv)
            if mv <= self.high - FALL_MV:
                self.low = mv
        else:
            self.low = min(self.low, mv)
            self.relit = mv >= self.low + RISE_MV


async def watch(flame: FlameInput, clock: Clock, seconds: float) -> tuple[Seen, Trend]:
    """Watch a flame input for ``seconds`` after a cut. "out": seen out, or its reading
    fell; "relit": its reading fell, then rose; "lit": neither (the cut failed)."""
    trend = Trend()
    deadline = clock.monotonic() + seconds
    while True:
        if flame.flame() is False:
            return "out", trend
        trend.add(flame.reading())
        if trend.relit:
            return "relit", trend
        if clock.monotonic() >= deadline:
            return ("out" if trend.fell else "lit"), trend
        await clock.sleep(0.2)
