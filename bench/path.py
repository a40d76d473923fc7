"""The shutoff path inside the daemon, step by step: MQTT payload -> the relay command
handed to the socket, in one process.

    python bench/path.py [-n 200] [--relay miio|tasmota]

Builds the daemon's runtime from a config (one burner, polling off) and, for each
sample, does what the MQTT interface does with a ``…/cmd`` payload: JSON,
``parse_command``, ``Controller.execute`` started at once (``stove_ctl.eager``). Time
stamps (``perf_counter``) are taken at the parsed command, at
``Controller._start_shutoff`` and when the relay command is on its way:

- ``--relay miio`` (default; a simulated miIO relay on 127.0.0.91, no broker): when
  the packet reaches the transport's ``sendto``. The packet build is timed on its
  own, and so is python-miio's ``Message.build`` for the same request (what the
  driver used before, and what the bare baseline in bench/latency.py still uses).
- ``--relay tasmota`` (a simulated Tasmota device, ``device_pulse``, on a test
  Mosquitto on a free loopback port): when ``BrokerLink.publish_all`` returns, which
  is when both messages of the pulse (``PulseTime1``, ``POWER ON``) have been written
  to the broker socket; the socket writes in it (paho's ``_sock_send``) are timed,
  and the first of them alone (the write that wakes the broker).

The next sample waits until the pulse is over. The first 10 samples are left out
(warm-up). What this leaves out, and bench/latency.py has: the daemon's reading of
the MQTT message off its socket, the broker's forwarding and the device.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import yaml
from _common import GcWatch, busy, header_lines, load_text, summary, table, write_section
from miio.protocol import Message
from stove_ctl.eager import start as eager_start

from hardware.miio_sim import MiioRelaySim
from hardware.mqtt_devices import TasmotaRelay
from hardware.relay import SimRelay
from stove_ctl.clock import RealClock
from stove_ctl.config import load_config
from stove_ctl.core.commands import parse_command
from stove_ctl.factory import build
from tests.broker import Mosquitto

TOKEN = "00112233445566778899aabbccddeeff"
HOST = "127.0.0.91"
WARM_UP = 10


def python_miio_build(request: dict[str, Any], token: bytes, device_id: bytes) -> bytes:
    header = {
        "length": 0,
        "unknown": 0,
        "device_id": device_id,
        "ts": datetime.datetime.fromtimestamp(time.time(), datetime.UTC).replace(tzinfo=None),
    }
    return bytes(
        Message.build(
            {"data": {"value": request}, "header": {"value": header}, "checksum": 0},
            token=token,
        )
    )


def start_sample(
    controller: Any, i: int, marks: dict[str, Any], at_start: Callable[[], None] | None = None
) -> tuple[float, Any]:
    """Do what the MQTT interface does with sample ``i``'s ``…/cmd`` payload, started
    at once: (the start time, the task). ``marks["parsed"]``: the command parsed.
    ``at_start`` is called once the payload is built, just before the clock starts."""
    payload = json.dumps({"action": "shutoff", "burner": "k/b", "id": f"p{i}"}).encode()

    async def handle() -> dict[str, Any]:
        command = parse_command(json.loads(payload), source="mqtt")
        marks["parsed"] = time.perf_counter()
        reply = await controller.execute(command, wait="confirmed", timeout_s=5)
        return cast(dict[str, Any], reply)

    if at_start is not None:
        at_start()
    t0 = time.perf_counter()
    return t0, eager_start(handle())


async def finish_sample(controller: Any, task: Any) -> None:
    """The shutoff confirmed, then its pulse over (the burner ready again)."""
    reply = await task
    if not reply["ok"]:
        raise RuntimeError(f"shutoff failed: {reply}")
    while controller.status()["burners"][0]["mode"] != "ready":
        await asyncio.sleep(0.02)


async def measure(n: int) -> dict[str, list[float]]:
    tmp = Path(tempfile.mkdtemp(prefix="stove-bench-path-"))
    board = SimRelay(channels=1)
    sim = MiioRelaySim(board, host=HOST, token=TOKEN)
    sim.start()
    cfg = {
        "state_dir": str(tmp / "state"),
        "socket": str(tmp / "ctl.sock"),
        "log_level": "warning",
        "relays": {"r": {"driver": "miio", "host": HOST, "token": TOKEN, "poll_s": 0}},
        "stoves": [{"id": "k", "burners": [{"id": "b", "relay": {"device": "r"}, "pulse_s": 0.5}]}],
    }
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    runtime = build(load_config(tmp / "config.yaml"), RealClock())
    controller = runtime.controller
    out: dict[str, list[float]] = {
        k: [] for k in ("parse", "execute", "start", "packet", "python-miio", "total")
    }
    try:
        await runtime.start()
        await controller.start()
        await asyncio.sleep(0.5)
        protocol: Any = runtime.relays["r"].protocol  # type: ignore[attr-defined]
        marks: dict[str, float] = {}
        transport = protocol._transport
        sendto = transport.sendto
        build_packet = protocol._packet
        start_shutoff = controller._start_shutoff

        def timed_sendto(data: bytes, *rest: Any) -> None:
            marks.setdefault("sent", time.perf_counter())
            sendto(data, *rest)

        def timed_packet(request: dict[str, Any]) -> bytes:
            t = time.perf_counter()
            packet: bytes = build_packet(request)
            marks.setdefault("packet", time.perf_counter() - t)
            marks.setdefault("request", request)  # type: ignore[arg-type]
            return packet

        def timed_start(burner: Any, cmd: Any) -> Any:
            marks.setdefault("start", time.perf_counter())
            return start_shutoff(burner, cmd)

        transport.sendto = timed_sendto
        protocol._packet = timed_packet
        controller._start_shutoff = timed_start  # type: ignore[method-assign]
        for i in range(n + WARM_UP):
            marks.clear()
            t0, task = start_sample(controller, i, marks)
            t1 = time.perf_counter()
            python_miio_build(marks["request"], bytes.fromhex(TOKEN), b"\x00\x00\x00\x01")  # type: ignore[arg-type]
            t2 = time.perf_counter()
            await finish_sample(controller, task)
            if i >= WARM_UP:
                out["parse"].append((marks["parsed"] - t0) * 1e6)
                out["execute"].append((marks["start"] - marks["parsed"]) * 1e6)
                out["start"].append((marks["sent"] - marks["start"]) * 1e6)
                out["packet"].append(marks["packet"] * 1e6)
                out["python-miio"].append((t2 - t1) * 1e6)
                out["total"].append((marks["sent"] - t0) * 1e6)
    finally:
        await controller.stop()
        await runtime.close()
        sim.stop()
    return out


@contextlib.asynccontextmanager
async def tasmota_runtime() -> AsyncIterator[tuple[Any, Any]]:
    """The daemon's runtime (one burner, polling off) on a test Mosquitto with a
    simulated Tasmota device (``device_pulse``), started: (runtime, controller)."""
    tmp = Path(tempfile.mkdtemp(prefix="stove-bench-path-"))
    broker = Mosquitto(tmp).start()
    board = SimRelay(channels=1)
    device = TasmotaRelay(board, broker.port, topic="bench-path").start()
    cfg = {
        "state_dir": str(tmp / "state"),
        "socket": str(tmp / "ctl.sock"),
        "log_level": "warning",
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "discovery": False},
        "relays": {
            "r": {
                "driver": "mqtt",
                "preset": "tasmota",
                "device": "bench-path",
                "device_pulse": True,
            }
        },
        "stoves": [{"id": "k", "burners": [{"id": "b", "relay": {"device": "r"}, "pulse_s": 0.5}]}],
    }
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    runtime = build(load_config(tmp / "config.yaml"), RealClock())
    controller = runtime.controller
    try:
        await runtime.start()
        await controller.start()
        await asyncio.sleep(0.5)
        yield runtime, controller
    finally:
        await controller.stop()
        await runtime.close()
        device.stop()
        broker.stop()


async def measure_tasmota(n: int) -> dict[str, list[float]]:
    import paho.mqtt.client as paho

    out: dict[str, list[float]] = {
        k: [] for k in ("parse", "execute", "start", "publish", "send", "send1", "total", "gc")
    }
    sock_send = paho.Client._sock_send
    marks: dict[str, Any] = {}
    gc_watch = GcWatch(time.perf_counter)

    async with tasmota_runtime() as (runtime, controller):
        try:
            link = runtime.relay_link
            assert link is not None
            publish_all = link.publish_all
            start_shutoff = controller._start_shutoff

            def timed_publish_all(messages: Any, *rest: Any) -> None:
                messages = list(messages)
                pulse = any(topic.endswith("/POWER") and p == "ON" for topic, p in messages)
                if pulse:
                    marks["queued"] = time.perf_counter()
                    marks["sends"] = []
                publish_all(messages, *rest)
                if pulse:
                    marks["written"] = time.perf_counter()

            def timed_send(self: Any, data: Any) -> Any:
                t = time.perf_counter()
                try:
                    return sock_send(self, data)
                finally:
                    if "sends" in marks and "written" not in marks:
                        marks["sends"].append(time.perf_counter() - t)

            def timed_start(burner: Any, cmd: Any) -> Any:
                marks.setdefault("start", time.perf_counter())
                return start_shutoff(burner, cmd)

            link.publish_all = timed_publish_all  # type: ignore[method-assign]
            paho.Client._sock_send = timed_send  # type: ignore[method-assign]
            controller._start_shutoff = timed_start  # type: ignore[method-assign]
            gc.callbacks.append(gc_watch)
            for i in range(n + WARM_UP):
                marks.clear()
                gc_watch.pauses.clear()
                t0, task = start_sample(controller, i, marks)
                on_path = [ms for _, ms, _ in gc_watch.during(t0, marks["written"])]
                await finish_sample(controller, task)
                if i >= WARM_UP:
                    out["parse"].append((marks["parsed"] - t0) * 1e6)
                    out["execute"].append((marks["start"] - marks["parsed"]) * 1e6)
                    out["start"].append((marks["queued"] - marks["start"]) * 1e6)
                    out["publish"].append((marks["written"] - marks["queued"]) * 1e6)
                    out["send"].append(sum(marks["sends"]) * 1e6)
                    out["send1"].append(marks["sends"][0] * 1e6)
                    out["total"].append((marks["written"] - t0) * 1e6)
                    out["gc"] += [ms * 1e3 for ms in on_path]
        finally:
            if gc_watch in gc.callbacks:
                gc.callbacks.remove(gc_watch)
            paho.Client._sock_send = sock_send  # type: ignore[method-assign]
    return out


TASMOTA_LABELS = {
    "parse": "JSON + parse_command (pydantic)",
    "execute": "execute: trust, targets, `command` event",
    "start": "_start_shutoff -> publish_all",
    "publish": "publish_all: queue + write both messages",
    "send": "  of which: the socket writes",
    "send1": "  of which: the first write",
    "total": "payload -> both messages written",
    "gc": "collections that landed on the path",
}

LABELS = {
    "parse": "JSON + parse_command (pydantic)",
    "execute": "execute: trust, targets, `command` event",
    "start": "_start_shutoff -> sendto (incl. packet)",
    "packet": "  of which: build the packet (RequestCodec)",
    "python-miio": "python-miio Message.build, same request",
    "total": "payload -> sendto",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--relay", choices=("miio", "tasmota"), default="miio")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    before = load_text()
    tasmota = args.relay == "tasmota"
    out = asyncio.run(measure_tasmota(args.n) if tasmota else measure(args.n))
    rows = []
    for key, label in (TASMOTA_LABELS if tasmota else LABELS).items():
        s = summary(out[key])
        rows.append([label, s["n"], s["p50"], s["p90"], s["p99"], s["max"]])
    header = ["step (us)", "N", "p50", "p90", "p99", "max"]
    text = table(header, rows)
    print(text)
    print(f"{before} / {load_text()}")
    if args.no_write:
        return 0
    note = "\nThe machine was busy (1-min load > 0.7): figures are provisional.\n" if busy() else ""
    if tasmota:
        command = f"python bench/path.py -n {args.n} --relay tasmota"
        what = (
            "In one process, with a test Mosquitto on loopback and the simulated Tasmota "
            "device: a `…/cmd` payload -> both messages of the pulse (`PulseTime1`, "
            "`POWER ON`) written to the broker socket, in microseconds (`perf_counter`). "
            "The first write is the dearest: it wakes the broker. The last row counts "
            "the garbage collections that started on the path here; the daemon defers "
            "them while a message's handlers run (`BrokerLink._message_cb`).\n\n"
        )
        title = "Shutoff path inside the daemon: tasmota"
    else:
        command = f"python bench/path.py -n {args.n}"
        what = (
            "In one process, no broker: a `…/cmd` payload -> the miIO packet handed to "
            "`sendto`, in microseconds (`perf_counter`). The python-miio row is not on the "
            "path: it is the codec the driver used before, timed on the same request.\n\n"
        )
        title = "Shutoff path inside the daemon"
    body = (
        header_lines(command, f"{args.n} shutoffs (+{WARM_UP} warm-up)")
        + "\n\n"
        + what
        + f"```\n{text}\n```\n\n{before} / {load_text()}\n"
        + note
    )
    write_section(title, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
