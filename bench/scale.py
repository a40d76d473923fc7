"""Scale: the building-scale figures of one daemon, 10 to 1,000 burners and 10 to
100,000 timers, in one run, with growth ratios beside the targets.

    python bench/scale.py [--burners 10,100,1000] [--timers 10,1000,10000,100000]
                          [--rounds 5] [--idle-s 20] [--wire miio,tasmota] [--no-write]

Every daemon is the real process (tests/daemon.py), started with
``PYTHONPATH=<this tree> PYTHONSAFEPATH=1``, so it runs the stove_ctl of the tree the
bench runs from (checked, and printed, before the first case). Times are taken here,
around control-socket requests; the rest comes from /proc/<pid>: ``stat`` (utime + stime:
idle CPU = CPU seconds / wall seconds, % of one core), ``status`` (VmRSS) and ``io``
(``write_bytes``: bytes the daemon sent to the disk; ``wchar``: bytes it passed to
write calls, page cache or not). State lives in a temporary directory on /tmp.

Part 1, burners. One daemon with N burners (N/2 stoves of 2, one in-process simulated
relay per stove, ``start_lit``, pulse 0.5 s), each N twice: MQTT off, and MQTT on (a
Mosquitto of its own on a free loopback port, Home Assistant discovery on, as most
installations run; the bench checks every stove's state reaches the broker and counts
the discovery configs there: ``HA configs``). Start-up: process start to the first
``status`` answer (polled every 50 ms by tests/daemon.py). Then ``--rounds`` times
``{"action": "shutoff", "burner": "all", "wait": "confirmed"}`` on the control socket
(``stove-ctl off all``), timed to the reply, which must be ok and name every burner;
between rounds every burner's pulse ends and the daemon is ready again. Disk per
``off all``: /proc/<pid>/io read before the request and after every burner is ready
again (the cut and the restore), mean over the rounds. Then 2 s, ``--idle-s`` of idle
CPU, and RSS at its end. Ratio: ``off all`` p50 at each N / at the N before it.

Part 2, timers. One daemon (2 stoves x 2 burners, simulated relays, MQTT and discovery
on, its state checked on the broker) with T persisted timers. The timer store
(``state_dir/timers.db``, created by the daemon's own SqliteJobStore) is filled before
the daemon starts, in one transaction, with jobs built as the daemon builds them
(APScheduler ``Job``, the daemon's ``fire`` function and arguments), due 2-23 h ahead,
spread over the 4 burners; the daemon's ``timers`` reply must list them all. Measured:
start-up (process start to the first ``status`` answer), RSS just then, idle CPU over
``--idle-s`` (from 2 s after the state is on the broker), the cost of one more timer
(``{"action": "timer", "burner": "s1/b1", "in": 3600}``, 20 requests one after
another, p50 and max), and the ``{"action": "timers"}`` reply: time and size in bytes.
Ratio: set-one p50 at T / at the smallest T.

``--wire miio,tasmota`` (off by default) adds the older rows: 100 burners on 50
two-channel relays on the wire, polled every 1 s (miIO relays simulated in this
process on 127.0.1.1-50, Tasmota relays over a Mosquitto), ``off all`` as in part 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import pickle
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from _common import (
    ROOT,
    ProcStat,
    busy,
    header_lines,
    load_text,
    summary,
    table,
    wait_until,
    write_section,
)
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.util import datetime_to_utc_timestamp
from paho.mqtt.enums import CallbackAPIVersion

from hardware.miio_sim import MiioRelaySim
from hardware.mqtt_devices import TasmotaRelay
from hardware.relay import SimRelay
from stove_ctl.core.jobstore import SqliteJobStore
from stove_ctl.surfaces import control
from tests.broker import Mosquitto
from tests.daemon import Daemon

TOKEN = "00112233445566778899aabbccddeeff"
ENV = {"PYTHONPATH": str(ROOT), "PYTHONSAFEPATH": "1"}  # the daemon runs this tree
START_S = 600  # a 1,000-burner daemon, or 100,000 timers, may start slowly
REQUEST_S = 300
OFF_ALL = {"action": "shutoff", "burner": "all", "wait": "confirmed"}


def simulated(i: int) -> dict[str, Any]:
    return {"driver": "simulated", "channels": 2, "start_lit": True}


def miio(i: int) -> dict[str, Any]:
    return {"driver": "miio", "host": f"127.0.1.{i}", "token": TOKEN, "channels": 2, "poll_s": 1}


def tasmota(i: int) -> dict[str, Any]:
    return {"driver": "mqtt", "preset": "tasmota", "device": f"t{i}", "channels": 2}


def config(tmp: Path, stoves: int, relay: Any, port: int | None, discovery: bool) -> Path:
    """``stoves`` stoves s1.. of burners b1, b2, stove i on relay r<i>."""
    data: dict[str, Any] = {
        "state_dir": str(tmp / "state"),
        "socket": str(tmp / "ctl.sock"),
        "log_level": "warning",
        "relays": {f"r{i}": relay(i) for i in range(1, stoves + 1)},
        "stoves": [
            {
                "id": f"s{i}",
                "burners": [
                    {"id": f"b{n}", "relay": {"device": f"r{i}", "channel": n}, "pulse_s": 0.5}
                    for n in (1, 2)
                ],
            }
            for i in range(1, stoves + 1)
        ],
    }
    if port is not None:
        data["mqtt"] = {"host": "127.0.0.1", "port": port, "discovery": discovery}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def request(daemon: Daemon, payload: dict[str, Any]) -> dict[str, Any]:
    return control.request(daemon.socket, payload, timeout_s=REQUEST_S)


def raw_request(daemon: Daemon, payload: dict[str, Any]) -> bytes:
    """The reply line as bytes (its size is a figure)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(REQUEST_S)
        sock.connect(str(daemon.socket))
        sock.sendall(json.dumps(payload).encode() + b"\n")
        return sock.makefile("rb").readline()


