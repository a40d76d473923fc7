"""A full garbage collection over the daemon's heap, with and without settle_heap().

    python bench/heap.py [-c config.example.yaml] [--rounds 5]

Builds what ``stove-ctl run`` builds at start-up (config, relays, controller, event
log, timers, rules, MQTT interface; nothing connected, nothing served) in this
process, then times ``gc.collect()`` -- a full collection, what CPython starts by itself
whenever enough objects have survived -- ``--rounds`` times before and after
``stove_ctl.daemon.settle_heap()`` (``gc.collect()`` + ``gc.freeze()``), which the
daemon calls once it is up. A full collection started by an allocation on the shutoff
path stalls that shutoff for as long as it takes. Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from pathlib import Path

from _common import ROOT, load_text, machine, revision, table

from stove_ctl.clock import RealClock
from stove_ctl.config import load_config
from stove_ctl.daemon import settle_heap
from stove_ctl.factory import build
from stove_ctl.mqtt_api import MqttApi


def timed_collections(rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        gc.collect()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def measure(config_path: Path, rounds: int) -> list[list[str]]:
    config = load_config(config_path)
    with tempfile.TemporaryDirectory() as tmp:
        config = config.model_copy(update={"state_dir": Path(tmp)})
        clock = RealClock()
        runtime = build(config, clock)
        if config.mqtt is not None:
            MqttApi(runtime.controller, runtime.events, config.mqtt, config.stoves, clock)
        rows = []
        for label in ("as built", "after settle_heap()"):
            if label != "as built":
                settle_heap()
            ms = timed_collections(rounds)
            rows.append(
                [
                    label,
                    str(len(gc.get_objects())),
                    str(gc.get_freeze_count()),
                    f"{statistics.median(ms):.2f}",
                    f"{max(ms):.2f}",
                ]
            )
        gc.unfreeze()
        runtime.events.close()
        return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", type=Path, default=ROOT / "config.example.yaml")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.c, args.rounds))
    print(f"{machine()}; revision {revision()}; {load_text()}")
    print(
        table(
            ["heap", "tracked objects", "frozen", "full gc p50 ms", "full gc max ms"],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
