"""Rules through the real daemon, with simulated MQTT sensors and a Tasmota relay."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from hardware.mqtt_devices import BinarySensor, FlameSensor, TasmotaRelay
from tests.broker import Mosquitto
from tests.daemon import Daemon, wait_for
from tests.mqtt_watch import Watcher
from tests.test_mqtt_relays_hil import kitchen

pytestmark = pytest.mark.hil

BASE = "stove_ctl/kitchen"
MOTION = "sensors/binary_sensor/motion/state"
GAS = "sensors/binary_sensor/gas/state"


@pytest.fixture
def rig(tmp_path, broker):
    """Two lit burners on a Tasmota relay, a thermocouple sensor each, motion, gas alarm."""
    stove, board = kitchen(2)
    devices = [TasmotaRelay(board, broker.port, topic="hob")]
    devices += [
        FlameSensor(stove.burners[n], broker.port, prefix="sensors", period_s=0.5)
        for n in ("left", "right")
    ]
    motion = BinarySensor(broker.port, MOTION)
    gas = BinarySensor(broker.port, GAS)
    devices += [motion, gas]
    for device in devices:
        device.start()
    yield stove, board, motion, gas
    for device in devices:
        device.stop()


def config(tmp_path: Path, broker: Mosquitto, **rules: object) -> Path:
    data = {
        "state_dir": str(tmp_path / "state"),
        "socket": str(tmp_path / "ctl.sock"),
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "discovery": False},
        "relays": {"hob": {"driver": "mqtt", "preset": "tasmota", "device": "hob", "channels": 2}},
        "stoves": [
            {
                "id": "kitchen",
                "burners": [
                    {"id": "left", "relay": {"device": "hob", "channel": 1}, "pulse_s": 1},
                    {"id": "right", "relay": {"device": "hob", "channel": 2}, "pulse_s": 1},
                ],
            }
        ],
        "inputs": {
            "flame": [
                {"burner": n, "topic": f"sensors/sensor/{n}_thermocouple/state", "lit_above_mv": 20}
                for n in ("left", "right")
            ],
            "motion": [{"topic": MOTION}],
            "alarms": [{"name": "kitchen-gas", "kind": "gas", "topic": GAS}],
        },
        "rules": rules,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unattended_cooking_warns_cuts_and_confirms_the_flame_out(tmp_path, broker, rig) -> None:
    stove, _board, motion, _gas = rig
    daemon = Daemon(config(tmp_path, broker, unattended_min=0.1, warning_lead_s=3)).start()
    try:
        wait_for(lambda: daemon.status("left")["flame"] == "lit", 5, daemon.log)
        motion.set(True)  # someone in the kitchen, then gone
        motion.set(False)
        wait_for(lambda: "warning" in [e["kind"] for e in daemon.events()], 10, daemon.log)
        assert stove.burners["left"].flame  # warned, not yet cut
        wait_for(lambda: not stove.burners["left"].flame, 10, daemon.log)
        wait_for(lambda: not stove.burners["right"].flame, 5, daemon.log)  # cut in the same tick
        wait_for(
            lambda: (
                "flame_out_confirmed"
                in [e["kind"] for e in daemon.events() if e["burner"] == "kitchen/left"]
            ),
            15,
            daemon.log,
        )
        kinds = [e["kind"] for e in daemon.events() if e["burner"] == "kitchen/left"]
        assert kinds.index("warning") < kinds.index("cut_commanded") < kinds.index("cut_confirmed")
        assert kinds.index("cut_confirmed") < kinds.index("flame_out_confirmed")
        assert daemon.status("left")["last_shutoff"]["source"] == "rule"
        assert daemon.status("left")["flame"] == "out"
    finally:
        daemon.stop()


def test_gas_alarm_cuts_and_locks_all_and_only_the_cli_may_unlock(tmp_path, broker, rig) -> None:
    stove, board, _motion, gas = rig
    daemon = Daemon(config(tmp_path, broker)).start()
    watcher = Watcher(broker.port, [f"{BASE}/result"])
    try:
        daemon.wait_reconciled()
        gas.set(True)
        wait_for(
            lambda: not stove.burners["left"].flame and not stove.burners["right"].flame,
            10,
            daemon.log,
        )
        wait_for(lambda: daemon.status("right")["mode"] == "locked", 5, daemon.log)
        assert daemon.status("left")["mode"] == "locked"
        gas.set(False)
        time.sleep(1.5)
        assert board.snapshot() == {1: True, 2: True}  # still cut: a cleared alarm does not unlock
        watcher.publish(
            f"{BASE}/cmd", {"id": "u", "action": "unlock", "burner": "all", "ts": time.time()}
        )
        reply = watcher.wait_json(f"{BASE}/result", lambda r: r["id"] == "u")
        assert reply["ok"] is False and reply["code"] == "not_allowed"
        assert daemon.status("left")["mode"] == "locked"
        unlock = daemon.cli("unlock", "all")
        assert unlock.returncode == 0
        wait_for(lambda: board.snapshot() == {1: False, 2: False}, 5, daemon.log)
        assert not stove.burners["left"].valve_open  # unlocking never supplies gas
    finally:
        watcher.close()
        daemon.stop()


def test_garbage_on_device_and_sensor_topics_changes_nothing(tmp_path, broker, rig) -> None:
    stove, board, _motion, _gas = rig
    daemon = Daemon(config(tmp_path, broker)).start()
    watcher = Watcher(broker.port, ["nothing/#"])
    try:
        daemon.wait_reconciled()
        for topic, payload in (
            ("stat/hob/POWER1", b"MAYBE"),
            ("stat/hob/POWER1", b"\xff\xfe\x00"),
            ("stat/hob/RESULT", b"{not json"),
            ("stat/hob/RESULT", b'{"POWER1": 42}'),
            ("tele/hob/LWT", b"\xff"),
            ("sensors/sensor/left_thermocouple/state", b"hot"),
            ("sensors/sensor/left_thermocouple/state", b"\xff\xfe"),
            (GAS, b"PANIC"),
            (MOTION, b"\x00" * 5000),
        ):
            watcher.publish(topic, payload)
        time.sleep(1.5)
        assert daemon.proc.poll() is None
        assert board.snapshot() == {1: False, 2: False}
        assert stove.burners["left"].flame and stove.burners["right"].flame
        assert [b["mode"] for b in daemon.request({"action": "status"})["burners"]] == [
            "ready",
            "ready",
        ]
        assert daemon.cli("off", "left").returncode == 0  # and it still works
        assert not stove.burners["left"].flame
    finally:
        watcher.close()
        daemon.stop()