def start(daemon: Daemon) -> float:
    """Start the daemon; seconds from process start to the first ``status`` answer
    (polled every 50 ms)."""
    t0 = time.monotonic()
    daemon.start(timeout_s=START_S)
    return time.monotonic() - t0


def all_ready(daemon: Daemon) -> bool:
    burners = request(daemon, {"action": "status"}).get("burners", [])
    return bool(burners) and all(b["mode"] == "ready" and b["circuit"] == "intact" for b in burners)


def proc_io(pid: int) -> dict[str, int] | None:
    """/proc/<pid>/io, or None when it cannot be read."""
    try:
        lines = Path(f"/proc/{pid}/io").read_text().splitlines()
    except OSError:
        return None
    return {k: int(v) for k, v in (line.split(":") for line in lines)}


def on_broker(port: int, stoves: int) -> int:
    """Check the daemon is on the broker: every stove's state is published there. Returns
    how many Home Assistant discovery configs the broker has."""
    seen: set[str] = set()
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *a: c.subscribe(
        [("stove_ctl/+/state", 0), ("homeassistant/#", 0)]
    )
    client.on_message = lambda c, u, m: seen.add(m.topic)  # retained, or live if later
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_until(lambda: sum(t.startswith("stove_ctl/") for t in seen) >= stoves, 60, 0.1)
        time.sleep(1)
    finally:
        client.loop_stop()
        client.disconnect()
    return sum(t.startswith("homeassistant/") for t in seen)


def idle_cpu(stat: ProcStat, seconds: float) -> float:
    """% of one core over ``seconds`` of doing nothing."""
    cpu0, t0 = stat.cpu_s(), time.monotonic()
    time.sleep(seconds)
    return (stat.cpu_s() - cpu0) / (time.monotonic() - t0) * 100


def off_all_rounds(daemon: Daemon, rounds: int, burners: int) -> tuple[list[float], list[Any]]:
    """``rounds`` confirmed ``off all``: (reply ms, (write_bytes, wchar) per round or None)."""
    times, writes = [], []
    for _ in range(rounds):
        before = proc_io(daemon.pid)
        t0 = time.monotonic()
        reply = request(daemon, OFF_ALL)
        took = (time.monotonic() - t0) * 1000
        named = {r["burner"] for r in reply.get("burners", [])}
        if not reply.get("ok") or len(named) != burners:
            raise RuntimeError(f"off all failed ({len(named)} burners): {str(reply)[:500]}")
        times.append(took)
        wait_until(lambda: all_ready(daemon), REQUEST_S, 0.1)
        after = proc_io(daemon.pid)
        if before is None or after is None:
            writes.append(None)
        else:
            writes.append(tuple(after[k] - before[k] for k in ("write_bytes", "wchar")))
        time.sleep(1)
    return times, writes


