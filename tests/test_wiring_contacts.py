"""Wiring vs relay: a wiring mode that needs a contact the relay does not have (nc_series
on a Shelly, whose relays have only a normally-open contact) is warned about in plain
words by check-config and at the daemon's start; a relay's config can state its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import hardware
from hardware.mqtt_devices import ShellyGen2Relay
from stove_ctl.config import load_config
from stove_ctl.drivers.mqtt_presets import PRESETS
from stove_ctl.errors import ConfigError
from tests.daemon import Daemon
from tests.miio_kitchen import RealTimeClock

TOKEN = "00112233445566778899aabbccddeeff"
RELAYS: dict[str, dict[str, Any]] = {
    "shelly": {"driver": "mqtt", "preset": "shelly_gen2", "device": "shellyplus1-hob"},
    "tasmota": {"driver": "mqtt", "preset": "tasmota", "device": "stove"},
    "zigbee2mqtt": {"driver": "mqtt", "preset": "zigbee2mqtt", "device": "stove_relay"},
    "esphome": {"driver": "mqtt", "preset": "esphome", "device": "stove-esp"},
    "generic": {
        "driver": "mqtt",
        "preset": "generic",
        "device": "diy",
        "command_topic": "diy/cmd",
        "state_topic": "diy/state",
    },
    "miio": {"driver": "miio", "host": "192.168.1.50", "token": TOKEN},
}


def write(tmp_path: Path, relay: str, wiring: str | None = None, **extra: Any) -> Path:
    burner: dict[str, Any] = {"id": "left", "relay": {"device": "r", "channel": 1}}
    if wiring is not None:
        burner["wiring"] = wiring
    data = {
        "state_dir": str(tmp_path / "state"),
        "socket": str(tmp_path / "ctl.sock"),
        "mqtt": {"host": "127.0.0.1", "port": 1883},
        "relays": {"r": {**RELAYS[relay], **extra}},
        "stoves": [{"id": "kitchen", "burners": [burner]}],
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)  # the miio relay's token: no warning about that
    return path


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stove_ctl", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_presets_state_what_their_hardware_has() -> None:
    assert PRESETS["shelly_gen2"].contacts == {"no"}
    # Tasmota, Zigbee2MQTT and ESPHome run on boards with either: unknown.
    assert [PRESETS[p].contacts for p in ("tasmota", "zigbee2mqtt", "esphome")] == [None] * 3


def test_check_config_warns_about_nc_series_on_a_shelly(tmp_path: Path) -> None:
    path = write(tmp_path, "shelly")  # wiring: the default, nc_series
    result = check_config(path)
    assert result.returncode == 0  # a warning, not an error
    assert f"{path}: ok (1 stove(s), 1 burner(s), 1 relay(s))" in result.stdout
    assert result.stderr == (
        f"warning: {path}: stoves[0].burners[0].wiring: kitchen/left is wired nc_series, "
        "which needs a normally-closed (NC) contact, but relay 'r' has only a normally-open "
        "(NO) one (preset shelly_gen2): wire its NO contact as no_parallel (across the "
        "thermocouple's terminals) or no_series and set wiring: to match "
        "(hardware/WIRING.md), or use a relay with an NC contact\n"
    )


@pytest.mark.parametrize(
    ("relay", "wiring", "extra"),
    [
        ("shelly", "no_series", {}),
        ("shelly", "no_parallel", {}),
        ("tasmota", "nc_series", {}),  # unknown: Tasmota runs on boards with either
        ("tasmota", None, {}),
        ("zigbee2mqtt", None, {}),
        ("esphome", None, {}),
        ("generic", None, {}),
        ("miio", None, {}),
        ("shelly", None, {"contacts": ["no", "nc"]}),  # a device that has both says so
    ],
)
def test_no_warning_where_the_wiring_can_be_built(
    tmp_path: Path, relay: str, wiring: str | None, extra: dict[str, Any]
) -> None:
    result = check_config(write(tmp_path, relay, wiring, **extra))
    assert result.returncode == 0 and "ok (" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("relay", "wiring", "contacts", "expected"),
    [
        (
            "tasmota",
            "nc_series",
            ["no"],
            "has only a normally-open (NO) one (its contacts: setting): wire its NO contact",
        ),
        (
            "miio",
            "no_parallel",
            ["nc"],
            "is wired no_parallel, which needs a normally-open (NO) contact, but relay 'r' "
            "has only a normally-closed (NC) one (its contacts: setting): wire its NC "
            "contact as nc_series and set wiring: to match (hardware/WIRING.md), or use a "
            "relay with an NO contact",
        ),
    ],
)
def test_a_relay_states_its_own_contacts(tmp_path: Path, relay, wiring, contacts, expected) -> None:
    path = write(tmp_path, relay, wiring, contacts=contacts)
    config = load_config(path)
    assert config.relays["r"].contacts == set(contacts)  # type: ignore[union-attr]
    warnings = config.wiring_warnings(str(path))
    assert len(warnings) == 1 and expected in warnings[0], warnings


@pytest.mark.parametrize(
    ("contacts", "expected"),
    [
        (
            "[no]",  # YAML's false
            'relays.r.contacts: write "no" in quotes: YAML reads a bare no as false',
        ),
        ("[]", "relays.r.contacts: frozenset should have at least 1 item"),
        ("[com]", "relays.r.contacts[0]: input should be 'no' or 'nc' (got 'com')"),
    ],
)
def test_bad_contacts_are_errors(tmp_path: Path, contacts: str, expected: str) -> None:
    path = write(tmp_path, "tasmota")
    path.write_text(
        path.read_text().replace("preset: tasmota", f"preset: tasmota\n    contacts: {contacts}")
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert any(expected in p for p in err.value.problems), err.value.problems
    result = check_config(path)
    assert result.returncode == 2 and expected in result.stderr


def test_contacts_only_on_real_relays(tmp_path: Path) -> None:
    path = write(tmp_path, "tasmota")
    data = yaml.safe_load(path.read_text())
    data["relays"]["r"] = {"driver": "simulated", "contacts": ["nc"]}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.problems == [f"{path}: relays.r: unknown field 'contacts'"]


@pytest.mark.hil
def test_daemon_warns_at_start_and_runs(tmp_path: Path, broker, cleanup) -> None:
    """The warning is in the daemon's log; it still starts and cuts (on = cut in both
    nc_series and no_parallel, so a Shelly wired across the terminals still works)."""
    stove = hardware.Stove(RealTimeClock())
    board = hardware.SimRelay(channels=1)
    burner = stove.add_burner("left", hardware.Wiring.NO_PARALLEL)
    board.attach(1, burner.contact)
    burner.light_and_hold()
    device = ShellyGen2Relay(board, broker.port, prefix="shellyplus1-hob").start()
    cleanup.append(device)
    path = write(tmp_path, "shelly", poll_s=0.3)
    data = yaml.safe_load(path.read_text())
    data["mqtt"].update(port=broker.port, discovery=False)
    data["stoves"][0]["burners"][0]["pulse_s"] = 1.0
    path.write_text(yaml.safe_dump(data))

    daemon = Daemon(path).start()
    cleanup.append(daemon)
    daemon.wait_reconciled()
    assert "is wired nc_series, which needs a normally-closed (NC) contact" in daemon.log()
    off = daemon.cli("off", "left")
    assert off.returncode == 0, off.stderr
    assert not burner.flame and not burner.valve_open
    assert daemon.stop() == 0
