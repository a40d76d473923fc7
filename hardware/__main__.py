"""Run a whole simulated kitchen against an MQTT broker: ``python -m hardware``.

A two-burner hob (both lit) whose thermocouple circuits run through a simulated relay
(Tasmota by default, or a Mi Home relay with ``--miio HOST``), a thermocouple
millivolt sensor per burner, a motion sensor and a gas alarm, all on MQTT. It prints
the stove-ctl config that drives it, then a status line whenever something changes.
Type commands on stdin: ``light BURNER``, ``blowout BURNER``, ``motion on|off``,
``gas on|off``, ``powercycle``, ``offline``, ``online``, ``quit``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from hardware.miio_sim import MiioRelaySim, Prop
from hardware.mqtt_devices import BinarySensor, Device, FlameSensor, TasmotaRelay
from hardware.relay import SimRelay
from hardware.stove import Stove

BURNERS = ("left", "right")
TOKEN = "00112233445566778899aabbccddeeff"


class WallClock:
    def monotonic(self) -> float:
        return time.monotonic()


def config_snippet(args: argparse.Namespace) -> str:
    if args.miio:
        relay = (
            f"  hob:\n    driver: miio\n    host: {args.miio}\n    token: {TOKEN}\n"
            "    channels: 2\n    mapping:\n"
            "      1: {siid: 2, piid: 1, off_delay: {siid: 2, piid: 3, disarm: -1}}\n"
            "      2: {siid: 3, piid: 1, off_delay: {siid: 3, piid: 3, disarm: -1}}\n"
        )
    else:
        relay = (
            f"  hob:\n    driver: mqtt\n    preset: tasmota\n    device: {args.topic}\n"
            "    channels: 2\n"
        )
    burners = "".join(
        f"      - {{id: {b}, relay: {{device: hob, channel: {n}}}}}\n"
        for n, b in enumerate(BURNERS, start=1)
    )
    return (
        f"mqtt:\n  host: {args.host}\n  port: {args.port}\nrelays:\n{relay}"
        f"stoves:\n  - id: kitchen\n    burners:\n{burners}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hardware", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="broker host (loopback by default)")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--topic", default="stove", help="the Tasmota relay's topic")
    parser.add_argument("--miio", metavar="HOST", help="use a Mi Home relay on HOST:54321 instead")
    parser.add_argument(
        "--seconds", type=float, help="stop after this long (default: run until quit)"
    )
    args = parser.parse_args(argv)

    stove = Stove(WallClock())
    board = SimRelay(channels=len(BURNERS))
    for n, name in enumerate(BURNERS, start=1):
        burner = stove.add_burner(name)
        board.attach(n, burner.contact)
        burner.light_and_hold()

    devices: list[Device] = []
    relay: TasmotaRelay | None = None
    miio: MiioRelaySim | None = None
    if args.miio:
        miio = MiioRelaySim(
            board, host=args.miio, token=TOKEN, off_delay={1: Prop(2, 3), 2: Prop(3, 3)}
        )
        miio.start()
    else:
        relay = TasmotaRelay(board, args.port, topic=args.topic, host=args.host)
        devices.append(relay)
    for name in BURNERS:
        sensor = FlameSensor(
            stove.burners[name], args.port, prefix="kitchen-sensors", host=args.host
        )
        devices.append(sensor)
    motion = BinarySensor(args.port, "kitchen-sensors/binary_sensor/motion/state", host=args.host)
    gas = BinarySensor(args.port, "kitchen-sensors/binary_sensor/gas_alarm/state", host=args.host)
    devices += [motion, gas]
    try:
        for device in devices:
            device.start()
    except (OSError, RuntimeError) as exc:
        print(f"python -m hardware: cannot reach the broker at {args.host}:{args.port}: {exc}")
        return 2

    print("# stove-ctl config for this kitchen:\n" + config_snippet(args), flush=True)
    stop = threading.Event()

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
    deadline = time.monotonic() + args.seconds if args.seconds else None
    try:
        while deadline is None or time.monotonic() < deadline:
            if deadline is not None:
                time.sleep(0.1)
                continue
            line = sys.stdin.readline()
            if not line:
                break
            words = line.split()
            if not words:
                continue
            command, rest = words[0], words[1:]
            if command == "quit":
                break
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
                if relay is not None:
                    relay.power_cycle()
                elif miio is not None:
                    miio.power_cycle()
            elif command == "offline" and relay is not None:
                relay.go_offline()
            elif command == "online" and relay is not None:
                relay.come_back()
            else:
                print(f"? {line.strip()}", flush=True)
    finally:
        stop.set()
        for device in devices:
            device.stop()
        if miio is not None:
            miio.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
