"""MQTT relays: the real daemon drives simulated firmwares through a real Mosquitto."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import hardware
from hardware.mqtt_devices import EsphomeRelay, ShellyGen2Relay, TasmotaRelay, Zigbee2MqttRelay
from tests.broker import Mosquitto
from tests.daemon import Daemon, wait_for
from tests.miio_kitchen import RealTimeClock
from tests.mqtt_watch import Watcher

pytestmark = pytest.mark.hil

BASE = "stove_ctl/kitchen"


def kitchen(channels: int) -> tuple[hardware.Stove, hardware.SimRelay]:
    stove = hardware.Stove(RealTimeClock())
    board = hardware.SimRelay(channels=channels)
    for n in range(1, channels + 1):
        burner = stove.add_burner(["left", "right"][n - 1])
        board.attach(n, burner.contact)
        burner.light_and_hold()
    return stove, board


def config(
    tmp_path: Path, broker: Mosquitto, relay: dict[str, Any], channels: int, pulse_s: float = 1.0
) -> Path:
    burners = [
        {"id": name, "relay": {"device": "r", "channel": n}, "pulse_s": pulse_s}
        for n, name in enumerate(["left", "right"][:channels], start=1)
    ]
    data = {
        "state_dir": str(tmp_path / "state"),
        "socket": str(tmp_path / "ctl.sock"),
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "discovery": False},
        "relays": {"r": {"driver": "mqtt", "timeout_s": 1.5, "poll_s": 0.3, **relay}},
        "stoves": [{"id": "kitchen", "burners": burners}],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


PRESETS = {
    "tasmota": (
        lambda board, port: TasmotaRelay(board, port, topic="stove"),
        {"preset": "tasmota", "device": "stove", "channels": 2},
        2,
        "PulseTime",
    ),
    "tasmota_single": (
        lambda board, port: TasmotaRelay(board, port, topic="stove1"),
        {"preset": "tasmota", "device": "stove1", "channels": 1},
        1,
        "PulseTime",
    ),
    "zigbee2mqtt": (
        lambda board, port: Zigbee2MqttRelay(
            board, port, name="hob", endpoints={1: "_l1", 2: "_l2"}
        ),
        {
            "preset": "zigbee2mqtt",
            "device": "hob",
            "channels": 2,
            "endpoints": {1: "_l1", 2: "_l2"},
        },
        2,
        "on_time",
    ),
    "shelly_gen2": (
        lambda board, port: ShellyGen2Relay(board, port, prefix="shellyplus1-hob"),
        {"preset": "shelly_gen2", "device": "shellyplus1-hob", "channels": 1},
        1,
        "toggle_after",
    ),
    "esphome": (
        lambda board, port: EsphomeRelay(board, port, prefix="hob-esp"),
        {"preset": "esphome", "device": "hob-esp", "channels": 2},
        2,
        None,
    ),
    "generic": (
        lambda board, port: EsphomeRelay(board, port, prefix="diy"),
        {
            "preset": "generic",
            "device": "diy",
            "command_topic": "diy/switch/relay_1/command",
            "state_topic": "diy/switch/relay_1/state",
            "availability_topic": "diy/status",
        },
        1,
        None,
    ),
}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_shutoff_by_mqtt_command_through_every_preset(tmp_path, broker, cleanup, preset) -> None:
    make, relay, channels, pulse_word = PRESETS[preset]
    stove, board = kitchen(channels)
    device = make(board, broker.port).start()
    cleanup.append(device)
    daemon = Daemon(config(tmp_path, broker, relay, channels)).start()
    cleanup.append(daemon)
    watcher = Watcher(broker.port, [f"{BASE}/result"])
    cleanup.append(type("C", (), {"stop": staticmethod(watcher.close)}))
    daemon.wait_reconciled()
    assert stove.burners["left"].flame

    target = "right" if channels == 2 else "left"
    watcher.publish(f"{BASE}/cmd", {"id": "p", "action": "shutoff", "burner": target})
    result = watcher.wait_json(f"{BASE}/result", lambda r: r["id"] == "p", timeout_s=15)
    assert result["ok"], result
    burner = stove.burners[target]
    # The valve drops ~16 ms after the contact opens; the result can arrive sooner.
    wait_for(lambda: not burner.flame and not burner.valve_open, 2)
    channel = 2 if target == "right" else 1
    wait_for(lambda: board.get(channel) is False, 5, daemon.log)  # restored
    time.sleep(0.3)
    assert not burner.valve_open  # and restoring did not reopen it
    if channels == 2:
        assert stove.burners["left"].flame  # only the named burner
    sent = b" ".join(t.encode() + b" " + p for t, p in device.received)
    if pulse_word is not None:
        assert pulse_word.encode() in sent  # the firmware's own auto-off was used
    events = daemon.events()
    assert [e["kind"] for e in events if e["burner"] == f"kitchen/{target}"][-2:] == [
        "restore_commanded",
        "restore_confirmed",
    ]


def test_device_availability_is_respected(tmp_path, broker, cleanup) -> None:
    stove, board = kitchen(1)
    device = TasmotaRelay(board, broker.port, topic="stove").start()
    cleanup.append(device)
    daemon = Daemon(config(tmp_path, broker, {"preset": "tasmota", "device": "stove"}, 1)).start()
    cleanup.append(daemon)
    daemon.wait_reconciled()
    device.go_offline()  # the broker publishes tele/stove/LWT Offline
    wait_for(lambda: daemon.status("left")["mode"] == "fault", 10, daemon.log)
    off = daemon.cli("off", "left", "--timeout", "2")
    assert off.returncode == 1 and "offline" in off.stdout
    assert stove.burners["left"].flame
    device.come_back()
    wait_for(lambda: not stove.burners["left"].flame, 15, daemon.log)
    wait_for(lambda: board.get(1) is False, 5)


def test_a_second_shutoff_joins_one_still_failing_on_a_pulsing_relay(
    tmp_path, broker, cleanup
) -> None:
    """Invariant 5: while the first cut is still being retried, a second request for the
    burner joins it, however long the retries take: a device-side pulse that was never
    confirmed does not end the shutoff's hold (it once left a stale end time behind,
    and the second request got a pulse of its own)."""
    stove, board = kitchen(1)
    device = TasmotaRelay(board, broker.port, topic="stove").start()
    cleanup.append(device)
    daemon = Daemon(
        config(tmp_path, broker, {"preset": "tasmota", "device": "stove"}, 1, pulse_s=1.0)
    ).start()
    cleanup.append(daemon)
    daemon.wait_reconciled()
    device.go_offline()
    wait_for(lambda: daemon.status("left")["mode"] == "fault", 10, daemon.log)
    first = daemon.request({"action": "shutoff", "burner": "left", "wait": "accepted"})
    assert first["burners"][0]["joined"] is False
    time.sleep(2.5)  # well past the pulse (1 s) the first attempt asked the device for
    assert stove.burners["left"].flame  # still failing
    second = daemon.request({"action": "shutoff", "burner": "left", "wait": "accepted"})
    assert second["burners"][0]["joined"] is True, second
    device.come_back()
    wait_for(lambda: not stove.burners["left"].flame, 15, daemon.log)
    wait_for(lambda: daemon.status("left")["mode"] == "ready", 10, daemon.log)
    time.sleep(2.0)  # a second pulse would come now
    cuts = [e for e in daemon.events() if e["kind"] == "cut_confirmed"]
    assert len(cuts) == 1, cuts
    assert board.get(1) is False


def test_device_side_pulse_restores_if_the_daemon_dies(tmp_path, broker, cleanup) -> None:
    stove, board = kitchen(1)
    device = ShellyGen2Relay(board, broker.port, prefix="shelly").start()
    cleanup.append(device)
    daemon = Daemon(
        config(tmp_path, broker, {"preset": "shelly_gen2", "device": "shelly"}, 1)
    ).start()
    cleanup.append(daemon)
    daemon.wait_reconciled()
    assert daemon.cli("off", "left", "--no-wait").returncode == 0
    daemon.kill()
    assert board.get(1) is True
    wait_for(lambda: board.get(1) is False, 3)  # toggle_after did it
    assert not stove.burners["left"].flame


def test_button_press_on_the_device_is_a_shutoff_and_a_lock_is_reasserted(
    tmp_path, broker, cleanup
) -> None:
    stove, board = kitchen(2)
    device = TasmotaRelay(board, broker.port, topic="stove").start()
    cleanup.append(device)
    daemon = Daemon(
        config(
            tmp_path,
            broker,
            {"preset": "tasmota", "device": "stove", "channels": 2},
            2,
            pulse_s=1.0,
        )
    ).start()
    cleanup.append(daemon)
    daemon.wait_reconciled()
    # Someone presses the relay's own button (or its web UI): channel 1 on = cut.
    with device._lock:
        device._switch(1, True)
    wait_for(lambda: board.get(1) is False, 6, daemon.log)
    assert daemon.status("left")["last_shutoff"]["source"] == "mqtt"
    assert not stove.burners["left"].flame
    # A lock survives the relay's power cycle.
    assert daemon.cli("lock", "right").returncode == 0
    device.power_cycle()
    wait_for(lambda: board.get(2) is True, 8, daemon.log)
    wait_for(lambda: "lock_reasserted" in [e["kind"] for e in daemon.events()], 5, daemon.log)


def test_lock_clears_a_stored_pulse_time_so_it_holds(tmp_path, broker, cleanup) -> None:
    _stove, board = kitchen(1)
    device = TasmotaRelay(board, broker.port, topic="stove").start()
    cleanup.append(device)
    daemon = Daemon(config(tmp_path, broker, {"preset": "tasmota", "device": "stove"}, 1)).start()
    cleanup.append(daemon)
    daemon.wait_reconciled()
    assert daemon.cli("off", "left").returncode == 0  # leaves PulseTime1 set in the device
    assert device.pulse_time[1] > 0
    assert daemon.cli("lock", "left").returncode == 0
    assert device.pulse_time[1] == 0
    time.sleep(1.5)
    assert board.get(1) is True


def test_python_m_hardware_runs_a_kitchen_the_daemon_can_shut_off(
    tmp_path, broker, cleanup
) -> None:
    import subprocess
    import sys

    kitchen_proc = subprocess.Popen(
        [sys.executable, "-m", "hardware", "--port", str(broker.port), "--seconds", "30"],
        stdout=subprocess.PIPE,
        text=True,
    )
    cleanup.append(type("P", (), {"stop": staticmethod(kitchen_proc.kill)}))
    lines = []
    while not lines or not lines[-1].startswith("      - {id: right"):
        lines.append(kitchen_proc.stdout.readline().rstrip("\n"))
    snippet = "\n".join(lines[1:])
    data = yaml.safe_load(snippet)
    data["state_dir"] = str(tmp_path / "state")
    data["socket"] = str(tmp_path / "ctl.sock")
    path = tmp_path / "k.yaml"
    path.write_text(yaml.safe_dump(data))
    watcher = Watcher(broker.port, ["kitchen-sensors/#"])
    cleanup.append(type("C", (), {"stop": staticmethod(watcher.close)}))
    mv = float(watcher.wait("kitchen-sensors/sensor/left_thermocouple/state").payload)
    assert mv > 20  # a hot thermocouple in a lit burner
    daemon = Daemon(path).start()
    cleanup.append(daemon)
    daemon.wait_reconciled()
    assert daemon.cli("off", "left").returncode == 0
    status_line = next(
        line for line in iter(kitchen_proc.stdout.readline, "") if "left: out valve=closed" in line
    )
    assert "right: LIT" in status_line
