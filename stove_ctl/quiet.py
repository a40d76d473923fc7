"""Quiet windows: no automatic garbage collection while a relay command is on its way.

A young-generation collection takes 0.2-1 ms of CPU. On the small host a kitchen
controller runs on, the broker forwarding a relay command and the device receiving it
need the cores right after the command is written; a collection in the daemon then
delays the cut (``bench/hops.py`` counts the samples it landed on). So automatic
collection is held off from reading a command until its relay's answer: the broker
link holds it while a message's handlers run, and the controller from a command until
its cuts are confirmed (at most ``EVENTS_HELD_MAX_S``). The collection that fell due
runs when the last hold is released.

Holds nest and are taken and released on the event loop. Every hold must be released;
every holder bounds its own. Should holds overlap without end (a flood of shutoffs for
a relay that never answers), a young collection still runs once more than
``FORCE_AT`` objects have been allocated since the last one (and a full one every
few of those), so memory stays bounded.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable

# Young objects waiting under holds before a collection runs anyway: about 30 times
# the automatic threshold (700), so a single command's hold never reaches it.
FORCE_AT = 20_000

_held = 0
_enable_after = False  # automatic collection was on when the first hold was taken


def hold() -> Callable[[], None]:
    """Hold automatic collection off; returns the release (idempotent)."""
    global _held, _enable_after
    if _held == 0:
        _enable_after = gc.isenabled()
        if _enable_after:
            gc.disable()
    elif _enable_after:
        _collect_if_overdue()
    _held += 1
    released = False

    def release() -> None:
        global _held
        nonlocal released
        if released:
            return
        released = True
        _held -= 1
        if _held == 0 and _enable_after:
            gc.enable()

    return release


def held() -> bool:
    return _held > 0


def _collect_if_overdue() -> None:
    """Under holds: collect once FORCE_AT objects are waiting, as the automatic
    collection would have: the young generations, and every generation once the
    middle one has been collected as often as its threshold says."""
    if gc.get_count()[0] > FORCE_AT:
        gc.collect(2 if gc.get_count()[2] >= gc.get_threshold()[2] else 1)


_yield = getattr(os, "sched_yield", None)


def hand_over() -> None:
    """A relay command has just been written: let whoever waits for this core run first.

    Writing to the broker's socket wakes the broker, and Linux often queues the task it
    wakes on the waker's own core; the rest of this loop step (the waits a shutoff sets
    up, the acknowledgement of the command) would run first. ``sched_yield`` hands the
    core over at once when someone is waiting for it, and returns at once when nobody
    is: no sleep, and nothing of this daemon waits on a clock.
    """
    if _yield is not None:
        _yield()
