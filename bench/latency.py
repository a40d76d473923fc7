"""Shutoff latency: MQTT command published -> the simulated relay receives the set,
stove-ctl against a bare paho + driver baseline, interleaved.

    python bench/latency.py [--rounds 3] [-n 100] [--presets miio,tasmota] [--pulse 0.5]

Per preset, against one Mosquitto on a free loopback port, two consumers run side by
side for the whole round, each as its own process with its own simulated relay:
  - the stove-ctl daemon (relay polling on, 1 s, as shipped), commanded on
    ``stove_ctl/k/cmd``;
  - ``bench/bare.py``: paho-mqtt + python-miio (or, for Tasmota, paho republishing the
    command), nothing else, commanded on ``bare/cmd``.
Samples alternate: each pair is one stove-ctl and one baseline shutoff in random order,
with a random 50-300 ms gap before each (so a sample falls at any phase of the
daemon's 1 s polling). Each round starts both processes afresh; ``--rounds`` rounds of
``-n`` pairs. Per-round and pooled p50/p90/p99 are reported, with the p99 ratio and a
bootstrap 95% interval for the pooled ratio.

Timing: the publisher and the simulated devices share this process's monotonic clock;
a sample runs from just before ``publish()`` to the device switching its output (a
listener on the board, no polling loop in this process). The next sample waits until
the pulse is over and the daemon is idle again.

The bench process is the instrument: it hosts the publisher and both devices, so its
own garbage collections would delay whichever sample they land on. By default
(``--bench-gc quiet``) it freezes its set-up heap, turns automatic collection off while
sampling and collects the young generations before each gap; ``--bench-gc auto``
leaves Python's automatic collection on. Either way the collections that overlapped a
sample are counted per side. The daemon and ``bench/bare.py`` keep their own
collection as they are.

``--tree NAME=PATH`` (twice or more): an A/B in one run. Each round then runs one
stove-ctl daemon per tree, started from that source tree (``PYTHONPATH=PATH`` with
``PYTHONSAFEPATH=1``, so neither the working directory's nor the installed
``stove_ctl`` wins; checked before the first round), each with its own simulated relay,
MQTT client id and base topic, plus the bare baseline; every set of samples is one per
side in random order. Per tree: the p99 ratio tree / bare with its bootstrap interval,
and the difference in pooled p99 ratio from the first tree, with a bootstrap 95%
interval (each side resampled on its own). Nothing is written to docs/PERFORMANCE.md.

For miio, every stove-ctl sample is classified by whether a polling read
(get_properties) reached the device in the 10 ms before the cut.
``--profile``: log the daemon's event-loop stalls over 2 ms and its collections over
1 ms (``bench/diag/loopwatch``), shown against the slowest samples. ``--pyspy``: run
``py-spy record`` on the daemon (py-spy must be installed).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from _common import (
    ROOT,
    GcWatch,
    NoDelayMosquitto,
    busy,
    header_lines,
    load_text,
    machine,
    pct,
    revision,
    summary,
    table,
    wait_until,
    write_section,
)
from paho.mqtt.enums import CallbackAPIVersion

from hardware.miio_sim import MiioRelaySim
from hardware.mqtt_devices import TasmotaRelay
from hardware.relay import SimRelay
from tests.broker import Mosquitto
from tests.daemon import Daemon

TOKEN = "00112233445566778899aabbccddeeff"
SHUTOFF = {"action": "shutoff", "burner": "b"}
LOOPWATCH = ROOT / "bench" / "diag" / "loopwatch"
HOSTS = {"stove-ctl": "127.0.0.77", "bare": "127.0.0.78"}
DEFAULT: dict[str, Path | None] = {"stove-ctl": None}  # one daemon, from the tree the bench runs in


def tree_env(tree: Path) -> dict[str, str]:
    """A daemon's environment for a source tree: its ``stove_ctl`` first, not the one in
    the working directory (``python -m`` would put that first) or the installed one."""
    return {"PYTHONPATH": str(tree), "PYTHONSAFEPATH": "1"}


def imported_from(tree: Path) -> str:
    """Where ``stove_ctl`` comes from in a daemon's environment for ``tree``."""
    return subprocess.run(
        [sys.executable, "-c", "import stove_ctl; print(stove_ctl.__file__)"],
        env={**os.environ, **tree_env(tree)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def client(port: int) -> paho.Client:
    c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    ready = threading.Event()
    c.on_connect = lambda *a: ready.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    ready.wait(10)
    return c


class Watched:
    """A simulated relay board whose channel 1 switching on / off is signalled."""

    def __init__(self) -> None:
        self.board = SimRelay(channels=1)
        self.on_at: float | None = None
        self.switched_on = threading.Event()
        self.switched_off = threading.Event()
        self.board.on_change(self._changed)

    def _changed(self, channel: int, on: bool) -> None:
        if on:
            self.on_at = time.monotonic()
            self.switched_on.set()
        else:
            self.switched_off.set()

    def arm(self) -> None:
        self.on_at = None
        self.switched_on.clear()
        self.switched_off.clear()


def base_topic(who: str) -> str:
    return "stove_ctl" if who == "stove-ctl" else f"stove_ctl_{who}"


def daemon_config(
    tmp: Path, name: str, port: int, relay: dict[str, Any], pulse: float, who: str = "stove-ctl"
) -> Path:
    path = tmp / f"{name}.yaml"
    mqtt = {"host": "127.0.0.1", "port": port, "discovery": False}
    if who != "stove-ctl":
        mqtt |= {"client_id": f"stove-ctl-{who}", "base_topic": base_topic(who)}
    path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp / f"state-{name}"),
                "socket": str(tmp / f"{name}.sock"),
                "log_level": "warning",
                "mqtt": mqtt,
                "relays": {"r": relay},
                "stoves": [
                    {
                        "id": "k",
                        "burners": [{"id": "b", "relay": {"device": "r"}, "pulse_s": pulse}],
                    }
                ],
            }
        )
    )
    return path


