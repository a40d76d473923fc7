"""Run a whole simulated kitchen against an MQTT broker: ``python -m hardware``.

A two-burner hob (both lit) whose thermocouple circuits run through simulated relays
(a two-channel Tasmota board by default; ``--shelly``: a Shelly Plus 1 per burner;
``--z2m``: a two-channel Zigbee relay behind Zigbee2MQTT; ``--esphome``: a two-relay
ESPHome board; ``--miio HOST``: a Mi Home relay on the LAN), a thermocouple millivolt
sensor per burner, a motion sensor and a gas alarm, all on MQTT. It prints the
stove-ctl config that drives it, then a status line whenever something changes.

On a terminal it takes commands: ``light BURNER``, ``blowout BURNER``,
``motion on|off``, ``gas on|off``, ``powercycle``, ``offline``, ``online``, ``quit``.
With ``--no-stdin``, or when stdin is not a terminal (a service, a background job), it
runs until SIGTERM or SIGINT; commands piped in are still read until the pipe ends.
SIGTERM and SIGINT stop it cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from types import FrameType
from typing import TextIO

from hardware.miio_sim import MiioRelaySim, Prop
from hardware.miswire import Miswire, connect
from hardware.mqtt_devices import (
    BinarySensor,
    Device,
    EsphomeRelay,
    FlameSensor,
    RelayDevice,
    ShellyGen2Relay,
    TasmotaRelay,
    Zigbee2MqttRelay,
)
from hardware.relay import SimRelay
from hardware.stove import Burner, Stove, Wiring

BURNERS = ("left", "right")
TOKEN = "00112233445566778899aabbccddeeff"
LIT_ABOVE_MV = 12  # a lit burner's thermocouple reads ~25 mV, a cold one ~0
END_OF_CONFIG = "# end of config"
# What each relay's topic (--topic) is when not given.
DEFAULT_TOPICS = {
    "tasmota": "stove",
    "shelly": "shellyplus1",
    "z2m": "stove_relay",
    "esphome": "stove-esp",
}
# A Shelly Plus 1 has one normally-open contact: it cannot be wired nc_series, and
# no_parallel keeps the stove working as before while the relay is off.
WIRING = {"shelly": Wiring.NO_PARALLEL}


class WallClock:
    def monotonic(self) -> float:
        return time.monotonic()


class Stopped(Exception):
    """SIGTERM or SIGINT arrived."""


def relay_kind(args: argparse.Namespace) -> str:
    if args.miio:
        return "miio"
    for kind in ("shelly", "z2m", "esphome"):
        if getattr(args, kind):
            return kind
    return "tasmota"


def relay_config(kind: str, args: argparse.Namespace, topic: str) -> tuple[str, dict[str, str]]:
    """The ``relays:`` entries, and which relay and channel each burner uses."""
    if kind == "miio":
        text = (
            f"  hob:\n    driver: miio\n    host: {args.miio}\n    token: {TOKEN}\n"
            "    channels: 2\n    mapping:\n"
            "      1: {siid: 2, piid: 1, off_delay: {siid: 2, piid: 3, disarm: -1}}\n"
            "      2: {siid: 3, piid: 1, off_delay: {siid: 3, piid: 3, disarm: -1}}\n"
        )
    elif kind == "shelly":
        text = "".join(
            f"  shelly-{b}:\n    driver: mqtt\n    preset: shelly_gen2\n    device: {topic}-{b}\n"
            for b in BURNERS
        )
        return text, {b: f"{{device: shelly-{b}, channel: 1}}" for b in BURNERS}
    elif kind == "z2m":
        text = (
            f"  hob:\n    driver: mqtt\n    preset: zigbee2mqtt\n    device: {topic}\n"
            '    channels: 2\n    endpoints: {1: "_l1", 2: "_l2"}\n'
        )
    else:
        preset = "esphome" if kind == "esphome" else "tasmota"
        text = (
            f"  hob:\n    driver: mqtt\n    preset: {preset}\n    device: {topic}\n"
            "    channels: 2\n"
        )
    return text, {b: f"{{device: hob, channel: {n}}}" for n, b in enumerate(BURNERS, start=1)}


def config_snippet(
    args: argparse.Namespace,
    flame_topics: dict[str, str] | None = None,
    motion_topic: str = "kitchen-sensors/binary_sensor/motion/state",
    gas_topic: str = "kitchen-sensors/binary_sensor/gas_alarm/state",
) -> str:
    """The stove-ctl config that drives this kitchen: relays, burners and sensors."""
    kind = relay_kind(args)
    topic = args.topic or DEFAULT_TOPICS.get(kind, "")
    relays, refs = relay_config(kind, args, topic)
    wiring = WIRING.get(kind, Wiring.NC_SERIES)
    flame_topics = flame_topics or {
        b: f"kitchen-sensors/sensor/{b}_thermocouple/state" for b in BURNERS
    }
    burners = "".join(
        f"      - {{id: {b}, relay: {refs[b]}, wiring: {wiring.value}}}\n" for b in BURNERS
    )
    flames = "".join(
        f"    - {{burner: {b}, topic: {flame_topics[b]}, lit_above_mv: {LIT_ABOVE_MV}}}\n"
        for b in BURNERS
    )
    return (
        f"mqtt:\n  host: {args.host}\n  port: {args.port}\nrelays:\n{relays}"
        f"stoves:\n  - id: kitchen\n    burners:\n{burners}"
        f"inputs:\n  flame:\n{flames}"
        f"  motion:\n    - {{topic: {motion_topic}}}\n"
        f"  alarms:\n    - {{name: gas, kind: gas, topic: {gas_topic}}}\n"
    )


def build_relays(kind: str, args: argparse.Namespace, boards: list[SimRelay]) -> list[RelayDevice]:
    topic = args.topic or DEFAULT_TOPICS[kind]
    where = {"host": args.host}
    if kind == "shelly":
        return [
            ShellyGen2Relay(board, args.port, prefix=f"{topic}-{b}", **where)
            for b, board in zip(BURNERS, boards, strict=True)
        ]
    if kind == "z2m":
        endpoints = {1: "_l1", 2: "_l2"}
        return [Zigbee2MqttRelay(boards[0], args.port, name=topic, endpoints=endpoints, **where)]
    if kind == "esphome":
        return [EsphomeRelay(boards[0], args.port, prefix=topic, **where)]
    return [TasmotaRelay(boards[0], args.port, topic=topic, **where)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m hardware", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="broker host (loopback by default)")
    parser.add_argument("--port", type=int, default=1883, help="broker port")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument(
        "--tasmota", action="store_true", help="a two-channel Tasmota relay (the default)"
    )
    kind.add_argument(
        "--shelly",
        action="store_true",
        help="a Shelly Plus 1 (Gen2 RPC) per burner, wired no_parallel (NO contact only)",
    )
    kind.add_argument(
        "--z2m", action="store_true", help="a two-channel Zigbee relay behind Zigbee2MQTT"
    )
    kind.add_argument("--esphome", action="store_true", help="a two-relay ESPHome board")
    kind.add_argument("--miio", metavar="HOST", help="a Mi Home relay on HOST:54321")
    parser.add_argument(
        "--topic",
        help="the MQTT relay's topic, friendly name or prefix (Tasmota: stove; "
        "Shelly: shellyplus1, one device per burner as shellyplus1-left and -right; "
        "Zigbee2MQTT: stove_relay; ESPHome: stove-esp)",
    )
    parser.add_argument(
        "--no-stdin",
        action="store_true",
        help="read no commands; run until SIGTERM or SIGINT (also when stdin is not a terminal)",
    )
    parser.add_argument(
        "--miswire",
        action="append",
        default=[],
        type=_miswire,
        metavar="BURNER=KIND",
        help="simulate an installation mistake: "
        + ", ".join(m.value for m in Miswire)
        + " (swapped: give it for both burners); repeatable",
    )
    parser.add_argument(
        "--seconds", type=float, help="stop after this long (default: run until stopped)"
    )
    return parser.parse_args(argv)


def _miswire(text: str) -> tuple[str, Miswire]:
    name, _, kind = text.partition("=")
    if name not in BURNERS:
        raise argparse.ArgumentTypeError(f"no burner {name!r} (burners: {', '.join(BURNERS)})")
    try:
        return name, Miswire(kind)
    except ValueError:
        known = ", ".join(m.value for m in Miswire)
        raise argparse.ArgumentTypeError(f"unknown mistake {kind!r} (known: {known})") from None


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (OSError, ValueError):  # closed
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kind = relay_kind(args)
    if kind == "shelly" and any(m is Miswire.SWAPPED for _, m in args.miswire):
        print(
            "--miswire swapped needs one board with both channels (not --shelly)", file=sys.stderr
        )
        return 2

    stove = Stove(WallClock())
    wiring = WIRING.get(kind, Wiring.NC_SERIES)
    if kind == "shelly":  # one single-channel device per burner
        boards = [SimRelay(channels=1) for _ in BURNERS]
        channels = [(board, 1) for board in boards]
    else:
        boards = [SimRelay(channels=len(BURNERS))]
        channels = [(boards[0], n) for n in range(1, len(BURNERS) + 1)]
    on_board: dict[int, dict[str, tuple[Burner, int]]] = {}
    for name, (board, channel) in zip(BURNERS, channels, strict=True):
        on_board.setdefault(id(board), {})[name] = (stove.add_burner(name, wiring), channel)
    for board in boards:
        wired = on_board[id(board)]
        try:
            connect(board, wired, {n: m for n, m in args.miswire if n in wired})
        except ValueError as exc:
            print(f"--miswire: {exc}", file=sys.stderr)
            return 2
        for burner, _ in wired.values():
            burner.light_and_hold()

    relays: list[RelayDevice] = []
    miio: MiioRelaySim | None = None
    if kind == "miio":
        miio = MiioRelaySim(
            boards[0], host=args.miio, token=TOKEN, off_delay={1: Prop(2, 3), 2: Prop(3, 3)}
        )
    else:
        relays = build_relays(kind, args, boards)
    sensors = [
        FlameSensor(stove.burners[name], args.port, prefix="kitchen-sensors", host=args.host)
        for name in BURNERS
    ]
    motion = BinarySensor(args.port, "kitchen-sensors/binary_sensor/motion/state", host=args.host)
    gas = BinarySensor(args.port, "kitchen-sensors/binary_sensor/gas_alarm/state", host=args.host)
    devices: list[Device] = [*relays, *sensors, motion, gas]

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Once: a second signal during the clean-up must not cut the clean-up short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise Stopped(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop = threading.Event()
    started: list[Device] = []
    try:
        if miio is not None:
            try:
                miio.start()
            except OSError as exc:
                print(
                    f"python -m hardware: cannot listen on {args.miio}:54321: {exc}",
                    file=sys.stderr,
                    flush=True,
                )
                return 2
        try:
            for device in devices:
                device.start()
                started.append(device)
        except (OSError, RuntimeError) as exc:
            print(
                f"python -m hardware: cannot reach the broker at {args.host}:{args.port}: {exc}",
                file=sys.stderr,
                flush=True,
            )
            return 2
        flame_topics = {s.burner.name: s.topic for s in sensors}
        print(
            "# stove-ctl config for this kitchen (save it to a file: stove-ctl run -c FILE)\n"
            + config_snippet(args, flame_topics, motion.topic, gas.topic)
            + END_OF_CONFIG,
            flush=True,
        )
        _watch(stove, stop)
        _serve(args, stove, relays, miio, motion, gas)
    except Stopped as why:
        print(f"python -m hardware: {why}: stopping", flush=True)
    finally:
        stop.set()
        for device in reversed(started):
            device.stop()
        if miio is not None:
            miio.stop()
    return 0


def _watch(stove: Stove, stop: threading.Event) -> None:
    """A status line whenever a burner's flame, valve or circuit changes."""

    def status() -> str:
        parts = []
        for name, burner in stove.burners.items():
            flame = "LIT" if burner.flame else "out"
            valve = "open" if burner.valve_open else "closed"
            circuit = "intact" if burner.circuit_intact else "CUT"
            parts.append(
                f"{name}: {flame} valve={valve} {burner.thermocouple_mv:5.1f} mV circuit={circuit}"
            )
        return " | ".join(parts)

    def watch() -> None:
        last = ""
        while not stop.is_set():
            line = status()
            if line.split("mV")[0] != last.split("mV")[0] or line.count("LIT") != last.count("LIT"):
                print(time.strftime("%H:%M:%S ") + line, flush=True)
                last = line
            stop.wait(0.2)

    threading.Thread(target=watch, daemon=True).start()


