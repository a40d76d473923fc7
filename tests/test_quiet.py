"""Holds on automatic garbage collection (stove_ctl/quiet.py)."""

from __future__ import annotations

import gc
import weakref

from stove_ctl import quiet


class Cycle:
    def __init__(self, other: object) -> None:
        self.me = self
        self.other = other


def test_holds_nest_and_collection_is_on_again_after_the_last() -> None:
    assert gc.isenabled() and not quiet.held()
    first = quiet.hold()
    second = quiet.hold()
    assert not gc.isenabled()
    first()
    first()  # a release counts once
    assert quiet.held() and not gc.isenabled()
    second()
    assert not quiet.held() and gc.isenabled()


def test_collection_that_was_off_before_stays_off() -> None:
    gc.disable()
    try:
        release = quiet.hold()
        release()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_holds_without_end_still_collect() -> None:
    """A flood of holds that never all end: young objects are collected once more
    than FORCE_AT are waiting, at the next hold, so cyclic garbage stays bounded."""
    gc.collect()
    outer = quiet.hold()
    try:
        probe: list[object] = []
        probe.append(probe)  # a cycle: only a collection frees it
        alive = weakref.ref(Cycle(probe))
        for _ in range(quiet.FORCE_AT + 100):
            cycle: list[object] = []
            cycle.append(cycle)
        del cycle, probe
        assert gc.get_count()[0] > quiet.FORCE_AT
        assert alive() is not None  # nothing collected it yet
        quiet.hold()()  # a later hold, inside the first
        assert alive() is None
        assert gc.get_count()[0] < quiet.FORCE_AT
        assert not gc.isenabled()
    finally:
        outer()
    assert gc.isenabled()


def test_forced_collections_reach_the_oldest_generation_too() -> None:
    """Holds that never all end must not keep cycles that reached the oldest
    generation forever: every so many forced collections, one is a full one."""
    gc.collect()
    generations: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            generations.append(info["generation"])

    outer = quiet.hold()
    gc.callbacks.append(seen)
    try:
        for _ in range(gc.get_threshold()[2] + 2):
            for _ in range(quiet.FORCE_AT + 100):
                cycle: list[object] = []
                cycle.append(cycle)
            quiet.hold()()
    finally:
        gc.callbacks.remove(seen)
        outer()
    assert 1 in generations and 2 in generations
    assert len(generations) >= gc.get_threshold()[2] + 2
