"""Fleet: a fleet-wide shutoff of N daemons, on one broker and across a bridge.

    python bench/fleet.py [--fleet 20] [--rounds 10] [--broker-nodelay] [--no-write]

``--fleet`` daemons, each one site (``base_topic: stove_ctl/site-<i>``) with one stove
of two burners on the in-process simulated driver, the MQTT interface on, discovery
off. A fleet-wide shutoff is one ``{"action": "shutoff"}`` published to every stove's
``stove_ctl/site-<i>/kitchen/cmd`` topic, back to back; it is confirmed when every
daemon's ``…/result`` reply (sent once both its cuts are confirmed by read-back) has
arrived at the publisher. Timed from before the first publish.

``one broker``: the daemons and the publisher on one Mosquitto. ``bridged``: the
daemons on a leaf Mosquitto bridged to a central one with docs/FLEET.md's sample
bridge (``topic stove_ctl/site-<i>/# both 1`` per site, tests/bridge.py), the
publisher on the central broker: each command and each reply crosses the bridge.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from _common import (
    broker_class,
    busy,
    header_lines,
    load_text,
    summary,
    table,
    wait_until,
    write_section,
)
from paho.mqtt.enums import CallbackAPIVersion

from tests.bridge import Bridged
from tests.daemon import Daemon


def site(i: int) -> str:
    return f"site-{i}"


def site_config(directory: Path, i: int, port: int) -> Path:
    directory.mkdir()
    data = {
        "state_dir": str(directory / "state"),
        "socket": str(directory / "ctl.sock"),
        "log_level": "warning",
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "base_topic": f"stove_ctl/{site(i)}",
            "instance_id": site(i),
            "discovery": False,
        },
        "relays": {"board": {"driver": "simulated", "channels": 2, "start_lit": True}},
        "stoves": [
            {
                "id": "kitchen",
                "burners": [
                    {"id": "left", "relay": {"device": "board", "channel": 1}, "pulse_s": 0.5},
                    {"id": "right", "relay": {"device": "board", "channel": 2}, "pulse_s": 0.5},
                ],
            }
        ],
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def all_ready(daemon: Daemon) -> bool:
    burners = daemon.request({"action": "status"}).get("burners", [])
    return bool(burners) and all(b["mode"] == "ready" and b["circuit"] == "intact" for b in burners)


def fleet(count: int, rounds: int, tmp: Path, bridged: bool, nodelay: bool = False) -> list[Any]:
    """``count`` daemons; the fleet-wide shutoff ``rounds`` times. ``bridged``: the
    daemons on the leaf, the publisher on the central broker."""
    options = ["set_tcp_nodelay true"] if nodelay else []
    brokers: Any
    if bridged:
        brokers = Bridged(tmp, [site(i) for i in range(count)], options).start()
        daemon_port, publish_port = brokers.leaf_port, brokers.central.port
    else:
        brokers = broker_class(nodelay)(tmp).start()
        daemon_port = publish_port = brokers.port
    daemons = []
    try:
        for i in range(count):
            daemons.append(Daemon(site_config(tmp / f"d{i}", i, daemon_port)))
        for daemon in daemons:
            daemon.start(timeout_s=60)
        results: dict[str, float] = {}
        lock = threading.Lock()
        ready = threading.Event()
        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)

        def on_message(c: Any, u: Any, m: paho.MQTTMessage) -> None:
            try:
                reply = json.loads(m.payload)
            except ValueError:
                return
            if reply.get("ok") and reply.get("action") == "shutoff":
                with lock:
                    results.setdefault(m.topic, time.monotonic())

        client.on_connect = lambda *a: ready.set()
        client.on_message = on_message
        client.connect("127.0.0.1", publish_port)
        client.loop_start()
        ready.wait(10)
        client.subscribe("stove_ctl/+/+/result", qos=1)
        time.sleep(1)
        times, firsts = [], []
        for _ in range(rounds):
            wait_until(lambda: all(all_ready(d) for d in daemons), 30, 0.1)
            time.sleep(1.3)
            with lock:
                results.clear()
            payload = json.dumps({"action": "shutoff"})
            t0 = time.monotonic()
            for i in range(count):
                client.publish(f"stove_ctl/{site(i)}/kitchen/cmd", payload, qos=1)
            wait_until(lambda: len(results) >= count, 30, 0.002)
            with lock:
                arrived = sorted(results.values())
            times.append((arrived[-1] - t0) * 1000)
            firsts.append((arrived[0] - t0) * 1000)
        client.loop_stop()
        client.disconnect()
    finally:
        for daemon in daemons:
            daemon.stop(timeout_s=60)
        brokers.stop()
    s, f = summary(times), summary(firsts)
    return [
        f"{'bridged' if bridged else 'one broker'}: {count} daemons x 2 burners",
        len(times),
        s["p50"],
        s["max"],
        f["p50"],
        f["max"],
        load_text(),
    ]


HEADER = ["case", "rounds", "confirmed p50 ms", "max", "first p50", "first max", "load after"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleet", type=int, default=20, help="daemons (default 20)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--broker-nodelay", action="store_true", help="Mosquitto with set_tcp_nodelay true"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for bridged in (False, True):
            work = tmp / ("bridged" if bridged else "one")
            work.mkdir()
            rows.append(fleet(args.fleet, args.rounds, work, bridged, args.broker_nodelay))
            print(table(HEADER, rows[-1:]), flush=True)
    out = table(HEADER, rows)
    print()
    print(out)
    if args.no_write:
        return 0
    note = (
        "\nThe machine was busy (1-min load > 0.7) at the end: figures are provisional.\n"
        if busy()
        else ""
    )
    command = "python bench/fleet.py" + (" --broker-nodelay" if args.broker_nodelay else "")
    if args.rounds != 10 or args.fleet != 20:
        command += f" --fleet {args.fleet} --rounds {args.rounds}"
    body = (
        header_lines(command, f"{args.rounds} rounds per case") + "\n\n"
        "A fleet-wide shutoff: one `shutoff` published to every stove's `…/cmd` topic "
        "-> the last `…/result` arrives (every cut confirmed by read-back); `first` = "
        "the first one. `one broker`: daemons and publisher on one Mosquitto; "
        "`bridged`: daemons on a leaf Mosquitto, publisher on the central one it is "
        "bridged to (docs/FLEET.md's sample bridge).\n\n"
        f"```\n{out}\n```\n{note}"
    )
    write_section("Fleet", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
