"""The bare baseline for bench/latency.py: paho-mqtt + the relay, nothing else.

    python bench/bare.py --port PORT --topic bare/cmd --miio HOST [--pulse 0.5]
    python bench/bare.py --port PORT --topic bare/cmd --tasmota DEVICE [--pulse 0.5]

A separate process, like the daemon it is compared with. On every message on
``--topic`` it does what stove-ctl does for a shutoff, in the simplest way:
``--miio``: python-miio's blocking ``MiotDevice.set_property_by(2, 1, True)`` in
paho's callback, and ``False`` ``--pulse`` seconds later; ``--tasmota``: publishes
``PulseTime1`` and ``POWER ON`` (the device switches back by itself). It prints
``ready`` once subscribed.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

TOKEN = "00112233445566778899aabbccddeeff"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", default="bare/cmd")
    parser.add_argument("--pulse", type=float, default=0.5)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--miio", metavar="HOST")
    group.add_argument("--tasmota", metavar="DEVICE")
    args = parser.parse_args()

    subscribed = threading.Event()
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)

    if args.miio:
        from miio import MiotDevice

        device = MiotDevice(args.miio, TOKEN, timeout=2, mapping={})
        device.get_property_by(2, 1)  # handshake once, as the daemon does at start-up

        def on_message(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:
            device.set_property_by(2, 1, True)
            threading.Timer(args.pulse, lambda: device.set_property_by(2, 1, False)).start()

    else:
        hold = str(max(1, round(args.pulse * 10)))

        def on_message(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:
            c.publish(f"cmnd/{args.tasmota}/PulseTime1", hold, qos=1)
            c.publish(f"cmnd/{args.tasmota}/POWER", "ON", qos=1)

    def on_connect(c: paho.Client, *a: Any) -> None:
        c.subscribe(args.topic, qos=1)

    client.on_connect = on_connect
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = on_message
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    if not subscribed.wait(10):
        print("could not subscribe", file=sys.stderr)
        return 1
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        client.loop_stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
