"""Scale: one daemon with 100 burners on 50 relays (`off all`), and a fleet of 20
daemons on one broker receiving a fleet-wide shutoff.

    python bench/scale.py [--rounds 10] [--relays miio,tasmota,simulated] [--fleet 20]

Part 1, one daemon, 50 two-channel relays, 100 burners (50 stoves of 2), relay polling
on (1 s). ``miio``: 50 simulated Mi Home relays in this process, on 127.0.1.1-50;
``tasmota``: 50 simulated Tasmota relays on a Mosquitto; ``simulated``: the daemon's
in-process driver (no wire: the controller's own cost). Each round sends
``{"action": "shutoff", "burner": "all", "wait": "confirmed"}`` on the control socket,
which is ``stove-ctl off all --no-wait``, and times the reply (every cut confirmed by
reading the relay back); for wire relays also the moment the last relay switched.
Between rounds every burner's pulse (0.5 s) ends and the daemon is idle again.

Part 2, ``--fleet`` daemons, each one stove of two burners on the in-process
simulated driver, all on one Mosquitto with the MQTT interface on. A fleet-wide
shutoff is one ``{"action": "shutoff"}`` published to every stove's ``…/cmd`` topic,
back to back; it is confirmed when every daemon's ``…/result`` reply (sent once both
its cuts are confirmed by read-back) has arrived here. Timed from before the first
publish.
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

from hardware.miio_sim import MiioRelaySim
from hardware.mqtt_devices import TasmotaRelay
from hardware.relay import SimRelay
from tests.daemon import Daemon

TOKEN = "00112233445566778899aabbccddeeff"
RELAYS = 50


def big_config(tmp: Path, kind: str, port: int | None) -> Path:
    relays: dict[str, Any] = {}
    stoves = []
    for i in range(1, RELAYS + 1):
        if kind == "miio":
            relays[f"r{i}"] = {
                "driver": "miio",
                "host": f"127.0.1.{i}",
                "token": TOKEN,
                "channels": 2,
                "poll_s": 1,
            }
        elif kind == "tasmota":
            relays[f"r{i}"] = {
                "driver": "mqtt",
                "preset": "tasmota",
                "device": f"t{i}",
                "channels": 2,
            }
        else:
            relays[f"r{i}"] = {"driver": "simulated", "channels": 2, "start_lit": True}
        stoves.append(
            {
                "id": f"s{i}",
                "burners": [
                    {"id": f"s{i}b{n}", "relay": {"device": f"r{i}", "channel": n}, "pulse_s": 0.5}
                    for n in (1, 2)
                ],
            }
        )
    data: dict[str, Any] = {
        "state_dir": str(tmp / "state"),
        "socket": str(tmp / "ctl.sock"),
        "log_level": "warning",
        "relays": relays,
        "stoves": stoves,
    }
    if port is not None:
        data["mqtt"] = {"host": "127.0.0.1", "port": port, "discovery": False}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def all_ready(daemon: Daemon) -> bool:
    burners = daemon.request({"action": "status"}).get("burners", [])
    return bool(burners) and all(b["mode"] == "ready" and b["circuit"] == "intact" for b in burners)


def one_daemon(kind: str, rounds: int, tmp: Path, nodelay: bool = False) -> list[Any]:
    boards = [SimRelay(channels=2) for _ in range(RELAYS)]
    switched: list[float] = []
    for board in boards:
        board.on_change(lambda ch, on: switched.append(time.monotonic()) if on else None)
    devices: list[Any] = []
    broker = None
    if kind == "miio":
        devices = [
            MiioRelaySim(b, host=f"127.0.1.{i}", token=TOKEN).start()
            for i, b in enumerate(boards, start=1)
        ]
    elif kind == "tasmota":
        broker = broker_class(nodelay)(tmp).start()
        devices = [
            TasmotaRelay(b, broker.port, topic=f"t{i}").start() for i, b in enumerate(boards, 1)
        ]
    daemon = Daemon(big_config(tmp, kind, broker.port if broker else None))
    replies, lasts = [], []
    try:
        daemon.start(timeout_s=60)
        wait_until(lambda: all_ready(daemon), 60, 0.1)
        time.sleep(2)
        for _ in range(rounds):
            switched.clear()
            t0 = time.monotonic()
            reply = daemon.request({"action": "shutoff", "burner": "all", "wait": "confirmed"})
            t1 = time.monotonic()
            if not reply.get("ok") or len(reply["burners"]) != 2 * RELAYS:
                raise RuntimeError(f"off all failed: {str(reply)[:500]}")
            replies.append((t1 - t0) * 1000)
            if kind != "simulated":
                lasts.append(
                    (max(switched) - t0) * 1000 if len(switched) >= 2 * RELAYS else float("nan")
                )
            wait_until(lambda: all_ready(daemon), 30, 0.05)
            time.sleep(1.3)  # a random-ish phase against the 1 s polling
    finally:
        daemon.stop(timeout_s=60)
        for d in devices:
            d.stop()
        if broker is not None:
            broker.stop()
    r = summary(replies)
    row = [f"{kind}: off all, 100 burners", len(replies), r["p50"], r["max"]]
    if lasts:
        s = summary(lasts)
        row += [s["p50"], s["max"]]
    else:
        row += [float("nan"), float("nan")]
    return [*row, load_text()]


def fleet(count: int, rounds: int, tmp: Path, nodelay: bool = False) -> list[Any]:
    broker = broker_class(nodelay)(tmp).start()
    daemons = []
    try:
        for i in range(count):
            d = tmp / f"d{i}"
            d.mkdir()
            data = {
                "state_dir": str(d / "state"),
                "socket": str(d / "ctl.sock"),
                "log_level": "warning",
                "mqtt": {
                    "host": "127.0.0.1",
                    "port": broker.port,
                    "discovery": False,
                    "client_id": f"fleet{i}",
                },
                "relays": {"board": {"driver": "simulated", "channels": 2, "start_lit": True}},
                "stoves": [
                    {
                        "id": f"home{i}",
                        "burners": [
                            {
                                "id": "left",
                                "relay": {"device": "board", "channel": 1},
                                "pulse_s": 0.5,
                            },
                            {
                                "id": "right",
                                "relay": {"device": "board", "channel": 2},
                                "pulse_s": 0.5,
                            },
                        ],
                    }
                ],
            }
            (d / "config.yaml").write_text(yaml.safe_dump(data))
            daemons.append(Daemon(d / "config.yaml"))
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
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        ready.wait(10)
        client.subscribe("stove_ctl/+/result", qos=1)
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
                client.publish(f"stove_ctl/home{i}/cmd", payload, qos=1)
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
        broker.stop()
    s, f = summary(times), summary(firsts)
    return [
        f"fleet: {count} daemons x 2 burners",
        len(times),
        s["p50"],
        s["max"],
        f["p50"],
        f["max"],
        load_text(),
    ]


HEADER = ["case", "rounds", "confirmed p50 ms", "max", "2nd p50", "2nd max", "load after"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--relays", default="miio,tasmota,simulated")
    parser.add_argument("--fleet", type=int, default=20)
    parser.add_argument(
        "--broker-nodelay", action="store_true", help="Mosquitto with set_tcp_nodelay true"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for kind in args.relays.split(","):
            (tmp / kind).mkdir()
            rows.append(one_daemon(kind, args.rounds, tmp / kind, args.broker_nodelay))
            print(table(HEADER, rows[-1:]), flush=True)
        if args.fleet:
            (tmp / "fleet").mkdir()
            rows.append(fleet(args.fleet, args.rounds, tmp / "fleet", args.broker_nodelay))
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
    command = "python bench/scale.py" + (" --broker-nodelay" if args.broker_nodelay else "")
    if args.rounds != 10 or args.relays != "miio,tasmota,simulated" or args.fleet != 20:
        command += f" --rounds {args.rounds} --relays {args.relays} --fleet {args.fleet}"
    body = (
        header_lines(command, f"{args.rounds} rounds per case") + "\n\n"
        "`off all`: control-socket request (as `stove-ctl off all --no-wait`) -> reply, "
        "every cut confirmed by read-back; `2nd` = the last relay switched (wire relays). "
        "Fleet: publish to every stove's `…/cmd` -> the last `…/result` arrives; "
        "`2nd` = the first one.\n\n"
        f"```\n{out}\n```\n{note}"
    )
    write_section("Scale", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
