"""``stove-ctl doctor`` asks every MQTT relay for its state through a real Mosquitto,
with simulated firmwares, and explains every silence; it never switches a relay."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import hardware
from hardware.mqtt_devices import EsphomeRelay, ShellyGen2Relay, TasmotaRelay, Zigbee2MqttRelay
from tests.broker import Mosquitto

pytestmark = pytest.mark.hil

READ_ONLY = "doctor never switches a relay"


def doctor(
    tmp_path: Path, broker: Mosquitto, relays: dict[str, dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI on a config with these MQTT relays, one burner on channel 1 of
    each (or on ``burner_channel``)."""
    burners = [
        {"id": f"b{k}", "relay": {"device": name, "channel": spec.pop("burner_channel", 1)}}
        for k, (name, spec) in enumerate(relays.items())
    ]
    data = {
        "state_dir": str(tmp_path / "state"),
        "socket": str(tmp_path / "ctl.sock"),
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "discovery": False},
        "relays": {name: {"driver": "mqtt", **spec} for name, spec in relays.items()},
        "stoves": [{"id": "kitchen", "burners": burners}],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return subprocess.run(
        [sys.executable, "-m", "stove_ctl", "doctor", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def section(stdout: str, relay: str) -> str:
    """The lines doctor printed for one relay."""
    lines = stdout.splitlines()
    start = lines.index(next(line for line in lines if line.startswith(f"relay {relay}: ")))
    end = next(
        (i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines)
    )
    return "\n".join(lines[start:end])


@pytest.fixture
def started():
    devices: list[Any] = []

    def start(device: Any) -> Any:
        devices.append(device.start())
        return device

    yield start
    for device in devices:
        device.stop()


def test_tasmota_that_answers_is_ok_with_its_state_and_is_only_read(
    tmp_path, broker, started
) -> None:
    board = hardware.SimRelay(channels=2)
    board.set(2, True)
    device = started(TasmotaRelay(board, broker.port, topic="stove"))
    result = doctor(
        tmp_path,
        broker,
        {"stove": {"preset": "tasmota", "device": "stove", "channels": 2, "burner_channel": 2}},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = section(result.stdout, "stove")
    assert out.startswith("relay stove: ok"), out
    assert "channel 2: answered the state query, reads on" in out, out
    assert READ_ONLY in out
    # Asked, never switched: every message the device got is an empty POWERn query.
    assert device.received, "doctor never asked the device"
    assert all(
        topic in ("cmnd/stove/POWER1", "cmnd/stove/POWER2") and payload == b""
        for topic, payload in device.received
    ), device.received
    assert ("cmnd/stove/POWER2", b"") in device.received
    assert board.get(1) is False and board.get(2) is True


def test_wrong_topic_is_explained_and_fails(tmp_path, broker, started) -> None:
    started(TasmotaRelay(hardware.SimRelay(channels=1), broker.port, topic="stove"))
    start = time.monotonic()
    result = doctor(tmp_path, broker, {"ghost": {"preset": "tasmota", "device": "Stove"}})
    assert result.returncode == 1, result.stdout + result.stderr
    out = section(result.stdout, "ghost")
    assert out.startswith("relay ghost: PROBLEM"), out
    assert "reached through the broker" not in result.stdout
    assert "no answer within 3 s to the state query on cmnd/Stove/POWER (empty payload)" in out
    assert "`Topic` is exactly 'Stove'" in out and "stat/Stove/POWER" in out, out
    assert "SetOption26 0" in out and "FullTopic" in out, out
    assert time.monotonic() - start < 15


def test_relays_are_asked_at_once(tmp_path, broker) -> None:
    """Four silent relays take one wait (3 s), not four (12 s)."""
    start = time.monotonic()
    result = doctor(
        tmp_path,
        broker,
        {f"ghost{n}": {"preset": "tasmota", "device": f"ghost{n}"} for n in range(4)},
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 1
    assert result.stdout.count(": PROBLEM") == 4, result.stdout
    assert elapsed < 9, elapsed


def test_shelly_answers_over_rpc_and_a_wrong_prefix_is_explained(tmp_path, broker, started) -> None:
    board = hardware.SimRelay(channels=2)
    board.set(1, True)
    shelly = started(ShellyGen2Relay(board, broker.port, prefix="shellyplus2pm-hob"))
    result = doctor(
        tmp_path,
        broker,
        {
            "hob": {"preset": "shelly_gen2", "device": "shellyplus2pm-hob", "channels": 2},
            "typo": {"preset": "shelly_gen2", "device": "shellyplus2pm-hub"},
        },
    )
    assert result.returncode == 1, result.stdout + result.stderr
    good = section(result.stdout, "hob")
    assert (
        good.startswith("relay hob: ok") and "channel 1: answered the state query, reads on" in good
    )
    bad = section(result.stdout, "typo")
    assert bad.startswith("relay typo: PROBLEM"), bad
    assert "Switch.GetStatus (switch id 0) on shellyplus2pm-hub/rpc" in bad, bad
    assert "MQTT prefix (topic_prefix) exactly 'shellyplus2pm-hub'" in bad
    assert "'RPC over MQTT' on (enable_rpc)" in bad
    methods = [json.loads(payload)["method"] for _, payload in shelly.received]
    assert methods and set(methods) == {"Switch.GetStatus"}, methods
    assert board.get(1) is True and board.get(2) is False


def test_zigbee2mqtt_and_esphome(tmp_path, broker, started) -> None:
    z_board = hardware.SimRelay(channels=2)
    z_board.set(2, True)
    z2m = started(
        Zigbee2MqttRelay(z_board, broker.port, name="hob", endpoints={1: "_l1", 2: "_l2"})
    )
    esp_board = hardware.SimRelay(channels=1)
    esp = started(EsphomeRelay(esp_board, broker.port, prefix="stove-esp"))
    result = doctor(
        tmp_path,
        broker,
        {
            "z": {
                "preset": "zigbee2mqtt",
                "device": "hob",
                "channels": 2,
                "endpoints": {1: "_l1", 2: "_l2"},
                "burner_channel": 2,
            },
            "zghost": {"preset": "zigbee2mqtt", "device": "Hob"},
            "esp": {"preset": "esphome", "device": "stove-esp"},
            "espghost": {"preset": "esphome", "device": "stove-esp", "names": {1: "relay"}},
        },
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "channel 2: answered the state query, reads on" in section(result.stdout, "z")
    zghost = section(result.stdout, "zghost")
    assert "zigbee2mqtt/Hob/get" in zghost and "friendly name is exactly 'Hob'" in zghost
    assert "mqtt.base_topic" in zghost
    assert section(result.stdout, "esp").startswith("relay esp: ok")
    assert "reads off (its last published state" in section(result.stdout, "esp")
    espghost = section(result.stdout, "espghost")
    assert espghost.startswith("relay espghost: PROBLEM")
    assert "no state on stove-esp/switch/relay/state" in espghost
    assert "object id is 'relay'" in espghost and "topic_prefix" in espghost
    assert all(topic == "zigbee2mqtt/hob/get" for topic, _ in z2m.received), z2m.received
    assert esp.received == []
    assert z_board.get(2) is True and esp_board.get(1) is False


def test_a_device_that_went_offline_says_so(tmp_path, broker, started) -> None:
    device = started(TasmotaRelay(hardware.SimRelay(channels=1), broker.port, topic="stove"))
    device.go_offline()  # the broker publishes its last will, retained
    time.sleep(0.5)
    result = doctor(tmp_path, broker, {"stove": {"preset": "tasmota", "device": "stove"}})
    assert result.returncode == 1
    out = section(result.stdout, "stove")
    assert "reports itself offline (tele/stove/LWT holds its last will)" in out, out


def test_no_broker_means_not_asked(tmp_path) -> None:
    gone = Mosquitto(tmp_path)  # never started: nothing listens on its port
    result = doctor(tmp_path, gone, {"stove": {"preset": "tasmota", "device": "stove"}})
    assert result.returncode == 1
    assert "connection refused" in result.stdout
    assert "not asked: the broker could not be used" in section(result.stdout, "stove")
