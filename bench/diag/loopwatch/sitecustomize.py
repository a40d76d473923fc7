"""Loaded into the daemon by bench/latency.py --profile (through PYTHONPATH): logs
every asyncio callback that holds the event loop for longer than 2 ms (or
$STOVE_BENCH_LOOPWATCH_MS) to the file named by $STOVE_BENCH_LOOPWATCH. A line:
start (time.time()), duration in ms, ``[cpu ms]`` (this thread's CPU time in it;
much less than the duration means the thread was waiting for a core or for the GIL,
not working), and the callback (a task's coroutine and where it waits now, or the
function). Garbage collections over 1 ms are logged too, as ``[gc]`` lines."""

from __future__ import annotations

import asyncio.events
import os
import time
from typing import Any

_path = os.environ.get("STOVE_BENCH_LOOPWATCH")
_threshold_ms = float(os.environ.get("STOVE_BENCH_LOOPWATCH_MS", "2"))
if _path:
    _out = open(_path, "a", buffering=1)  # noqa: SIM115 - for the life of the process
    _run = asyncio.events.Handle._run

    def _describe(callback: Any) -> str:
        task = getattr(callback, "__self__", None)
        if isinstance(task, asyncio.Task):
            coro: Any = task.get_coro()
            name = getattr(coro, "__qualname__", str(coro))
            # the innermost coroutine: where the task is waiting now
            while getattr(coro, "cr_await", None) is not None and hasattr(
                coro.cr_await, "cr_frame"
            ):
                coro = coro.cr_await
            frame = getattr(coro, "cr_frame", None)
            where = f" now at {frame.f_code.co_qualname}:{frame.f_lineno}" if frame else ""
            return f"task {name}{where}"
        return repr(callback)[:200]

    def _timed_run(self: asyncio.events.Handle) -> None:
        wall, t0, c0 = time.time(), time.perf_counter(), time.thread_time()
        try:
            _run(self)
        finally:
            took = (time.perf_counter() - t0) * 1000
            if took > _threshold_ms:
                cpu = (time.thread_time() - c0) * 1000
                _out.write(f"{wall:.6f} {took:.2f} [cpu {cpu:.2f}] {_describe(self._callback)}\n")

    asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]

    # The daemon's garbage collections over 1 ms too (any thread): a collection holds
    # the GIL, so it stalls the loop wherever it lands.
    import gc

    _gc_started = [0.0, 0.0]

    def _gc_watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _gc_started[:] = [time.time(), time.perf_counter()]
            return
        took = (time.perf_counter() - _gc_started[1]) * 1000
        if took > 1:
            _out.write(
                f"{_gc_started[0]:.6f} {took:.2f} [gc] collection of generation "
                f"{info['generation']} ({info['collected']} freed)\n"
            )

    gc.callbacks.append(_gc_watch)
