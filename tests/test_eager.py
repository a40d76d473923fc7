"""stove_ctl.eager: a coroutine's first step runs at once; the rest is an ordinary Task.
And what it is for: a shutoff's relay command goes out before anyone hears of the
command (the event log's thread and the MQTT interface are told after)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stove_ctl.commands import Command
from stove_ctl.eager import start
from stove_ctl.events import Event, EventLog
from tests.conftest import Kitchen, run


def test_the_first_step_runs_before_start_returns_and_the_rest_in_the_task() -> None:
    async def body() -> None:
        steps: list[str] = []
        gate = asyncio.get_running_loop().create_future()

        async def work() -> int:
            steps.append("first")
            value = await gate
            steps.append("second")
            return value + 1

        task = start(work())
        assert steps == ["first"]  # not "scheduled for the next turn": done
        assert not task.done()
        gate.set_result(41)
        assert await task == 42
        assert steps == ["first", "second"]

    run(body())


def test_a_coroutine_that_never_waits_gives_a_finished_task() -> None:
    async def body() -> None:
        async def work() -> str:
            return "done"

        task = start(work())
        assert await task == "done"

    run(body())


def test_an_exception_before_the_first_wait_comes_out_of_the_task() -> None:
    async def body() -> None:
        async def work() -> None:
            raise ValueError("bad relay")

        task = start(work())  # start() itself does not raise
        with pytest.raises(ValueError, match="bad relay"):
            await task

    run(body())


def test_an_exception_after_a_wait_comes_out_of_the_task() -> None:
    async def body() -> None:
        async def work() -> None:
            await asyncio.sleep(0)  # a bare yield, not a future
            await asyncio.sleep(0.001)
            raise KeyError("later")

        with pytest.raises(KeyError, match="later"):
            await start(work())

    run(body())


def test_cancel_reaches_the_coroutine_where_it_waits() -> None:
    async def body() -> None:
        seen: list[str] = []
        gate = asyncio.get_running_loop().create_future()

        async def work() -> None:
            try:
                await gate
            except asyncio.CancelledError:
                seen.append("cancelled inside")
                raise
            finally:
                seen.append("cleaned up")

        task = start(work())
        await asyncio.sleep(0)  # the Task has taken over the wait
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()
        assert seen == ["cancelled inside", "cleaned up"]
        assert gate.cancelled()  # as with create_task: the awaited future is cancelled

    run(body())


def test_cancel_before_the_task_has_run_once_still_reaches_the_coroutine() -> None:
    async def body() -> None:
        seen: list[str] = []

        async def work() -> None:
            try:
                await asyncio.sleep(10)
            finally:
                seen.append("cleaned up")

        task = start(work())
        task.cancel()  # the same turn: the Task has not stepped yet
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == ["cleaned up"]

    run(body())


def test_a_coroutine_may_catch_the_cancel_and_return() -> None:
    async def body() -> None:
        async def work() -> str:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                return "stopped cleanly"
            return "slept"

        task = start(work())
        await asyncio.sleep(0)
        task.cancel()
        assert await task == "stopped cleanly"

    run(body())


def test_nested_eager_starts_run_in_order() -> None:
    async def body() -> None:
        steps: list[str] = []

        async def inner() -> str:
            steps.append("inner first")
            await asyncio.sleep(0)
            return "inner"

        async def outer() -> str:
            steps.append("outer first")
            child = start(inner())
            steps.append("outer after child started")
            return await child + "+outer"

        task = start(outer())
        assert steps == ["outer first", "inner first", "outer after child started"]
        assert await task == "inner+outer"

    run(body())


def test_held_events_are_numbered_at_once_and_told_at_the_end_in_order(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db")
    heard: list[Event] = []
    log.subscribe(heard.append)
    try:
        release = log.hold()
        first = log.emit("command", 1.0, source="cli")
        inner = log.hold()  # overlapping: told only when the last hold is released
        second = log.emit("cut_commanded", 2.0, burner="k/b")
        inner()
        assert heard == []
        release()
        assert [e.kind for e in heard] == ["command", "cut_commanded"]
        assert second.seq == first.seq + 1
        log.emit("cut_confirmed", 3.0, burner="k/b")  # not held: told at once
        assert [e.kind for e in heard][-1] == "cut_confirmed"
        assert [e.kind for e in log.query(10)] == ["command", "cut_commanded", "cut_confirmed"]
    finally:
        log.close()


def test_a_release_counts_once_and_force_tells_what_is_held(tmp_path: Path) -> None:
    """The controller releases a hold from two places (its cuts confirmed, its bound
    reached): a second call must not let another command's hold go."""
    log = EventLog(None)
    heard: list[str] = []
    log.subscribe(lambda e: heard.append(e.kind))
    outer = log.hold()
    inner = log.hold()
    inner()
    inner()  # again: no effect
    log.emit("command", 1.0)
    assert heard == []  # outer still holds
    forcing = log.hold()
    log.emit("cut_commanded", 2.0)
    forcing(force=True)  # out with everything so far, outer or not
    assert heard == ["command", "cut_commanded"]
    log.emit("cut_confirmed", 3.0)
    assert heard == ["command", "cut_commanded"]  # outer still holds
    outer()
    assert heard == ["command", "cut_commanded", "cut_confirmed"]


def test_a_shutoff_reaches_the_relay_before_anyone_hears_of_the_command(
    kitchen_factory,
) -> None:
    """The relay's order leaves in the same step as the command: when the first listener
    (here standing in for the MQTT interface) hears of the ``command`` event, the
    board has already switched, and no task had to run in between."""

    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        await k.clock.settle()
        board_when_heard: list[bool] = []

        def listener(event: Event) -> None:
            if event.kind == "command":
                board_when_heard.append(k.board.get(1))

        k.events.subscribe(listener)
        assert k.board.get(1) is False  # NC series, burning: relay off, circuit intact
        execute = start(
            k.controller.execute(Command(action="shutoff", burner="left"), wait="accepted")
        )
        # No loop turn has passed, yet the relay has switched and the listener heard.
        assert k.board.get(1) is True
        assert board_when_heard == [True]
        reply = await execute
        assert reply["ok"] and not reply["burners"][0]["joined"]

    run(body())
