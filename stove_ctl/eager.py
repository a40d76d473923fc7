"""Start a coroutine now, not on the event loop's next turn.

``asyncio.create_task`` only schedules a coroutine: its first step runs on the loop's
next turn, and between two turns the loop polls its sockets (and the GIL may go to the
event-log thread). For a shutoff that means the relay command waits for them. ``start``
runs the coroutine at once, in the caller's stack, up to its first real wait (for a miIO
relay: the packet is on the wire, the reply not yet back), and hands the rest to an
ordinary Task. Python 3.12 has this as ``eager_start``; this is the same idea for 3.11.

The Task returned behaves as one from ``create_task``: it has the coroutine's result or
exception, and ``cancel()`` reaches the coroutine where it waits. Differences: during the
first step ``asyncio.current_task()`` is the caller's task (or None), and an exception
raised before the first wait is delivered through the Task, like any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def start(coro: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Task[T]:
    """Run ``coro`` up to its first wait now; return the Task that runs the rest."""
    loop = asyncio.get_running_loop()
    try:
        waiting = coro.send(None)
    except StopIteration as stop:
        return loop.create_task(_value(stop.value), name=name)
    except BaseException as exc:  # noqa: BLE001 - delivered through the Task, as create_task would
        return loop.create_task(_raise(exc), name=name)
    return loop.create_task(_Resume(coro, waiting), name=name)


async def _value(value: T) -> T:
    return value


async def _raise(exc: BaseException) -> Any:
    raise exc


class _Resume(Coroutine[Any, Any, Any]):
    """A coroutine already started by hand, for a Task to carry on.

    It is ``yield from`` with the first value already taken: the first ``send`` hands
    the Task the future the coroutine waits on; after that every ``send`` and ``throw``
    goes straight to the coroutine. A ``throw`` before the first ``send`` (the Task was
    cancelled before it ever ran) also goes to the coroutine, which is why this is a
    class and not an ``async def`` wrapper: throwing into a wrapper that has not started
    would end it without the coroutine's ``finally`` blocks ever running.
    """

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self._coro = coro
        self._waiting = waiting
        self._first = True
        self.__qualname__ = getattr(coro, "__qualname__", type(coro).__qualname__)

    def send(self, value: Any) -> Any:
        if self._first:
            self._first = False
            waiting, self._waiting = self._waiting, None
            return waiting
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._first = False
        self._waiting = None
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # pragma: no cover - asyncio throws instances

    def close(self) -> None:
        self._waiting = None
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def __iter__(self) -> _Resume:
        return self
