"""The sample Mosquitto ACL in docs/MQTT.md, loaded into a real Mosquitto: the daemon
works under it, and no other client may command stove-ctl or speak for the relay."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.broker import Mosquitto
from tests.daemon import Daemon, kitchen_config, wait_for
from tests.mqtt_watch import Watcher

pytestmark = pytest.mark.hil

DOC = Path(__file__).resolve().parent.parent / "docs" / "MQTT.md"
USERS = ("stove-ctl", "tasmota-stove", "kitchen-sensors", "homeassistant")
PASSWORD = "acl-test-pw"


def sample_acl() -> str:
    """The fenced block holding ``user stove-ctl`` (indented in a list item)."""
    lines = [line.strip() for line in DOC.read_text().splitlines()]
    fences = [n for n, line in enumerate(lines) if line.startswith("```")]
    for start, end in zip(fences[::2], fences[1::2], strict=False):
        if "user stove-ctl" in lines[start:end]:
            return "\n".join(lines[start + 1 : end]) + "\n"
    raise AssertionError("no sample ACL in docs/MQTT.md")


def test_the_sample_acl_keeps_other_clients_off_commands_and_relay_state(
    tmp_path, cleanup, record_property
) -> None:
    """Attempt: under docs/MQTT.md's sample ACL, Home Assistant's login sends a shutoff,
    forges the relay's state and switches the relay.
    Expected: the broker denies all three; the daemon and the relay work as before."""
    acl = tmp_path / "acl"
    acl.write_text(sample_acl())
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), USERS[0], PASSWORD], check=True)
    for user in USERS[1:]:
        subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, PASSWORD], check=True)
    broker = Mosquitto(tmp_path, password_file=passwords, options=[f"acl_file {acl}"]).start()
    cleanup.append(broker)
    (tmp_path / "mqtt.pw").write_text(PASSWORD + "\n")
    daemon = Daemon(
        kitchen_config(
            tmp_path,
            mqtt={
                "host": "127.0.0.1",
                "port": broker.port,
                "username": "stove-ctl",
                "password_file": "mqtt.pw",
                "discovery": False,
            },
        )
    ).start()
    cleanup.append(daemon)
    watchers = {
        user: Watcher(broker.port, topics, username=user, password=PASSWORD)
        for user, topics in (
            ("stove-ctl", ["stat/stove/#"]),
            ("homeassistant", ["stove_ctl/#"]),
            ("tasmota-stove", ["cmnd/stove/#"]),
        )
    }
    for watcher in watchers.values():
        cleanup.append(type("C", (), {"stop": staticmethod(watcher.close)}))
    ha = watchers["homeassistant"]
    # Home Assistant reads the daemon's state...
    ha.wait("stove_ctl/kitchen/availability", lambda m: m.payload == b"online")
    # ...but neither commands it nor speaks for the relay.
    ha.publish("stove_ctl/kitchen/cmd", {"id": "x", "action": "shutoff", "burner": "left"})
    ha.publish("stat/stove/POWER1", "ON")
    ha.publish("cmnd/stove/POWER1", "OFF")
    time.sleep(0.5)
    watchers["tasmota-stove"].publish("stat/stove/POWER1", "OFF")  # the device itself may
    watchers["stove-ctl"].wait("stat/stove/POWER1")
    time.sleep(0.5)
    assert [m.payload for m in watchers["stove-ctl"].on("stat/stove/#")] == [b"OFF"]
    assert watchers["tasmota-stove"].on("cmnd/stove/#") == []
    assert ha.on("stove_ctl/kitchen/result") == []
    commands = [e for e in daemon.events() if e["kind"] == "command"]
    assert commands == [], json.dumps(commands)
    wait_for(lambda: broker.log_path.read_text().count("Denied PUBLISH") >= 3, 5)
    # The daemon itself still works under the ACL: a shutoff from its own CLI.
    assert daemon.cli("off", "left").returncode == 0
    record_property("observed", "3 publishes denied by the broker; the daemon still cuts")
