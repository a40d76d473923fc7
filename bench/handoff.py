"""A message from the broker to the daemon's handler, against a bare paho thread.

    python bench/handoff.py [-n 300] [--rounds 3]

A publisher process sends ``-n`` QoS 1 messages, 30 ms apart, each carrying its send
time (``perf_counter``: CLOCK_MONOTONIC, the same clock in every process), through a
Mosquitto on a free loopback port. Two receivers, one round each in turn:
  - ``loop``: stove-ctl's ``BrokerLink``; the time is read in the handler, which runs on
    the asyncio loop, and the handler publishes a 200-byte event, as the daemon does for
    a command. Up to 9ff764e..d9bbfe9 paho's own thread read the socket and handed each
    message to the loop (``call_soon_threadsafe``); since 7865a54 the loop reads paho's
    socket itself (paho's external-loop API) and runs the handler in the same step;
  - ``paho thread``: a plain paho client; the time is read in ``on_message``, in paho's
    network thread (what bench/bare.py does).
The difference is what the daemon's receiving side costs over paho alone. Prints a
table; writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from _common import load_text, summary, table
from paho.mqtt.enums import CallbackAPIVersion

from stove_ctl.drivers.broker import BrokerLink, Incoming, LinkSettings
from tests.broker import Mosquitto

PUBLISHER = """
import sys, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
c.connect("127.0.0.1", int(sys.argv[1]))
c.loop_start()
time.sleep(1)
for _ in range(int(sys.argv[2])):
    c.publish("bench/cmd", repr(time.perf_counter()).encode(), qos=1)
    time.sleep(0.03)
time.sleep(0.5)
c.loop_stop()
"""


def publish(port: int, n: int) -> None:
    import subprocess

    subprocess.run([sys.executable, "-c", PUBLISHER, str(port), str(n)], check=True)


async def on_loop(port: int, n: int) -> list[float]:
    out: list[float] = []
    link = BrokerLink(LinkSettings(host="127.0.0.1", port=port, client_id="bench-loop"))

    def handler(message: Incoming) -> None:
        out.append((time.perf_counter() - float(message.payload)) * 1000)
        link.publish("bench/events", b"e" * 200, qos=0)

    link.subscribe("bench/cmd", handler)
    link.start(asyncio.get_running_loop())
    try:
        if not await link.wait_connected(10):
            raise RuntimeError("no broker")
        await asyncio.sleep(0.3)
        await asyncio.to_thread(publish, port, n)
    finally:
        await link.stop()
    return out


def on_paho_thread(port: int, n: int) -> list[float]:
    out: list[float] = []
    subscribed = threading.Event()
    c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)

    def on_message(client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        out.append((time.perf_counter() - float(message.payload)) * 1000)

    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_connect = lambda client, *a: client.subscribe("bench/cmd", qos=1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        if not subscribed.wait(10):
            raise RuntimeError("no broker")
        publish(port, n)
    finally:
        c.loop_stop()
        c.disconnect()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp)).start()
        try:
            for i in range(args.rounds):
                for who in ("loop", "paho thread"):
                    before = load_text()
                    if who == "loop":
                        samples = asyncio.run(on_loop(broker.port, args.n))
                    else:
                        samples = on_paho_thread(broker.port, args.n)
                    s = summary(samples)
                    rows.append(
                        [who, str(i + 1), s["n"], s["p50"], s["p90"], s["p99"], s["max"], before]
                    )
        finally:
            broker.stop()
    header = ["received on", "round", "N", "p50 ms", "p90 ms", "p99 ms", "max ms", "load"]
    print(table(header, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
