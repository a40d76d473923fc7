"""Resident memory and idle CPU of the daemon with two stoves and polling on.

    python bench/footprint.py [--seconds 60] [--settle 10]

One daemon process, two stoves of two burners each: stove ``home`` on a simulated
Mi Home relay (yeelink.switch.sw1 with off-delay, polled every 1 s over miIO UDP),
stove ``cabin`` on a simulated Tasmota relay over MQTT (polled every 1 s), the MQTT
interface on (state, events, Home Assistant discovery) against a Mosquitto on a free
loopback port. The simulated devices run in this process, not in the daemon's.

After ``--settle`` seconds, for ``--seconds`` seconds, the daemon's RSS is read from
/proc/PID/status once a second and its CPU time (utime + stime from /proc/PID/stat)
at both ends: idle CPU = CPU seconds / wall seconds, as % of one core. Then 20
shutoffs are made (5 per burner, through the control socket) and RSS is read again,
so a leak or an allocation spike on the control path shows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _common import ProcStat, busy, header_lines, load_text, table, wait_until, write_section

from hardware.miio_sim import MiioRelaySim, Prop
from hardware.mqtt_devices import TasmotaRelay
from hardware.relay import SimRelay
from tests.broker import Mosquitto
from tests.daemon import Daemon

TOKEN = "00112233445566778899aabbccddeeff"
MIIO_HOST = "127.0.0.83"


def config(tmp: Path, port: int) -> Path:
    mapping = {
        n: {"siid": n + 1, "piid": 1, "off_delay": {"siid": n + 1, "piid": 3, "disarm": -1}}
        for n in (1, 2)
    }
    data: dict[str, Any] = {
        "state_dir": str(tmp / "state"),
        "socket": str(tmp / "ctl.sock"),
        "log_level": "warning",
        "mqtt": {"host": "127.0.0.1", "port": port},
        "relays": {
            "mi": {
                "driver": "miio",
                "host": MIIO_HOST,
                "token": TOKEN,
                "model": "yeelink.switch.sw1",
                "channels": 2,
                "mapping": mapping,
                "poll_s": 1,
            },
            "tas": {"driver": "mqtt", "preset": "tasmota", "device": "cabin", "channels": 2},
        },
        "stoves": [
            {
                "id": "home",
                "burners": [
                    {"id": "left", "relay": {"device": "mi", "channel": 1}, "pulse_s": 0.5},
                    {"id": "right", "relay": {"device": "mi", "channel": 2}, "pulse_s": 0.5},
                ],
            },
            {
                "id": "cabin",
                "burners": [
                    {"id": "front", "relay": {"device": "tas", "channel": 1}, "pulse_s": 0.5},
                    {"id": "back", "relay": {"device": "tas", "channel": 2}, "pulse_s": 0.5},
                ],
            },
        ],
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--settle", type=float, default=10)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = Mosquitto(tmp).start()
        mi_board = SimRelay(channels=2)
        mi = MiioRelaySim(
            mi_board, host=MIIO_HOST, token=TOKEN, off_delay={1: Prop(2, 3), 2: Prop(3, 3)}
        ).start()
        tas_board = SimRelay(channels=2)
        tas = TasmotaRelay(tas_board, broker.port, topic="cabin").start()
        daemon = Daemon(config(tmp, broker.port))
        try:
            daemon.start()
            daemon.wait_reconciled()
            stat = ProcStat(daemon.pid)
            broker_stat = ProcStat(broker.proc.pid) if broker.proc else None
            after_start = stat.rss_mb()
            time.sleep(args.settle)
            load_before = load_text()
            rss: list[float] = []
            cpu0, b0, t0 = stat.cpu_s(), broker_stat.cpu_s() if broker_stat else 0, time.monotonic()
            end = t0 + args.seconds
            while time.monotonic() < end:
                rss.append(stat.rss_mb())
                time.sleep(1)
            cpu1, b1, t1 = stat.cpu_s(), broker_stat.cpu_s() if broker_stat else 0, time.monotonic()
            load_after = load_text()
            idle_cpu = (cpu1 - cpu0) / (t1 - t0) * 100
            broker_cpu = (b1 - b0) / (t1 - t0) * 100
            pss, threads = stat.pss_mb(), stat.threads()

            for _ in range(5):
                for burner in ("home/left", "home/right", "cabin/front", "cabin/back"):
                    reply = daemon.request({"action": "shutoff", "burner": burner})
                    if not reply.get("ok"):
                        raise RuntimeError(f"shutoff failed: {reply}")
            wait_until(
                lambda: all(
                    b["mode"] == "ready" for b in daemon.request({"action": "status"})["burners"]
                ),
                30,
            )
            after_work = stat.rss_mb()
            hwm = stat.hwm_mb()
        finally:
            daemon.stop()
            tas.stop()
            mi.stop()
            broker.stop()

    rows = [
        ["RSS after start-up", f"{after_start:.1f} MB"],
        [
            f"RSS idle, min / median / max over {args.seconds:g} s",
            f"{min(rss):.1f} / {sorted(rss)[len(rss) // 2]:.1f} / {max(rss):.1f} MB",
        ],
        ["PSS (smaps_rollup) at end of idle", f"{pss:.1f} MB"],
        ["RSS after 20 shutoffs", f"{after_work:.1f} MB"],
        ["RSS high-water mark (VmHWM)", f"{hwm:.1f} MB"],
        [f"idle CPU over {t1 - t0:.0f} s", f"{idle_cpu:.2f} % of one core"],
        ["threads", str(threads)],
        ["(Mosquitto CPU, same window)", f"{broker_cpu:.2f} %"],
        ["load before / after", f"{load_before} / {load_after}"],
    ]
    out = table(["measure", "value"], rows)
    print(out)
    if args.no_write:
        return 0
    note = (
        "\nThe machine was busy (1-min load > 0.7) at the end: figures are provisional.\n"
        if busy()
        else ""
    )
    body = (
        f"{header_lines('python bench/footprint.py', f'{len(rss)} RSS samples, 1 s apart')}\n\n"
        "Two stoves (miIO relay + Tasmota relay, both polled every 1 s), MQTT interface on, "
        "read from /proc.\n\n"
        f"```\n{out}\n```\n{note}"
    )
    write_section("Footprint", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
