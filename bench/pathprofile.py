"""Which Python runs on the Tasmota shutoff path, and how much of it: a deterministic
profile (``sys.setprofile``) of each shutoff from the ``…/cmd`` payload to both messages
of the pulse written, on the set-up of ``bench/path.py --relay tasmota``.

    python bench/pathprofile.py [-n 60] [--top 40] [--self]

Per function (Python, and C functions as ``C:name``), the median over the samples of
its time inclusive of what it calls (``--self``: exclusive), in microseconds, and how
many calls a shutoff makes. The profiler's own cost inflates every figure (a shutoff
that takes ~0.6 ms unprofiled takes ~1.3-1.5 ms here): read the shares, not the
absolute times. For the unprofiled steps, see ``bench/path.py``. Prints only; writes
nothing to docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter, defaultdict
from types import FrameType
from typing import Any

from _common import load_text, table
from path import WARM_UP, finish_sample, start_sample, tasmota_runtime


def name_of(frame: FrameType, event: str, arg: Any) -> str:
    if event == "call":
        return f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_code.co_qualname}"
    return "C:" + str(getattr(arg, "__qualname__", arg))


Samples = dict[str, list[float]]


async def measure(n: int) -> tuple[list[float], Samples, Samples, Samples]:
    """Per sample: the total, and per function its inclusive and exclusive time and
    its calls."""
    inclusive: dict[str, list[float]] = defaultdict(list)
    exclusive: dict[str, list[float]] = defaultdict(list)
    calls: dict[str, list[float]] = defaultdict(list)
    totals: list[float] = []
    async with tasmota_runtime() as (runtime, controller):
        link = runtime.relay_link
        assert link is not None
        publish_all = link.publish_all
        end: list[float] = []

        def timed_publish_all(messages: Any, *rest: Any) -> None:
            publish_all(messages, *rest)
            if sys.getprofile() is not None:
                sys.setprofile(None)
                end.append(time.perf_counter())

        link.publish_all = timed_publish_all  # type: ignore[method-assign]
        for i in range(n + WARM_UP):
            events: list[tuple[float, str | None]] = []

            def prof(frame: FrameType, event: str, arg: Any, out: Any = events) -> None:
                t = time.perf_counter()
                if event in ("call", "c_call"):
                    out.append((t, name_of(frame, event, arg)))
                elif event in ("return", "c_return", "c_exception"):
                    out.append((t, None))

            end.clear()
            # From once the payload is built (start_sample's clock starts just after).
            t0, task = start_sample(controller, i, {}, at_start=lambda p=prof: sys.setprofile(p))
            sys.setprofile(None)
            await finish_sample(controller, task)
            if i < WARM_UP or not end:
                continue
            totals.append((end[0] - t0) * 1e6)
            stack: list[list[Any]] = []
            inc: Counter[str] = Counter()
            exc: Counter[str] = Counter()
            count: Counter[str] = Counter()
            for t, name in events:
                if name is not None:
                    stack.append([name, t, 0.0])
                    count[name] += 1
                elif stack:
                    fn, started, children = stack.pop()
                    took = t - started
                    exc[fn] += took - children
                    inc[fn] += took
                    if stack:
                        stack[-1][2] += took
            for fn in count:
                inclusive[fn].append(inc[fn] * 1e6)
                exclusive[fn].append(exc[fn] * 1e6)
                calls[fn].append(float(count[fn]))
    return totals, inclusive, exclusive, calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=60)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--self", action="store_true", help="exclusive times")
    args = parser.parse_args()
    before = load_text()
    totals, inclusive, exclusive, calls = asyncio.run(measure(args.n))
    n = len(totals)

    def median(values: list[float]) -> float:
        return statistics.median(values + [0.0] * (n - len(values)))

    chosen = exclusive if args.self else inclusive
    ranked = sorted(chosen, key=lambda k: -median(chosen[k]))[: args.top]
    rows = [[k, median(chosen[k]), median(calls[k])] for k in ranked]
    kind = "exclusive" if args.self else "inclusive"
    total = statistics.median(totals)
    print(f"payload -> both messages written, profiled: p50 {total:.0f} us, N {n}")
    print(table(["function", f"{kind} us (p50)", "calls"], rows))
    print(f"{before} / {load_text()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