def _serve(
    args: argparse.Namespace,
    stove: Stove,
    relays: list[RelayDevice],
    miio: MiioRelaySim | None,
    motion: BinarySensor,
    gas: BinarySensor,
) -> None:
    """Take commands from stdin while there are any, then run until stopped."""
    deadline = time.monotonic() + args.seconds if args.seconds else None
    terminal = _is_terminal(sys.stdin)
    if args.seconds:
        pass  # a timed run reads no commands
    elif args.no_stdin or not terminal:
        why = "--no-stdin" if args.no_stdin else "stdin is not a terminal"
        then = "" if args.no_stdin else "reading commands from it until it ends, then "
        print(f"python -m hardware: {why}: {then}running until SIGTERM or SIGINT", flush=True)
    if not args.seconds and not args.no_stdin and sys.stdin is not None:
        for line in iter(sys.stdin.readline, ""):
            if not _command(line, stove, relays, miio, motion, gas):
                return
        if terminal:
            return  # end of input typed at a terminal (Ctrl-D): as quit
    while deadline is None or time.monotonic() < deadline:
        time.sleep(0.1 if deadline is not None else 1.0)


def _command(
    line: str,
    stove: Stove,
    relays: list[RelayDevice],
    miio: MiioRelaySim | None,
    motion: BinarySensor,
    gas: BinarySensor,
) -> bool:
    """Carry out one command line; False for ``quit``."""
    words = line.split()
    if not words:
        return True
    command, rest = words[0], words[1:]
    if command == "quit":
        return False
    if command in ("light", "blowout") and rest and rest[0] in stove.burners:
        burner = stove.burners[rest[0]]
        if command == "light":
            burner.press_and_turn()
            time.sleep(5)  # a person holds the knob
            burner.release()
        else:
            burner.blow_out()
    elif command in ("motion", "gas") and rest and rest[0] in ("on", "off"):
        (motion if command == "motion" else gas).set(rest[0] == "on")
    elif command == "powercycle":
        for relay in relays:
            relay.power_cycle()
        if miio is not None:
            miio.power_cycle()
    elif command in ("offline", "online"):
        for relay in relays:
            if command == "offline":
                relay.go_offline()
            else:
                relay.come_back()
        if miio is not None:
            miio.offline = command == "offline"
    else:
        print(f"? {line.strip()}", flush=True)
    return True


if __name__ == "__main__":
    raise SystemExit(main())