def kb_per_round(writes: list[Any]) -> list[float]:
    """Mean write_bytes and wchar per round, in kB; '-' when /proc/<pid>/io was unreadable."""
    if not writes or any(w is None for w in writes):
        return [float("nan"), float("nan")]
    return [sum(w[i] for w in writes) / len(writes) / 1024 for i in (0, 1)]


def burners_case(n: int, mqtt: bool, rounds: int, idle_s: float, tmp: Path) -> list[Any]:
    broker = Mosquitto(tmp).start() if mqtt else None
    daemon = Daemon(
        config(tmp, n // 2, simulated, broker.port if broker else None, discovery=True), env=ENV
    )
    try:
        started = start(daemon)
        wait_until(lambda: all_ready(daemon), START_S, 0.1)
        ha = on_broker(broker.port, n // 2) if broker else "-"
        time.sleep(2)
        times, writes = off_all_rounds(daemon, rounds, n)
        time.sleep(2)
        cpu = idle_cpu(ProcStat(daemon.pid), idle_s)
        rss = ProcStat(daemon.pid).rss_mb()
    finally:
        daemon.stop(timeout_s=120)
        if broker is not None:
            broker.stop()
    s, mode = summary(times), "on" if mqtt else "off"
    disk = kb_per_round(writes)
    return [n, mode, ha, started, s["p50"], s["max"], *disk, cpu, rss, load_text()]


def prefill(state_dir: Path, count: int, burners: list[str]) -> None:
    """``count`` timers in timers.db as the daemon would have stored them."""
    state_dir.mkdir(mode=0o700, parents=True)
    store = SqliteJobStore(state_dir / "timers.db")
    store.start(None, "default")  # creates the file, its schema and WAL mode
    store.shutdown()
    scheduler = BackgroundScheduler(timezone=dt.UTC)  # never started: Job reads its zone
    now = dt.datetime.now(dt.UTC)
    rows = []
    for i in range(count):
        due = now + dt.timedelta(seconds=2 * 3600 + (21 * 3600) * i / max(count, 1))
        timer_id = f"t-{i:08x}"
        job = Job(
            scheduler,
            id=timer_id,
            func="stove_ctl.core.timers:fire",
            trigger=DateTrigger(run_date=due),
            executor="default",
            args=(),
            kwargs={
                "service": "main",
                "timer_id": timer_id,
                "burners": [burners[i % len(burners)]],
                "action": "shutoff",
                "due": due.timestamp(),
                "countdown": True,
            },
            name="timer by cli",
            misfire_grace_time=None,
            coalesce=True,
            max_instances=1,
            next_run_time=due,
        )
        state = pickle.dumps(job.__getstate__(), pickle.HIGHEST_PROTOCOL)
        rows.append((timer_id, datetime_to_utc_timestamp(due), state, json.dumps(job.kwargs)))
    db = sqlite3.connect(state_dir / "timers.db")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    with db:
        db.executemany("INSERT INTO apscheduler_jobs VALUES (?, ?, ?)", [r[:3] for r in rows])
        if "stove_ctl_job_kwargs" in tables:  # the store's own table, where it has one
            db.executemany(
                "INSERT INTO stove_ctl_job_kwargs VALUES (?, ?)", [(r[0], r[3]) for r in rows]
            )
    db.close()


def timers_case(count: int, idle_s: float, tmp: Path, sets: int = 20) -> list[Any]:
    prefill(tmp / "state", count, ["s1/b1", "s1/b2", "s2/b1", "s2/b2"])
    broker = Mosquitto(tmp).start()
    daemon = Daemon(config(tmp, 2, simulated, broker.port, discovery=True), env=ENV)
    try:
        started = start(daemon)
        rss = ProcStat(daemon.pid).rss_mb()
        on_broker(broker.port, 2)
        time.sleep(2)
        cpu = idle_cpu(ProcStat(daemon.pid), idle_s)
        times = []
        for _ in range(sets):
            t0 = time.monotonic()
            reply = request(daemon, {"action": "timer", "burner": "s1/b1", "in": 3600})
            times.append((time.monotonic() - t0) * 1000)
            if not reply.get("ok"):
                raise RuntimeError(f"timer refused: {reply}")
        t0 = time.monotonic()
        raw = raw_request(daemon, {"action": "timers"})
        listed_ms = (time.monotonic() - t0) * 1000
        reply = json.loads(raw)
        listed = reply.get("total", len(reply["timers"]))  # a reply names the first 100
        if listed != count + sets:
            raise RuntimeError(f"{listed} timers pending, {count + sets} expected")
    finally:
        daemon.stop(timeout_s=120)
        broker.stop()
    s = summary(times)
    return [count, started, rss, cpu, s["p50"], s["max"], listed_ms, len(raw), listed, load_text()]


def wire_case(kind: str, rounds: int, tmp: Path) -> list[Any]:
    """100 burners on 50 relays on the wire (the older rows)."""
    boards = [SimRelay(channels=2) for _ in range(50)]
    broker = Mosquitto(tmp).start() if kind == "tasmota" else None
    if kind == "miio":
        devices = [
            MiioRelaySim(b, host=f"127.0.1.{i}", token=TOKEN).start()
            for i, b in enumerate(boards, 1)
        ]
    else:
        assert broker is not None
        devices = [
            TasmotaRelay(b, broker.port, topic=f"t{i}").start() for i, b in enumerate(boards, 1)
        ]
    relay = miio if kind == "miio" else tasmota
    daemon = Daemon(
        config(tmp, 50, relay, broker.port if broker else None, discovery=False), env=ENV
    )
    try:
        start(daemon)
        wait_until(lambda: all_ready(daemon), START_S, 0.1)
        time.sleep(2)
        times, _ = off_all_rounds(daemon, rounds, 100)
    finally:
        daemon.stop(timeout_s=120)
        for d in devices:
            d.stop()
        if broker is not None:
            broker.stop()
    s = summary(times)
    return [f"{kind}, 100 burners / 50 relays", rounds, s["p50"], s["max"], load_text()]


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "-"


def targets(by: dict[tuple[int, str], list[Any]], timer_rows: list[list[Any]]) -> list[list[str]]:
    """The product's targets beside what was measured (where the run has the level)."""
    out: list[list[str]] = []

    def add(name: str, shown: str, ok: bool) -> None:
        out.append([name, shown, "yes" if ok else "NO"])

    top, mid = by.get((1000, "on")), by.get((100, "on"))
    if top is not None:
        add(
            "off all, 1000 burners, MQTT on: every round <= 1 s",
            f"{top[MAX]:.0f} ms",
            top[MAX] <= 1000,
        )
        if mid is not None:
            grow = top[P50] / mid[P50]
            add("off all p50, 1000 / 100 burners, MQTT on: <= 12x", f"{grow:.1f}x", grow <= 12)
        add("idle CPU, 1000 burners, MQTT on: <= 2 %", f"{top[CPU]:.2f} %", top[CPU] <= 2)
    big = next((r for r in timer_rows if r[0] == 100_000), None)
    if big is not None:
        add("100,000 timers: start-up < 3 s", f"{big[START]:.2f} s", big[START] < 3)
        add("100,000 timers: RSS < 150 MB", f"{big[RSS]:.0f} MB", big[RSS] < 150)
        grow = big[SET] / timer_rows[0][SET]
        add(f"100,000 timers: set one <= 2x at {timer_rows[0][0]}", f"{grow:.1f}x", grow <= 2)
    return out


def daemon_tree() -> str:
    """Where the daemon will import stove_ctl from; refuse another tree's."""
    where = subprocess.run(
        [sys.executable, "-c", "import stove_ctl; print(stove_ctl.__file__)"],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not where.startswith(str(ROOT) + os.sep):
        raise SystemExit(f"the daemon would import stove_ctl from {where}, not from {ROOT}")
    return where


BURNERS_HEADER = [
    "burners",
    "MQTT",
    "HA configs",
    "start s",
    "off all p50 ms",
    "max ms",
    "disk kB/off",
    "wchar kB/off",
    "idle CPU %",
    "RSS MB",
    "load",
]
TIMERS_HEADER = [
    "timers",
    "start s",
    "RSS MB",
    "idle CPU %",
    "set one p50 ms",
    "max ms",
    "list ms",
    "list bytes",
    "listed",
    "load",
]
# Where a figure is in a row.
P50, MAX, CPU = (BURNERS_HEADER.index(h) for h in ("off all p50 ms", "max ms", "idle CPU %"))
START, RSS, SET = (TIMERS_HEADER.index(h) for h in ("start s", "RSS MB", "set one p50 ms"))
WIRE_HEADER = ["case", "rounds", "off all p50 ms", "max ms", "load"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burners", default="10,100,1000")
    parser.add_argument("--timers", default="10,1000,10000,100000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle-s", type=float, default=20)
    parser.add_argument("--wire", default="", help="miio,tasmota: 100 burners on 50 relays")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    burner_levels = sorted(int(x) for x in args.burners.split(",") if x)
    timer_levels = sorted(int(x) for x in args.timers.split(",") if x)
    if any(n % 2 for n in burner_levels):
        parser.error("--burners: even numbers (stoves of 2 burners)")

    where = daemon_tree()
    print(f"daemon's stove_ctl: {where}", flush=True)
    if proc_io(os.getpid()) is None:
        print("/proc/<pid>/io is not readable here: no disk figures", flush=True)

    burner_rows: list[list[Any]] = []
    timer_rows: list[list[Any]] = []
    wire_rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for n in burner_levels:
            for mqtt in (False, True):
                case = tmp / f"b{n}-{mqtt}"
                case.mkdir()
                burner_rows.append(burners_case(n, mqtt, args.rounds, args.idle_s, case))
                print(table(BURNERS_HEADER, burner_rows[-1:]), flush=True)
        for count in timer_levels:
            case = tmp / f"t{count}"
            case.mkdir()
            timer_rows.append(timers_case(count, args.idle_s, case))
            print(table(TIMERS_HEADER, timer_rows[-1:]), flush=True)
        for kind in [k for k in args.wire.split(",") if k]:
            case = tmp / f"w-{kind}"
            case.mkdir()
            wire_rows.append(wire_case(kind, args.rounds, case))
            print(table(WIRE_HEADER, wire_rows[-1:]), flush=True)

    # Growth ratios, each level against the one before it, same run.
    by = {(r[0], r[1]): r for r in burner_rows}
    burner_ratios = [
        [f"off all p50, {b} / {a} burners"]
        + [ratio(by[b, m][P50], by[a, m][P50]) for m in ("off", "on")]
        for a, b in itertools.pairwise(burner_levels)
    ]
    timer_ratios = [
        [f"set one p50, {r[0]} / {timer_rows[0][0]} timers", ratio(r[SET], timer_rows[0][SET])]
        for r in timer_rows[1:]
    ]
    met = targets(by, timer_rows)
    parts = [
        table(BURNERS_HEADER, burner_rows) if burner_rows else "",
        table(["ratio", "MQTT off", "MQTT on"], burner_ratios) if burner_ratios else "",
        table(TIMERS_HEADER, timer_rows) if timer_rows else "",
        table(["ratio", "MQTT on"], timer_ratios) if timer_ratios else "",
        table(WIRE_HEADER, wire_rows) if wire_rows else "",
        table(["target", "measured", "met"], met) if met else "",
    ]
    out = "\n\n".join(p for p in parts if p)
    print()
    print(out)
    if args.no_write:
        return 0
    command = "python bench/scale.py " + " ".join(sys.argv[1:])
    note = (
        "\nThe machine was busy (1-min load > 0.7) at the end: figures are provisional.\n"
        if busy()
        else ""
    )
    if proc_io(os.getpid()) is None:
        note += "\n/proc/PID/io was not readable: no disk figures.\n"
    body = (
        header_lines(
            command.strip(),
            f"{args.rounds} rounds of off all per case; "
            f"idle {args.idle_s:g} s; 20 timer sets per level",
        )
        + "\n\n"
        "Burners: simulated relays, one per stove of 2; `off all` = control-socket "
        "`shutoff all, wait confirmed` -> reply; disk = /proc/PID/io per `off all` "
        "(write_bytes; wchar = all write calls); MQTT on = Mosquitto + discovery. "
        "Timers: 2 stoves, MQTT on, T timers persisted before start-up; start = process "
        "start -> first `status` answer; set one = one `timer` request; list = the "
        "`timers` reply.\n\n"
        f"```\n{out}\n```\n{note}"
    )
    write_section("Scale", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
