"""Tasmota shutoff latency split into hops, stove-ctl and the bare baseline side by side.

    python bench/hops.py [-n 200] [--pulse 0.5]

The set-up of ``bench/latency.py --presets tasmota --broker-nodelay`` (one round,
``-n`` interleaved pairs), with ``bench/hoplog`` loaded into the daemon and into
``bench/bare.py``: each logs, on the monotonic clock all processes on the machine
share, when paho hands it the command and when its ``POWER ON`` has been written.
Each sample splits into: publish -> the consumer's callback; callback -> ``POWER ON``
written; written -> the device receives it; device -> output switched. For the
daemon also: ``POWER ON`` written -> its event loop waits for I/O again (the work it
does right behind the relay command, on a machine whose broker and device need the
CPU then). The samples in which the consumer ran a garbage collection of its own between
its callback and the device receiving ``POWER ON`` are counted, with their totals, by
whether the collection started before or after the write. Prints a table; writes
nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, NoDelayMosquitto, pct, table
from latency import Round

HOPLOG = ROOT / "bench" / "hoplog"
HOPS = ("publish -> callback", "callback -> written", "written -> device", "device -> switched")
LABELS = {
    "idle": "written -> loop idle",
    "gc before": "total, collection before the write",
    "gc after": "total, collection after the write",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--pulse", type=float, default=0.5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="stove-bench-hops-"))
    logs = tmp / "hops"
    logs.mkdir()
    # For the two consumers this process starts, not for this one: a sitecustomize is
    # read at start-up only.
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = f"{HOPLOG}:{path}" if path else str(HOPLOG)
    os.environ["STOVE_BENCH_HOPLOG"] = str(logs)
    broker = NoDelayMosquitto(tmp).start()
    try:
        with Round("tasmota", broker, tmp, args.pulse) as rnd:
            assert rnd.daemon is not None and rnd.bare is not None
            pids = {"stove-ctl": rnd.daemon.pid, "bare": rnd.bare.pid}
            for _ in range(args.n):
                order = ["stove-ctl", "bare"]
                random.shuffle(order)
                for who in order:
                    time.sleep(random.uniform(0.05, 0.3))
                    rnd.sample(who)
            rows = []
            for who, pid in pids.items():
                marks: dict[str, list[float]] = {"recv": [], "power": [], "idle": []}
                collections: list[float] = []  # when each of the consumer's collections began
                for line in (logs / f"{pid}.log").read_text().splitlines():
                    kind, t, *_ = line.split()  # a ``gc`` line also has its duration
                    if kind == "gc":
                        collections.append(float(t))
                    else:
                        marks[kind].append(float(t))
                arrivals = [t for t, what in rnd.arrivals[who] if what.startswith("POWER")]
                hops: dict[str, list[float]] = {
                    h: [] for h in (*HOPS, "total", "idle", "gc before", "gc after")
                }
                for sampled, t0, latency in rnd.starts:
                    if sampled != who:
                        continue
                    recv = next((t for t in marks["recv"] if t >= t0), None)
                    power = next((t for t in marks["power"] if t >= t0), None)
                    arrived = next((t for t in arrivals if t >= t0), None)
                    if recv is None or power is None or arrived is None:
                        continue
                    steps = (
                        recv - t0,
                        power - recv,
                        arrived - power,
                        latency / 1e3 - (arrived - t0),
                    )
                    for hop, seconds in zip(HOPS, steps, strict=True):
                        hops[hop].append(seconds * 1e3)
                    hops["total"].append(latency)
                    # The consumer's own collections on the path: the sample's total,
                    # by whether one started before or after the write.
                    for label, lo, hi in (("gc before", recv, power), ("gc after", power, arrived)):
                        if any(lo <= start <= hi for start in collections):
                            hops[label].append(latency)
                    idle = next((t for t in marks["idle"] if t >= power), None)
                    if idle is not None and idle - power < 0.1:
                        hops["idle"].append((idle - power) * 1e3)
                for hop, values in hops.items():
                    if values:
                        label = LABELS.get(hop, hop)
                        rows.append(
                            (who, label, len(values), *(pct(values, p) for p in (50, 90, 99)))
                        )
    finally:
        broker.stop()
    print(f"Tasmota, N {args.n} per side, ms (bench/hops.py)")
    print(table(("who", "hop", "N", "p50", "p90", "p99"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
