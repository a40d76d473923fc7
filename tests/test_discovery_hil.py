"""Home Assistant discovery from the real daemon, against a real Mosquitto (real time):
what a renamed or removed burner leaves behind, an earlier version's lock switch, and
two installations on one broker."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.broker import Mosquitto
from tests.daemon import kitchen_config, wait_for
from tests.mqtt_watch import Watcher

pytestmark = pytest.mark.hil

CONFIGS = "homeassistant/+/+/+/config"
PER_BURNER = 9  # button, lock, flame, mode, fault, self-test, next cut, timer, events


def retained_configs(broker: Mosquitto, settle_s: float = 1.0) -> dict[str, dict]:
    """Every retained discovery config on the broker, as a newcomer (Home Assistant
    starting) receives them; an empty retained payload is no message at all."""
    late = Watcher(broker.port, ["homeassistant/#"])
    try:
        time.sleep(settle_s)  # retained messages come right after the subscription
        return {m.topic: json.loads(m.payload) for m in late.on(CONFIGS) if m.payload}
    finally:
        late.close()


def config_with(tmp_path: Path, broker: Mosquitto, **mqtt: object) -> Path:
    return kitchen_config(tmp_path, mqtt={"host": "127.0.0.1", "port": broker.port, **mqtt})


def rename_right_burner(config: Path, new_id: str) -> None:
    data = yaml.safe_load(config.read_text())
    data["stoves"][0]["burners"][1]["id"] = new_id
    config.write_text(yaml.safe_dump(data))


def test_a_renamed_burner_leaves_no_entity_behind(tmp_path, broker, daemons) -> None:
    config = config_with(tmp_path, broker)
    daemon = daemons(config)
    wait_for(lambda: len(retained_configs(broker, 0.3)) == 2 * PER_BURNER, 15)
    gone = {t for t in retained_configs(broker) if "/right_" in t}
    assert len(gone) == PER_BURNER
    daemon.stop()
    rename_right_burner(config, "back")
    daemon = daemons(config)
    daemon.status("left")  # started
    wait_for(
        lambda: not any("/right_" in t for t in retained_configs(broker, 0.3)),
        15,
    )
    configs = retained_configs(broker)
    assert len(configs) == 2 * PER_BURNER
    assert {t.split("/")[3].split("_")[0] for t in configs} == {"left", "back"}
    remembered = json.loads((tmp_path / "state" / "discovery.json").read_text())
    assert set(remembered["published"]) == set(configs)
    assert gone <= set(remembered["removed"])
    # Home Assistant hears a removal only while connected: every time it comes online,
    # the removed entities are cleared again.
    watcher = Watcher(broker.port, ["homeassistant/#"])
    try:
        time.sleep(0.5)
        watcher.clear()
        watcher.publish("homeassistant/status", "online")
        wait_for(lambda: {m.topic for m in watcher.on(CONFIGS) if not m.payload} >= gone, 10)
    finally:
        watcher.close()


def test_a_first_run_removes_the_lock_switch_of_an_earlier_version(
    tmp_path, broker, daemons
) -> None:
    """Before the lock entity there was a lock *switch*; Home Assistant keeps it (and
    logs template errors about it) until its retained config is cleared."""
    old = "homeassistant/switch/stove_ctl_kitchen/left_lock/config"
    setter = Watcher(broker.port)
    try:
        setter.publish(old, {"name": "left lock", "command_topic": "x"}, retain=True)
        wait_for(lambda: old in retained_configs(broker, 0.3), 5)
    finally:
        setter.close()
    daemons(config_with(tmp_path, broker))
    wait_for(lambda: old not in retained_configs(broker, 0.3), 15)
    locks = [t for t in retained_configs(broker) if t.split("/")[1] == "lock"]
    assert sorted(locks) == [
        "homeassistant/lock/stove_ctl_kitchen/left_lock/config",
        "homeassistant/lock/stove_ctl_kitchen/right_lock/config",
    ]


def test_discovery_turned_off_removes_what_was_published(tmp_path, broker, daemons) -> None:
    config = config_with(tmp_path, broker)
    daemon = daemons(config)
    wait_for(lambda: len(retained_configs(broker, 0.3)) == 2 * PER_BURNER, 15)
    daemon.stop()
    data = yaml.safe_load(config.read_text())
    data["mqtt"]["discovery"] = False
    config.write_text(yaml.safe_dump(data))
    daemons(config).status("left")
    wait_for(lambda: retained_configs(broker, 0.3) == {}, 15)


def test_an_unreadable_memory_of_what_was_published_clears_nothing(
    tmp_path, broker, daemons
) -> None:
    """Bad input: a discovery.json that is not two lists of topics. The daemon says so,
    runs, publishes its entities, and clears nothing it cannot name."""
    other = "homeassistant/button/stove_ctl_kitchen/gone_shutoff/config"
    setter = Watcher(broker.port)
    try:
        setter.publish(other, {"name": "gone", "command_topic": "x"}, retain=True)
    finally:
        setter.close()
    state = tmp_path / "state"
    state.mkdir()
    (state / "discovery.json").write_text(json.dumps({"published": "not a list"}))
    daemon = daemons(config_with(tmp_path, broker))
    wait_for(lambda: len(retained_configs(broker, 0.3)) == 2 * PER_BURNER + 1, 15)
    assert other in retained_configs(broker)
    assert daemon.status("left")["mode"] == "ready"
    assert "is not two lists of topics" in daemon.log_path.read_text()


def test_two_installations_on_one_broker_are_two_devices(tmp_path, broker, daemons) -> None:
    """The same stove id under two base topics (a building's two flats, both "kitchen"):
    neither takes over the other's entities."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    daemons(config_with(first, broker))
    daemons(config_with(second, broker, base_topic="flat2"))  # client id: its own
    wait_for(lambda: len(retained_configs(broker, 0.3)) == 4 * PER_BURNER, 15)
    configs = retained_configs(broker)
    devices = {c["device"]["identifiers"][0] for c in configs.values()}
    assert devices == {"stove_ctl_kitchen", "flat2_kitchen"}
    unique_ids = [c["unique_id"] for c in configs.values()]
    assert len(set(unique_ids)) == len(unique_ids) == 4 * PER_BURNER
    for config in configs.values():
        base = "flat2" if config["device"]["identifiers"][0] == "flat2_kitchen" else "stove_ctl"
        topics = [v for k, v in config.items() if k.endswith("topic")]
        assert topics and all(t.startswith(f"{base}/kitchen/") for t in topics), config
