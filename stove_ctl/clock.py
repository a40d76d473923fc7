"""Clocks. Everything that waits takes one in its constructor.

``RealClock`` is the wall and monotonic time of the machine. ``ManualClock`` only
moves when a test advances it, so unit tests never sleep.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class Timer(Protocol):
    def cancel(self) -> object: ...


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (for delays and latencies)."""
        ...

    def time(self) -> float:
        """Wall-clock Unix time (for timestamps shown to people)."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` on the running loop after ``seconds``, unless cancelled.
        A timer, not a task: nothing runs until it falls due."""
        ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(seconds, callback)


class ManualClock:
    """A clock for tests: ``await clock.advance(s)`` runs every sleeper that falls due."""

    def __init__(self, start_wall: float = 1_790_000_000.0) -> None:
        self._mono = 1000.0
        self._offset = start_wall - self._mono
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._mono

    def time(self) -> float:
        return self._mono + self._offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        await self._due(seconds)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        future = self._due(max(seconds, 0.0))
        future.add_done_callback(lambda f: None if f.cancelled() else callback())
        return future

    def _due(self, seconds: float) -> asyncio.Future[None]:
        """A future that ``advance`` resolves once ``seconds`` have passed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), future))
        return future

    async def settle(self) -> None:
        """Let every task that can run without time passing run."""
        for _ in range(50):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking sleepers in deadline order."""
        target = self._mono + seconds
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._mono = max(self._mono, deadline)
            if not future.done():
                future.set_result(None)
            await self.settle()
        self._mono = target
        await self.settle()


async def wait_or_give_up(clock: Clock, work: Awaitable[Any], timeout_s: float) -> None:
    """Wait for ``work`` or for ``timeout_s`` on our clock, whichever comes first.

    The work is shielded: giving up waiting never cancels a cut.
    """
    inner = asyncio.ensure_future(work)
    if inner.done():
        return
    # Callbacks on one future, not asyncio.wait + shield: a shutoff's result waits
    # here, set up right after its relay command is written (less CPU taken from
    # the broker forwarding it), and nothing here can cancel ``inner``.
    woken = asyncio.get_running_loop().create_future()

    def wake(_: asyncio.Future[Any]) -> None:
        if not woken.done():
            woken.set_result(None)

    timer = clock.call_later(timeout_s, lambda: wake(inner))
    inner.add_done_callback(wake)
    try:
        await woken
    finally:
        timer.cancel()
        inner.remove_done_callback(wake)
