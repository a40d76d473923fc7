"""Timer firing error with 10 / 1,000 / 10,000 pending timers, and start-up time with
10,000 persisted timers, measured through the real daemon process.

    python bench/timers.py [--levels 10,1000,10000] [--probes 30] [--restarts 3] [--mqtt]

The daemon drives two burners on a simulated miIO relay (polling on, 1 s) that runs
in this process. Filler timers (due 6-23 h ahead, never fire during the run) are set
through the control socket, as ``stove-ctl timer`` does; then probe timers are set
``--lead`` seconds ahead, one after another. A probe's firing error is the wall-clock
time at which the simulated relay receives the cut, minus the timer's due time (from
the daemon's reply): scheduler wake-up, the job, the command and the relay exchange.
The daemon's own ``late_s`` (scheduler only) is reported next to it.

Start-up: the daemon holding the largest level is stopped (SIGTERM) and started again
``--restarts`` times; from process start to (a) the control socket accepting a
connection and (b) the first ``status`` answer. The same with no timers, for reference.

``--mqtt`` adds a Mosquitto and the daemon's MQTT interface (state publishing, one
stove topic), which is how most installations run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from _common import (
    busy,
    header_lines,
    load_text,
    summary,
    table,
    wait_until,
    write_section,
)

from hardware.miio_sim import MiioRelaySim
from hardware.relay import SimRelay
from stove_ctl.surfaces import control
from tests.broker import Mosquitto

TOKEN = "00112233445566778899aabbccddeeff"
HOST = "127.0.0.81"


def config(tmp: Path, mqtt_port: int | None) -> Path:
    data: dict[str, Any] = {
        "state_dir": str(tmp / "state"),
        "socket": str(tmp / "ctl.sock"),
        "log_level": "warning",
        "relays": {
            "r": {"driver": "miio", "host": HOST, "token": TOKEN, "channels": 2, "poll_s": 1}
        },
        "stoves": [
            {
                "id": "kitchen",
                "burners": [
                    {"id": "left", "relay": {"device": "r", "channel": 1}, "pulse_s": 0.5},
                    {"id": "right", "relay": {"device": "r", "channel": 2}, "pulse_s": 0.5},
                ],
            }
        ],
    }
    if mqtt_port is not None:
        data["mqtt"] = {"host": "127.0.0.1", "port": mqtt_port, "discovery": False}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Daemon:
    def __init__(self, cfg: Path) -> None:
        self.cfg = cfg
        data = yaml.safe_load(cfg.read_text())
        self.socket = Path(data["socket"])
        self.log = cfg.parent / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> tuple[float, float]:
        """Start; return (seconds to the socket accepting, seconds to a status answer)."""
        log = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stove_ctl", "run", "-c", str(self.cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        accepting = None
        deadline = t0 + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited:\n{self.log.read_text()[-3000:]}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(self.socket))
                accepting = time.monotonic() - t0
                break
            except OSError:
                time.sleep(0.002)
        if accepting is None:
            raise RuntimeError("the daemon never opened its socket")
        reply = self.request({"action": "status"})
        answered = time.monotonic() - t0
        if not reply.get("ok"):
            raise RuntimeError(f"status failed: {reply}")
        return accepting, answered

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        return control.request(self.socket, payload, timeout_s=120)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def fill(daemon: Daemon, count: int, rng: random.Random) -> float:
    """Add ``count`` far-future timers; returns the seconds it took."""
    if count <= 0:
        return 0.0

    def one(i: int) -> None:
        burner = "left" if i % 2 else "right"
        reply = daemon.request(
            {"action": "timer", "burner": burner, "in": rng.uniform(6 * 3600, 23 * 3600)}
        )
        if not reply.get("ok"):
            raise RuntimeError(f"timer refused: {reply}")

    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(count)))
    return time.monotonic() - t0


def pending(daemon: Daemon) -> int:
    reply = daemon.request({"action": "timers", "burner": "all"})
    return len(reply["timers"])


def probe(
    daemon: Daemon, cuts: list[float], lead_s: float, n: int, board: SimRelay
) -> tuple[list[float], list[float]]:
    """n probe timers on 'right', one after another; (relay error ms, late_s ms)."""
    errors, late = [], []
    for _ in range(n):
        wait_until(lambda: not board.get(2), 10)
        before = len(cuts)
        reply = daemon.request({"action": "timer", "burner": "right", "in": lead_s})
        due = dt.datetime.fromisoformat(reply["timer"]["due"]).timestamp()
        timer_id = reply["timer"]["id"]
        wait_until(lambda before=before: len(cuts) > before, lead_s + 30, 0.005)  # type: ignore[misc]
        errors.append((cuts[before] - due) * 1000)
        events = daemon.request({"action": "events", "limit": 30, "burner": "kitchen/right"})
        fired = [
            e
            for e in events["events"]
            if e["kind"] == "timer_fired" and e["command_id"] == timer_id
        ]
        if fired and fired[0]["detail"].get("late_s") is not None:
            late.append(fired[0]["detail"]["late_s"] * 1000)
        # let the pulse end (cut 0.5 s, then restore) before the next probe
        wait_until(lambda: not board.get(2), 10)
        time.sleep(0.2 + random.random() * 0.3)
    return errors, late


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="10,1000,10000")
    parser.add_argument("--probes", type=int, default=30)
    parser.add_argument("--lead", type=float, default=1.5, help="probe timers' delay (s)")
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--mqtt", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    rng = random.Random(7)

    board = SimRelay(channels=2)
    cuts: list[float] = []
    board.on_change(lambda ch, on: cuts.append(time.time()) if ch == 2 and on else None)
    sim = MiioRelaySim(board, host=HOST, token=TOKEN).start()

    rows: list[list[Any]] = []
    starts: list[list[Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = Mosquitto(tmp).start() if args.mqtt else None
        try:
            # Start-up with no timers, for reference.
            (tmp / "empty").mkdir()
            d = Daemon(config(tmp / "empty", broker.port if broker else None))
            for i in range(args.restarts):
                acc, ans = d.start()
                starts.append([0, i + 1, acc * 1000, ans * 1000, load_text()])
                d.stop()

            (tmp / "timers").mkdir()
            daemon = Daemon(config(tmp / "timers", broker.port if broker else None))
            daemon.start()
            have = 0
            try:
                for level in levels:
                    took = fill(daemon, level - have, rng)
                    have = level
                    count = pending(daemon)
                    print(
                        f"{level} timers pending ({count} listed; filled in {took:.1f} s); "
                        f"probing ({load_text()})",
                        flush=True,
                    )
                    time.sleep(2)
                    load_before = load_text()
                    errors, late = probe(daemon, cuts, args.lead, args.probes, board)
                    s, lt = summary(errors), summary(late)
                    rows.append(
                        [
                            level,
                            len(errors),
                            s["p50"],
                            s["p90"],
                            s["p99"],
                            s["max"],
                            lt["p50"],
                            lt["p99"],
                            f"{load_before} / {load_text()}",
                        ]
                    )
                    print(table(HEADER, rows[-1:]), flush=True)
                daemon.stop()
                for i in range(args.restarts):
                    acc, ans = daemon.start()
                    starts.append([have, i + 1, acc * 1000, ans * 1000, load_text()])
                    print(table(START_HEADER, starts[-1:]), flush=True)
                    time.sleep(3)  # let start-up work settle before stopping
                    daemon.stop()
            finally:
                daemon.stop()
        finally:
            sim.stop()
            if broker is not None:
                broker.stop()

    timers_table = table(HEADER, rows)
    start_table = table(START_HEADER, starts)
    print()
    print(timers_table)
    print()
    print(start_table)
    if busy():
        notes.append("The machine was busy (1-min load > 0.7) at the end: figures are provisional.")
    if args.no_write:
        return 0
    cmd = "python bench/timers.py" + (" --mqtt" if args.mqtt else "")
    if args.levels != "10,1000,10000" or args.probes != 30:
        cmd += f" --levels {args.levels} --probes {args.probes}"
    n_text = f"{args.probes} probe timers per level; {args.restarts} restarts"
    body = (
        header_lines(cmd, n_text) + "\n\n"
        "Firing error = the simulated miIO relay receives the cut (wall clock) minus the "
        "timer's due time; `late` = the daemon's own `late_s` (scheduler only). "
        f"MQTT interface {'on' if args.mqtt else 'off'}; relay polling on (1 s).\n\n"
        f"```\n{timers_table}\n```\n\n"
        "Start-up: process start -> control socket accepts -> first `status` answer.\n\n"
        f"```\n{start_table}\n```\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")
    )
    write_section("Timers" + (" (MQTT on)" if args.mqtt else ""), body)
    return 0


HEADER = [
    "pending",
    "N",
    "err p50 ms",
    "p90",
    "p99",
    "max",
    "late p50",
    "late p99",
    "load before / after",
]
START_HEADER = ["timers", "run", "socket ms", "status ms", "load"]

if __name__ == "__main__":
    raise SystemExit(main())
