"""Judging a cut by a flame input that lags the flame (DESIGN invariant 10).

A thermocouple tap reads the tip's EMF, which takes ~15 s to cool once the flame is
gone: right after a good cut it still reads "lit". So where the input gives a
reading, a cut is judged by its trend. After a cut that put the flame out, the
reading falls. One that fell and rises again is a person relighting the burner, not
a failed cut. One that never falls is a cut that did not close the valve.

Only readings taken with the circuit intact count, and they are compared with the
reading from just before the cut. A tap wired across the thermocouple's terminals
reads the circuit as well as the flame: a cut series contact unloads it (it reads
higher), a parallel contact shorts it (towards 0, even when the short is too poor to
drop the valve). Read during the cut, such a tap would fake a fall, and the fall a
relight: a failed cut taken for a good one. Before and after the cut, the circuit is
the same, and only the tip's temperature can move the reading.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from stove_ctl.clock import Clock
from stove_ctl.drivers.relay import FlameInput, Sample

Seen = Literal["out", "relit", "lit"]

# A full flame reads 18-30 mV. Once it is out, the tip cools by FALL_MV in about 2 s;
# a burner still lit wavers by less. After that fall, only a flame warms the tip
# again: a rise of RISE_MV is a relight (from a warm tip, ~2 s of flame).
FALL_MV = 3.0
RISE_MV = 1.0


class Trend:
    """The readings of one flame input since a cut, against the one before it."""

    def __init__(self, before: float | None = None) -> None:
        # The reading before the cut, when there is one: the level a fall is measured
        # from. Without it, the highest reading until it fell.
        self.before = before
        self.high: float | None = before
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
            if self.before is None:
                self.high = mv if self.high is None else max(self.high, mv)
            assert self.high is not None
            if mv <= self.high - FALL_MV:
                self.low = mv
        else:
            self.low = min(self.low, mv)
            self.relit = mv >= self.low + RISE_MV


async def watch(
    flame: FlameInput,
    clock: Clock,
    seconds: float,
    before: Sample | None,
    intact_since: Callable[[], float | None],
    trend: Trend | None = None,
) -> tuple[Seen, Trend]:
    """Watch a flame input for ``seconds`` after a cut. "out": seen out, or its reading
    fell; "relit": its reading fell, then rose; "lit": neither (the cut failed).

    ``before``: the reading taken before the cut. ``intact_since``: since when the
    circuit has been intact (None while it is cut); a reading counts only if it was
    taken since then, and so does an "out" from an input that measures. ``trend``: the
    one to feed (the caller's, to show while it is watched); a new one if None."""
    if trend is None:
        trend = Trend(before.mv if before is not None else None)
    deadline = clock.monotonic() + seconds
    while True:
        sample = flame.reading()
        since = intact_since()
        counts = sample is not None and since is not None and sample.at >= since
        if flame.flame() is False and (sample is None or counts):
            return "out", trend
        if counts:
            assert sample is not None
            trend.add(sample.mv)
        if trend.relit:
            return "relit", trend
        if clock.monotonic() >= deadline:
            return ("out" if trend.fell else "lit"), trend
        await clock.sleep(0.2)