class Round:
    """One round of one preset: the daemons (one per tree), a bare baseline, and a
    device for each."""

    def __init__(
        self,
        preset: str,
        broker: Mosquitto,
        tmp: Path,
        pulse: float,
        watch: Path | None = None,
        trees: dict[str, Path | None] = DEFAULT,
    ) -> None:
        self.watch = watch
        self.trees = trees
        self.sides = [*trees, "bare"]
        self.seq = 0
        # per daemon: (command id, publish wall time, device switched wall time)
        self.walls: dict[str, list[tuple[str, float, float]]] = {who: [] for who in trees}
        # Tasmota: (monotonic time, command) as each message reaches the device
        self.arrivals: dict[str, list[tuple[float, str]]] = {who: [] for who in self.sides}
        # per sample: (who, publish monotonic time, latency ms)
        self.starts: list[tuple[str, float, float]] = []
        self.preset = preset
        self.broker = broker
        self.tmp = tmp
        self.pulse = pulse
        self.boards = {who: Watched() for who in self.sides}
        self.devices: list[Any] = []
        self.sims: dict[str, MiioRelaySim] = {}
        self.daemons: dict[str, Daemon] = {}
        self.bare: subprocess.Popen[str] | None = None
        self.pub: paho.Client | None = None

    def host(self, who: str) -> str:
        """miio: the first daemon and the baseline as ever, further daemons after them."""
        if who in HOSTS:
            return HOSTS[who]
        i = list(self.trees).index(who)
        return f"127.0.0.{77 if i == 0 else 78 + i}"

    def __enter__(self) -> Round:
        port = self.broker.port
        relays: dict[str, dict[str, Any]] = {}
        if self.preset == "miio":
            for who in self.sides:
                board = self.boards[who].board
                self.sims[who] = MiioRelaySim(board, host=self.host(who), token=TOKEN)
                self.devices.append(self.sims[who].start())
                relays[who] = {
                    "driver": "miio",
                    "host": self.host(who),
                    "token": TOKEN,
                    "poll_s": 1,
                }
            bare_args = ["--miio", self.host("bare")]
        else:
            for who in self.sides:
                device = TasmotaRelay(self.boards[who].board, port, topic=f"bench-{who}")
                self._log_arrivals(device, who)
                self.devices.append(device.start())
                relays[who] = {
                    "driver": "mqtt",
                    "preset": "tasmota",
                    "device": f"bench-{who}",
                    "device_pulse": True,
                }
            bare_args = ["--tasmota", "bench-bare"]
        for who, tree in self.trees.items():
            env = tree_env(tree) if tree is not None else {}
            if self.watch is not None:
                path = env.get("PYTHONPATH", os.environ.get("PYTHONPATH"))
                env["PYTHONPATH"] = f"{LOOPWATCH}:{path}" if path else str(LOOPWATCH)
                env["STOVE_BENCH_LOOPWATCH"] = str(self.watch)
            home = self.tmp if who == "stove-ctl" else self.tmp / who
            home.mkdir(exist_ok=True)
            config = daemon_config(home, self.preset, port, relays[who], self.pulse, who)
            self.daemons[who] = Daemon(config, env=env or None)
            self.daemons[who].start()
            self.daemons[who].wait_reconciled()
        self.bare = subprocess.Popen(
            [
                *(sys.executable, str(ROOT / "bench" / "bare.py"), "--port", str(port)),
                *("--topic", "bare/cmd", "--pulse", str(self.pulse), *bare_args),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.bare.stdout is not None
        if self.bare.stdout.readline().strip() != "ready":
            raise RuntimeError("bench/bare.py did not start")
        self.pub = client(port)
        time.sleep(1.0)
        return self

    def _log_arrivals(self, device: TasmotaRelay, who: str) -> None:
        """Note when each command message reaches the device (monotonic)."""
        handle = device.handle

        def logged(topic: str, payload: bytes) -> None:
            self.arrivals[who].append((time.monotonic(), topic.rsplit("/", 1)[-1]))
            handle(topic, payload)

        device.handle = logged  # type: ignore[method-assign]

    def __exit__(self, *exc: object) -> None:
        if self.pub is not None:
            self.pub.loop_stop()
            self.pub.disconnect()
        if self.bare is not None:
            self.bare.terminate()
            self.bare.wait(10)
        for daemon in self.daemons.values():
            daemon.stop()
        for device in self.devices:
            device.stop()

    def idle(self, who: str) -> bool:
        if who == "bare":
            return True
        reply = self.daemons[who].request({"action": "status"})
        return bool(reply["burners"][0]["mode"] == "ready")

    def sample(self, who: str) -> float:
        assert self.pub is not None
        watched = self.boards[who]
        watched.arm()
        topic = "bare/cmd" if who == "bare" else f"{base_topic(who)}/k/cmd"
        self.seq += 1
        command_id = f"bench-{self.seq}"
        payload = json.dumps({**SHUTOFF, "id": command_id})
        wall, t0 = time.time(), time.monotonic()
        self.pub.publish(topic, payload, qos=1)
        if not watched.switched_on.wait(10) or watched.on_at is None:
            raise RuntimeError(f"{who}: the device never switched")
        latency = (watched.on_at - t0) * 1000
        self.starts.append((who, t0, latency))
        if who != "bare":
            self.walls[who].append((command_id, wall, wall + (watched.on_at - t0)))
        if not watched.switched_off.wait(self.pulse + 10):
            raise RuntimeError(f"{who}: the pulse never ended")
        time.sleep(0.05)
        wait_until(lambda: self.idle(who), 10, 0.01)
        return latency

    def polled_before(self, who: str, window_s: float = 0.010) -> Callable[[float], bool]:
        """For miio: did a polling read reach this daemon's device shortly before t?"""
        sim = self.sims[who]

        def check(t_on: float) -> bool:
            return any(
                m == "get_properties" and t_on - window_s <= t <= t_on
                for t, m in list(sim.request_times)
            )

        return check

    def pulse_gaps(self) -> list[tuple[str, float, float, float]]:
        """Tasmota: for each sample, (who, latency, PulseTime arrival, POWER arrival),
        ms from publish: a POWER held back behind PulseTime shows here."""
        out = []
        for who, t0, latency in self.starts:
            after = [(t, what) for t, what in self.arrivals[who] if t >= t0]
            pulse = next((t for t, what in after if what.startswith("PulseTime")), None)
            power = next((t for t, what in after if what.startswith("POWER")), None)
            if pulse is not None and power is not None:
                out.append((who, latency, (pulse - t0) * 1000, (power - t0) * 1000))
        return out

    def split(self, who: str) -> list[tuple[str, float, float, float]]:
        """Per sample of daemon ``who``: (id, publish -> the controller's ``command``
        event, that event -> the device switched, the total), in ms, from its events."""
        events = self.daemons[who].request({"action": "events", "limit": 10_000})["events"]
        seen = {e["command_id"]: e["ts"] for e in events if e["kind"] == "command"}
        out = []
        for command_id, sent, switched in self.walls[who]:
            if command_id in seen:
                ts = seen[command_id]
                out.append(
                    (
                        command_id,
                        (ts - sent) * 1000,
                        (switched - ts) * 1000,
                        (switched - sent) * 1000,
                    )
                )
        return out


def run_round(
    preset: str,
    broker: Mosquitto,
    tmp: Path,
    n: int,
    pulse: float,
    rng: random.Random,
    profile: bool,
    pyspy: bool,
    quiet_gc: bool,
    trees: dict[str, Path | None] = DEFAULT,
) -> dict[str, Any]:
    samples: dict[str, list[float]] = {who: [] for who in [*trees, "bare"]}
    collided: dict[str, list[tuple[float, bool]]] = {who: [] for who in trees}
    spy: subprocess.Popen[bytes] | None = None
    load_before = load_text()
    watch = tmp / "loopwatch.txt" if profile else None
    with Round(preset, broker, tmp, pulse, watch, trees) as r:
        if pyspy and r.daemons:
            out = Path(tempfile.gettempdir()) / f"stove-bench-py-spy-{preset}-{os.getpid()}.txt"
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "-p",
                    str(next(iter(r.daemons.values())).pid),
                    "--rate",
                    "500",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--idle",
                    "--threads",
                    "-o",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        checks = {who: r.polled_before(who) for who in trees} if preset == "miio" else {}
        gcwatch = GcWatch()
        gc.callbacks.append(gcwatch)
        if quiet_gc:
            # The harness's own collections, between samples only (see --bench-gc).
            gc.collect()
            gc.freeze()
            gc.disable()
        try:
            for _ in range(n):
                order = list(r.sides)
                rng.shuffle(order)
                for who in order:
                    if quiet_gc:
                        gc.collect(1)
                    time.sleep(rng.uniform(0.05, 0.3))
                    value = r.sample(who)
                    samples[who].append(value)
                    if who in checks:
                        on_at = r.boards[who].on_at
                        assert on_at is not None
                        collided[who].append((value, checks[who](on_at)))
        finally:
            gc.callbacks.remove(gcwatch)
            if quiet_gc:
                gc.enable()
                gc.unfreeze()
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
            print(f"py-spy profile: {out}", flush=True)
        split = {who: r.split(who) for who in trees}
        gaps = r.pulse_gaps()
    stalls = []
    if watch is not None and watch.exists():
        for line in watch.read_text().splitlines():
            at, took, what = line.split(" ", 2)
            stalls.append((float(at), float(took), what))
    return {
        "samples": samples,
        "collided": collided,
        "split": split,
        "walls": r.walls,
        "stalls": stalls,
        "gaps": gaps,
        "bench_gc": [
            (who, latency, [(ms, gen) for _, ms, gen in gcwatch.during(t0, t0 + latency / 1000)])
            for who, t0, latency in r.starts
        ],
        "load": f"{load_before} / {load_text()}",
    }


def explain(preset: str, round_no: int, result: dict[str, Any]) -> list[str]:
    """Where each daemon's time went: the split at the controller's ``command`` event,
    and for the slowest samples any event-loop stall that overlapped them."""
    lines = []
    for who, split in result["split"].items():
        if not split:
            continue
        name = "" if who == "stove-ctl" else f" {who}"
        before = summary([b for _, b, _, _ in split])
        after = summary([a for _, _, a, _ in split])
        lines.append(
            f"{preset} round {round_no}{name}: publish -> `command` event p50 "
            f"{before['p50']:.2f} / p99 {before['p99']:.2f} ms; `command` event -> relay set "
            f"p50 {after['p50']:.2f} / p99 {after['p99']:.2f} ms (N {len(split)})"
        )
        walls = {c: (sent, switched) for c, sent, switched in result["walls"][who]}
        for command_id, b, a, total in sorted(split, key=lambda x: -x[3])[:3]:
            sent, switched = walls[command_id]
            overlapping = [
                f"{took:.1f} ms {what}"
                for at, took, what in result["stalls"]
                if at < switched and at + took / 1000 > sent - 0.05
            ]
            lines.append(
                f"  slowest{name}: {total:.2f} ms = {b:.2f} to the `command` event + {a:.2f} "
                "after" + (f"; loop stalls: {'; '.join(overlapping)}" if overlapping else "")
            )
    if not lines:
        return []
    lines[1:1] = [
        f"  slowest {who} (Tasmota): {latency:.2f} ms; PulseTime reached the device at "
        f"{pulse:.2f} ms, POWER at {power:.2f} ms"
        for who, latency, pulse, power in sorted(result.get("gaps", []), key=lambda g: -g[1])[:3]
    ]
    bench_gc = result.get("bench_gc", [])
    sides = list(result["samples"])
    hit = {who: [(lat, cols) for w, lat, cols in bench_gc if w == who and cols] for who in sides}
    if bench_gc:
        lines.append(
            "  bench-process collections during a sample: "
            + ", ".join(f"{who} {len(hit[who])}" for who in sides)
            + "".join(
                f"; {who} {lat:.2f} ms with "
                + ", ".join(f"gen{gen} {ms:.1f} ms" for ms, gen in cols)
                for who in sides
                for lat, cols in sorted(hit[who], key=lambda h: -h[0])[:2]
            )
        )
    return lines


def bullet(line: str) -> str:
    return f"  - {line.strip()}" if line.startswith("  ") else f"- {line}"


def bootstrap_ratio(
    ours: list[float], bare: list[float], rng: random.Random
) -> tuple[float, float]:
    ratios = []
    for _ in range(2000):
        a = [ours[rng.randrange(len(ours))] for _ in ours]
        b = [bare[rng.randrange(len(bare))] for _ in bare]
        ratios.append(pct(a, 99) / pct(b, 99))
    return pct(ratios, 2.5), pct(ratios, 97.5)


def bootstrap_difference(
    first: list[float], other: list[float], bare: list[float], rng: random.Random
) -> tuple[float, float]:
    """95% interval of (other p99 / bare p99) - (first p99 / bare p99), each side
    resampled on its own (one bare resample serves both ratios)."""
    diffs = []
    for _ in range(2000):
        b = pct(rng.choices(bare, k=len(bare)), 99)
        a = pct(rng.choices(first, k=len(first)), 99)
        o = pct(rng.choices(other, k=len(other)), 99)
        diffs.append(o / b - a / b)
    return pct(diffs, 2.5), pct(diffs, 97.5)


def table_rows(
    preset: str, label: str, s: dict[str, dict[str, float]], tail: dict[str, str]
) -> list[list[Any]]:
    """One row per side. The p99 ratio (daemon / bare) is on the bare row when there
    is one daemon (as ever), on each daemon's row when there are several."""
    daemons = [who for who in s if who != "bare"]
    ratio = {who: s[who]["p99"] / s["bare"]["p99"] for who in daemons}
    if len(daemons) == 1:
        ratio = {"bare": ratio[daemons[0]]}
    return [
        [
            *(preset, label, who, s[who]["n"], s[who]["p50"], s[who]["p90"], s[who]["p99"]),
            *(s[who]["max"], ratio.get(who, float("nan")), tail[who]),
        ]
        for who in s
    ]


HEADER = [
    "relay",
    "round",
    "who",
    "N",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "p99 ratio",
    "load before / after",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="pairs per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--presets", default="miio,tasmota")
    parser.add_argument("--pulse", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--profile", action="store_true", help="log event-loop stalls > 2 ms in the daemon"
    )
    parser.add_argument("--pyspy", action="store_true", help="py-spy record the daemon")
    parser.add_argument(
        "--broker-nodelay", action="store_true", help="Mosquitto with set_tcp_nodelay true"
    )
    parser.add_argument(
        "--bench-gc",
        choices=("quiet", "auto"),
        default="quiet",
        help="quiet (default): this process's own garbage collections run only between "
        "samples (gc.freeze after set-up, automatic collection off while sampling, young "
        "generations collected before each gap); auto: Python's automatic collection, "
        "which can land inside a sample of either side",
    )
    parser.add_argument("--keep", type=Path, help="write the raw samples (JSON) here")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--tree",
        action="append",
        metavar="NAME=PATH",
        help="a stove-ctl daemon from the source tree PATH (twice or more: an A/B in one "
        "run, against one bare baseline; implies --no-write)",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    trees: dict[str, Path | None] = dict(DEFAULT)
    if args.tree:
        trees = {}
        for spec in args.tree:
            name, _, path = spec.partition("=")
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,20}", name) or name in ("bare", "stove-ctl"):
                parser.error(f"--tree {spec}: NAME is 1-20 of A-Z a-z 0-9 _ - (not bare)")
            if name in trees or not (Path(path) / "stove_ctl").is_dir():
                parser.error(f"--tree {spec}: a second {name}, or no stove_ctl/ in {path}")
            trees[name] = tree = Path(path).resolve()
            where = imported_from(tree)
            if not where.startswith(str(tree / "stove_ctl") + os.sep):
                parser.error(f"--tree {spec}: the daemon would import {where}")
            print(f"tree {name}: stove_ctl from {where}", flush=True)
        if args.profile or args.pyspy:
            parser.error("--profile and --pyspy take one daemon, not --tree")
        args.no_write = True
    rows: list[list[Any]] = []
    extra: list[str] = []
    raw: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = (NoDelayMosquitto(tmp) if args.broker_nodelay else Mosquitto(tmp)).start()
        try:
            for preset in args.presets.split(","):
                preset_started = time.monotonic()
                pooled: dict[str, list[float]] = {who: [] for who in [*trees, "bare"]}
                collided: dict[str, list[tuple[float, bool]]] = {who: [] for who in trees}
                for i in range(args.rounds):
                    (tmp / f"{preset}{i}").mkdir()
                    result = run_round(
                        preset,
                        broker,
                        tmp / f"{preset}{i}",
                        args.n,
                        args.pulse,
                        rng,
                        args.profile,
                        args.pyspy,
                        args.bench_gc == "quiet",
                        trees,
                    )
                    raw.append({"preset": preset, "round": i + 1, **result})
                    for line in explain(preset, i + 1, result):
                        print(line, flush=True)
                        extra.append(line)
                    for who in trees:
                        collided[who] += result["collided"][who]
                    for who in pooled:
                        pooled[who] += result["samples"][who]
                    s = {who: summary(v) for who, v in result["samples"].items()}
                    rows += table_rows(preset, str(i + 1), s, dict.fromkeys(s, result["load"]))
                    print(table(HEADER, rows[-len(s) :]), flush=True)
                p = {who: summary(v) for who, v in pooled.items()}
                cis = {
                    who: "95% CI of ratio {:.2f}-{:.2f}".format(
                        *bootstrap_ratio(pooled[who], pooled["bare"], rng)
                    )
                    for who in trees
                }
                tail = {"bare": cis[next(iter(trees))] if len(trees) == 1 else "", **cis}
                rows += table_rows(preset, "pooled", p, tail)
                print(table(HEADER, rows[-len(p) :]), flush=True)
                first, *others = trees
                for other in others:
                    ratio = {who: p[who]["p99"] / p["bare"]["p99"] for who in (first, other)}
                    lo, hi = bootstrap_difference(pooled[first], pooled[other], pooled["bare"], rng)
                    line = (
                        f"{preset}: pooled p99 ratio {other} - {first} = {ratio[other]:.2f} - "
                        f"{ratio[first]:.2f} = {ratio[other] - ratio[first]:+.2f}, bootstrap "
                        f"95% CI {lo:+.2f} to {hi:+.2f} (N {p[first]['n']} / {p[other]['n']} "
                        f"/ bare {p['bare']['n']})"
                    )
                    extra.append(line)
                    print(line, flush=True)
                for who, seen in collided.items():
                    if not seen:
                        continue
                    hit = [v for v, c in seen if c]
                    miss = [v for v, c in seen if not c]
                    line = (
                        f"{preset}: {who} samples with a polling read at the device in the "
                        f"10 ms before the cut: {len(hit)} of {len(seen)}"
                    )
                    if hit:
                        line += (
                            f" (p50 {statistics.median(hit):.2f} ms, max {max(hit):.2f} ms; "
                            f"the others p50 {statistics.median(miss):.2f} ms, "
                            f"p99 {pct(miss, 99):.2f} ms)"
                        )
                    extra.append(line)
                    print(line, flush=True)
                print(f"{preset}: wall time {time.monotonic() - preset_started:.0f} s", flush=True)
        finally:
            broker.stop()
    if args.keep is not None:
        kept = {
            "revision": revision(),
            "machine": machine(),
            "taken": time.strftime("%Y-%m-%d %H:%M %Z"),
            "broker_nodelay": args.broker_nodelay,
            "bench_gc": args.bench_gc,
            "pulse": args.pulse,
            "trees": {who: str(tree) for who, tree in trees.items() if tree is not None},
            "rounds": raw,
        }
        args.keep.write_text(json.dumps(kept))
    out = table(HEADER, rows)
    print()
    print(out)
    for line in extra:
        print(line)
    print(f"wall time {time.monotonic() - started:.0f} s; {load_text()}")
    if args.no_write:
        return 0
    cmd = f"python bench/latency.py --rounds {args.rounds} -n {args.n}"
    if args.presets != "miio,tasmota":
        cmd += f" --presets {args.presets}"
    if args.broker_nodelay:
        cmd += " --broker-nodelay"
    if args.bench_gc != "quiet":
        cmd += f" --bench-gc {args.bench_gc}"
    note = (
        "\nThe machine was busy (1-min load > 0.7) at the end: figures are provisional.\n"
        if busy()
        else ""
    )
    n_text = (
        f"{args.rounds} rounds x {args.n} interleaved pairs per relay = "
        f"{args.rounds * args.n} samples per side"
    )
    body = (
        header_lines(cmd, n_text) + "\n\n"
        "MQTT command published -> simulated relay receives the set (monotonic clock of the "
        f"bench process). pulse_s = {args.pulse}; stove-ctl with relay polling on (1 s); "
        "baseline `bench/bare.py` (paho + python-miio / paho republishing) in its own process; "
        "samples interleaved in random order with random gaps, both processes restarted "
        "every round. The bench process (publisher and both devices) "
        + (
            "runs its own garbage collections only between samples. "
            if args.bench_gc == "quiet"
            else "collects garbage automatically, also inside samples. "
        )
        + "`p99 ratio` = stove-ctl p99 / baseline p99 (target: <= 1.2).\n\n"
        f"```\n{out}\n```\n"
        + ("\n" + "\n".join(bullet(e) for e in extra) + "\n" if extra else "")
        + note
    )
    title = "Shutoff latency"
    if args.presets != "miio,tasmota":
        title += ": " + args.presets.replace(",", ", ")
    if args.broker_nodelay:
        title += " (test broker with set_tcp_nodelay)"
    write_section(title, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
