"""Shutoff latency: MQTT command published -> the simulated relay receives the set.

Runs, in one process and one run, against a Mosquitto it starts on a free loopback
port:
  1. the stove-ctl daemon (a real process) driving a simulated miIO relay;
  2. a bare baseline: paho-mqtt + python-miio, nothing else, doing the same thing;
  3. the same two for the Tasmota preset (baseline: paho republishing the command).
It prints a table and writes docs/PERFORMANCE.md (section "Shutoff latency").

    python bench/latency.py [-n 300] [--pulse 0.5]

Timing: the publisher and the simulated devices share this process's monotonic clock;
the latency is from just before publish() to the device's receipt of the first
command for that channel.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import yaml
from miio import MiotDevice
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hardware.miio_sim import MiioRelaySim  # noqa: E402
from hardware.mqtt_devices import TasmotaRelay  # noqa: E402
from hardware.relay import SimRelay  # noqa: E402
from tests.broker import Mosquitto  # noqa: E402
from tests.daemon import Daemon  # noqa: E402

TOKEN = "00112233445566778899aabbccddeeff"


def client(port: int) -> paho.Client:
    c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    ready = threading.Event()
    c.on_connect = lambda *a: ready.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    ready.wait(10)
    return c


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return q[49], q[89], q[98]


def wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.0002)
    return False


def measure(
    publish: Callable[[], object],
    arrivals: Callable[[], list[float]],
    board: SimRelay,
    idle: Callable[[], bool],
    n: int,
) -> list[float]:
    """n shutoffs one after another: publish, time the device's receipt, let the
    pulse finish (cut, then restored), go again."""
    samples = []
    for _ in range(n):
        wait(idle, 10)
        time.sleep(0.02)
        t0 = time.monotonic()
        publish()
        if not wait(lambda t0=t0: any(t >= t0 for t in arrivals()), 10):  # type: ignore[misc]
            raise RuntimeError("the device never received the command")
        samples.append((min(t for t in arrivals() if t >= t0) - t0) * 1000)
        wait(lambda: board.get(1), 10)
        wait(lambda: not board.get(1), 10)
    return samples


def daemon_config(tmp: Path, name: str, port: int, relay: dict[str, object], pulse: float) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp / f"state-{name}"),
                "socket": str(tmp / f"{name}.sock"),
                "log_level": "warning",
                "mqtt": {"host": "127.0.0.1", "port": port, "discovery": False},
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


SHUTOFF = json.dumps({"action": "shutoff", "burner": "b"})


def run_miio(broker: Mosquitto, tmp: Path, n: int, pulse: float) -> tuple[list[float], list[float]]:
    board = SimRelay(channels=1)
    sim = MiioRelaySim(board, host="127.0.0.77", token=TOKEN).start()

    def arrivals() -> list[float]:
        return [t for t, method in list(sim.request_times) if method == "set_properties"]

    pub = client(broker.port)
    relay = {"driver": "miio", "host": "127.0.0.77", "token": TOKEN, "poll_s": 1}
    daemon = Daemon(daemon_config(tmp, "miio", broker.port, relay, pulse)).start()
    try:
        daemon.wait_reconciled()
        ours = measure(
            lambda: pub.publish("stove_ctl/k/cmd", SHUTOFF, qos=1),
            arrivals,
            board,
            lambda: daemon.request({"action": "status"})["burners"][0]["mode"] == "ready",
            n,
        )
    finally:
        daemon.stop()

    # The bare baseline: a subscriber that calls python-miio directly.
    device = MiotDevice("127.0.0.77", TOKEN, timeout=2, mapping={})
    device.get_property_by(2, 1)  # handshake once, as the daemon does at start-up

    def on_message(c: paho.Client, u: object, m: paho.MQTTMessage) -> None:
        device.set_property_by(2, 1, True)
        threading.Timer(pulse, lambda: device.set_property_by(2, 1, False)).start()

    bare = client(broker.port)
    bare.on_message = on_message
    bare.subscribe("bare/cmd", qos=1)
    time.sleep(0.2)
    try:
        baseline = measure(
            lambda: pub.publish("bare/cmd", SHUTOFF, qos=1), arrivals, board, lambda: True, n
        )
    finally:
        bare.loop_stop()
        pub.loop_stop()
        sim.stop()
    return ours, baseline


def run_tasmota(
    broker: Mosquitto, tmp: Path, n: int, pulse: float
) -> tuple[list[float], list[float]]:
    board = SimRelay(channels=1)
    device = TasmotaRelay(board, broker.port, topic="bench")
    times: list[float] = []
    original = device.handle

    def handle(topic: str, payload: bytes) -> None:
        if "/POWER" in topic and payload.upper() == b"ON":
            times.append(time.monotonic())
        original(topic, payload)

    device.handle = handle  # type: ignore[method-assign]
    device.start()
    pub = client(broker.port)
    relay = {"driver": "mqtt", "preset": "tasmota", "device": "bench", "device_pulse": True}
    daemon = Daemon(daemon_config(tmp, "tasmota", broker.port, relay, pulse)).start()
    try:
        daemon.wait_reconciled()
        ours = measure(
            lambda: pub.publish("stove_ctl/k/cmd", SHUTOFF, qos=1),
            lambda: list(times),
            board,
            lambda: daemon.request({"action": "status"})["burners"][0]["mode"] == "ready",
            n,
        )
    finally:
        daemon.stop()

    def on_message(c: paho.Client, u: object, m: paho.MQTTMessage) -> None:
        c.publish("cmnd/bench/PulseTime1", str(round(pulse * 10)), qos=1)
        c.publish("cmnd/bench/POWER", "ON", qos=1)

    bare = client(broker.port)
    bare.on_message = on_message
    bare.subscribe("bare/cmd", qos=1)
    time.sleep(0.2)
    try:
        baseline = measure(
            lambda: pub.publish("bare/cmd", SHUTOFF, qos=1),
            lambda: list(times),
            board,
            lambda: True,
            n,
        )
    finally:
        bare.loop_stop()
        pub.loop_stop()
        device.stop()
    return ours, baseline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--pulse", type=float, default=0.5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = Mosquitto(tmp).start()
        try:
            for name, run in (("miio", run_miio), ("tasmota", run_tasmota)):
                ours, bare = run(broker, tmp, args.n, args.pulse)
                o, b = percentiles(ours), percentiles(bare)
                rows.append((name, "stove-ctl", *o))
                rows.append((name, "bare paho + driver", *b))
                rows.append((name, "ratio p99", o[2] / b[2], float("nan"), float("nan")))
        finally:
            broker.stop()
    header = f"{'relay':8} {'who':20} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
    lines = [header, "-" * len(header)]
    for relay, who, p50, p90, p99 in rows:
        if who == "ratio p99":
            lines.append(f"{relay:8} {who:20} {p50:8.2f}")
        else:
            lines.append(f"{relay:8} {who:20} {p50:8.2f} {p90:8.2f} {p99:8.2f}")
    table = "\n".join(lines)
    print(table)
    report = ROOT / "docs" / "PERFORMANCE.md"
    report.write_text(
        "# Performance\n\n## Shutoff latency\n\n"
        f"MQTT command published -> simulated relay receives the set, N = {args.n} each, "
        f"pulse_s = {args.pulse}, one Mosquitto on loopback, 2 cores.\n"
        f"Produced by `python bench/latency.py -n {args.n}`.\n\n```\n{table}\n```\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
