"""The MQTT interface of the real daemon, against a real Mosquitto (real time)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import pytest
import yaml

from tests.broker import Mosquitto
from tests.daemon import Daemon, kitchen_config, wait_for
from tests.mqtt_watch import Watcher

pytestmark = pytest.mark.hil

BASE = "stove_ctl/kitchen"


@pytest.fixture
def watcher(broker: Mosquitto):
    w = Watcher(broker.port)
    yield w
    w.close()


def mqtt_section(broker: Mosquitto, **extra: object) -> dict:
    return {"host": "127.0.0.1", "port": broker.port, **extra}


def retained(broker: Mosquitto, topic: str) -> bytes:
    """The retained message on a topic, as a newcomer receives it."""
    late = Watcher(broker.port, [topic])
    try:
        message = late.wait(topic, timeout_s=5)
        assert message.retain
        return bytes(message.payload)
    finally:
        late.close()


def online(watcher: Watcher) -> None:
    watcher.wait(f"{BASE}/availability", lambda m: m.payload == b"online")


def test_shutoff_by_mqtt_command_with_result_state_and_events(
    tmp_path, broker, watcher, daemons
) -> None:
    daemon = daemons(kitchen_config(tmp_path, pulse_s=1.0, mqtt=mqtt_section(broker)))
    online(watcher)
    watcher.publish(f"{BASE}/cmd", {"id": "c-1", "action": "shutoff", "burner": "left"})
    result = watcher.wait_json(f"{BASE}/result", lambda r: r["id"] == "c-1")
    assert result["ok"] is True and result["burners"][0]["burner"] == "kitchen/left"
    assert result["burners"][0]["cut_at"] is not None
    assert daemon.relay_outputs()["1"] is True  # cut
    state = watcher.wait_json(
        f"{BASE}/state",
        lambda s: s["burners"]["left"]["last_shutoff"]["outcome"] == "restored",
    )
    assert state["burners"]["left"]["flame"] == "out"
    assert state["burners"]["right"]["flame"] == "lit"
    assert daemon.relay_outputs()["1"] is False  # restored
    kinds = [e["kind"] for e in watcher.json(f"{BASE}/events")]
    assert {"cut_commanded", "cut_confirmed", "restore_confirmed"} <= set(kinds)
    assert all(m.retain is False for m in watcher.on(f"{BASE}/events"))
    # The state is retained: a newcomer gets it at once.
    late = Watcher(broker.port, [f"{BASE}/state"])
    try:
        retained = late.wait(f"{BASE}/state")
        assert retained.retain and json.loads(retained.payload)["burners"]["left"]["flame"] == "out"
    finally:
        late.close()
    assert daemon.status("left")["last_shutoff"]["source"] == "mqtt"


def test_v5_request_reply_honours_response_topic_and_correlation(
    tmp_path, broker, watcher, daemons
) -> None:
    daemons(kitchen_config(tmp_path, mqtt=mqtt_section(broker)))
    online(watcher)
    watcher.publish(
        f"{BASE}/cmd",
        {"id": "q-7", "action": "status"},
        ResponseTopic="app/replies/42",
        CorrelationData=b"corr-xyz",
    )
    reply = watcher.wait("app/replies/42")
    assert json.loads(reply.payload)["id"] == "q-7"
    assert reply.properties.CorrelationData == b"corr-xyz"
    assert not watcher.on(f"{BASE}/result")


def test_v311_client_gets_results_on_the_result_topic(tmp_path, broker, daemons) -> None:
    daemons(kitchen_config(tmp_path, mqtt=mqtt_section(broker, protocol="3.1.1")))
    old = Watcher(broker.port, v5=False)
    try:
        online(old)
        old.publish(f"{BASE}/cmd", {"id": "v3", "action": "lock", "burner": "right"})
        result = old.wait_json(f"{BASE}/result", lambda r: r["id"] == "v3")
        assert result["ok"] and result["burners"][0]["confirmed"]
    finally:
        old.close()


def test_home_assistant_discovery_and_resend_on_ha_online(
    tmp_path, broker, watcher, daemons
) -> None:
    daemons(kitchen_config(tmp_path, mqtt=mqtt_section(broker)))
    online(watcher)
    wait_for(lambda: len(watcher.on("homeassistant/+/+/+/config")) >= 18, 10)
    # (An empty config is a clear: the lock switch an earlier version published.)
    configs = {
        m.topic: json.loads(m.payload)
        for m in watcher.on("homeassistant/+/+/+/config")
        if m.payload
    }
    late = Watcher(broker.port, ["homeassistant/#"])  # retained: a newcomer gets them all
    try:
        wait_for(lambda: len(late.on("homeassistant/+/+/+/config")) >= 18, 5)
        assert all(m.retain and m.payload for m in late.on("homeassistant/+/+/+/config"))
    finally:
        late.close()
    components = sorted(t.split("/")[1] for t in configs)
    assert components == sorted(
        ["binary_sensor"] * 6 + ["button", "event", "lock", "number"] * 2 + ["sensor"] * 4
    )
    unique_ids = [c["unique_id"] for c in configs.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    for config in configs.values():
        assert config["availability"] == [
            {"topic": "stove_ctl/availability"},
            {"topic": f"{BASE}/availability"},
        ]
        assert config["availability_mode"] == "all"
        assert config["device"]["identifiers"] == ["stove_ctl_kitchen"]
        assert {"name", "manufacturer", "model", "sw_version"} <= set(config["device"])
        assert config["origin"]["name"] == "stove-ctl"
    button = configs["homeassistant/button/stove_ctl_kitchen/left_shutoff/config"]
    assert button["command_topic"] == f"{BASE}/cmd"
    assert json.loads(button["payload_press"]) == {"action": "shutoff", "burner": "left"}
    # Pressing the HA button is a shutoff.
    watcher.publish(button["command_topic"], button["payload_press"])
    watcher.wait_json(f"{BASE}/result", lambda r: r["action"] == "shutoff" and r["ok"])

    watcher.clear()
    watcher.publish("homeassistant/status", "online")
    wait_for(lambda: len(watcher.on("homeassistant/+/+/+/config")) >= 18, 10)


def test_broker_restart_reconnects_resubscribes_and_republishes(tmp_path, broker, daemons) -> None:
    daemon = daemons(kitchen_config(tmp_path, mqtt=mqtt_section(broker)))
    first = Watcher(broker.port)
    online(first)
    first.close()
    broker.restart(down_s=1.0)  # no persistence: every retained message is gone
    watcher = Watcher(broker.port)
    try:
        online(watcher)  # availability republished
        watcher.wait(f"{BASE}/state", timeout_s=15)
        wait_for(lambda: len(watcher.on("homeassistant/+/+/+/config")) >= 18, 15)
        watcher.publish(f"{BASE}/cmd", {"id": "after", "action": "lock", "burner": "left"})
        result = watcher.wait_json(f"{BASE}/result", lambda r: r["id"] == "after")
        assert result["ok"]
        assert daemon.status("left")["mode"] == "locked"
    finally:
        watcher.close()


def test_last_will_on_kill_and_offline_on_clean_shutdown(
    tmp_path, broker, watcher, daemons
) -> None:
    config = kitchen_config(tmp_path, mqtt=mqtt_section(broker))
    daemon = daemons(config)
    online(watcher)
    watcher.clear()
    daemon.stop()
    # A clean stop: the stove, then the daemon (every stove of it) offline.
    watcher.wait(f"{BASE}/availability", lambda m: m.payload == b"offline")
    watcher.wait("stove_ctl/availability", lambda m: m.payload == b"offline")
    assert retained(broker, f"{BASE}/availability") == b"offline"
    assert retained(broker, "stove_ctl/availability") == b"offline"
    daemon = daemons(config)
    online(watcher)
    watcher.wait("stove_ctl/availability", lambda m: m.payload == b"online")
    watcher.clear()
    daemon.kill()
    # Killed: the broker sends the daemon's last will. The stove's own topic still
    # says online (one connection has one will); Home Assistant needs both online.
    watcher.wait("stove_ctl/availability", lambda m: m.payload == b"offline", timeout_s=10)
    assert retained(broker, "stove_ctl/availability") == b"offline"
    assert retained(broker, f"{BASE}/availability") == b"online"


def test_retained_and_stale_unlocks_are_refused(tmp_path, broker, watcher, daemons) -> None:
    trusting = kitchen_config(tmp_path, mqtt=mqtt_section(broker))
    text = trusting.read_text() + "trust:\n  unlock_sources: [cli, mqtt]\n  max_command_age_s: 30\n"
    trusting.write_text(text)
    daemon = daemons(trusting)
    online(watcher)
    watcher.publish(f"{BASE}/cmd", {"id": "l", "action": "lock", "burner": "left"})
    watcher.wait_json(f"{BASE}/result", lambda r: r["id"] == "l" and r["ok"])
    cases = [
        ({"id": "r1", "action": "unlock", "burner": "left", "ts": time.time()}, True, "stale"),
        (
            {"id": "r2", "action": "unlock", "burner": "left", "ts": time.time() - 120},
            False,
            "stale",
        ),
        ({"id": "r3", "action": "unlock", "burner": "left"}, False, "stale"),
    ]
    for payload, retain, code in cases:
        watcher.publish(f"{BASE}/cmd", payload, retain=retain)
        reply = watcher.wait_json(f"{BASE}/result", lambda r, i=payload["id"]: r["id"] == i)
        assert reply["ok"] is False and reply["code"] == code, reply
        if retain:
            watcher.publish(f"{BASE}/cmd", b"", retain=True)  # clear the retained message
    assert daemon.status("left")["mode"] == "locked"
    assert daemon.relay_outputs()["1"] is True
    # A fresh, live unlock from an allowed source works: the refusals were about freshness.
    watcher.publish(
        f"{BASE}/cmd", {"id": "ok", "action": "unlock", "burner": "left", "ts": time.time()}
    )
    assert watcher.wait_json(f"{BASE}/result", lambda r: r["id"] == "ok")["ok"] is True
    wait_for(lambda: daemon.status("left")["mode"] == "ready", 5)


def test_unlock_over_mqtt_is_refused_by_default(tmp_path, broker, watcher, daemons) -> None:
    daemon = daemons(kitchen_config(tmp_path, mqtt=mqtt_section(broker)))
    online(watcher)
    assert daemon.cli("lock", "left").returncode == 0
    watcher.publish(
        f"{BASE}/cmd", {"id": "u", "action": "unlock", "burner": "left", "ts": time.time()}
    )
    reply = watcher.wait_json(f"{BASE}/result", lambda r: r["id"] == "u")
    assert reply["code"] == "not_allowed"
    assert daemon.cli("unlock", "left").returncode == 0  # the CLI may
    assert daemon.status("left")["mode"] == "ready"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b'["shutoff"]', "bad_command"),
        (b'{"action": "explode"}', "unknown_action"),
        (b'{"action": "shutoff", "burner": "middle"}', "unknown_burner"),
        (b'{"action": "shutoff", "burner": 5}', "bad_command"),
        (b'{"action": "shutoff", "extra": 1}', "bad_command"),
        (b'{"action": "shutoff", "pad": "' + b"x" * 5000 + b'"}', "too_large"),
        (b"[" * 2000 + b"]" * 2000, "bad_json"),  # deeper than the JSON parser recurses
    ],
)
def test_bad_commands_get_an_error_and_change_nothing(
    tmp_path, broker, watcher, daemons, payload, code
) -> None:
    daemon = daemons(kitchen_config(tmp_path, mqtt=mqtt_section(broker)))
    online(watcher)
    before = daemon.relay_outputs()
    watcher.publish(f"{BASE}/cmd", payload)
    reply = watcher.wait_json(f"{BASE}/result", lambda r: r["ok"] is False)
    assert reply["code"] == code and reply["error"]
    time.sleep(0.3)
    assert daemon.relay_outputs() == before
    assert not [e for e in daemon.events() if e["kind"].startswith("cut")]
    assert daemon.proc.poll() is None and daemon.status("left")["mode"] == "ready"


def test_daemon_runs_and_cuts_with_no_broker(tmp_path, daemons) -> None:
    from tests.broker import free_port

    daemon = daemons(kitchen_config(tmp_path, mqtt={"host": "127.0.0.1", "port": free_port()}))
    assert daemon.cli("off", "left").returncode == 0
    assert daemon.status("left")["flame"] == "out"


def test_text_commands_and_timer_actions_over_mqtt(tmp_path, broker, watcher, daemons) -> None:
    daemon = daemons(kitchen_config(tmp_path, mqtt=mqtt_section(broker)))
    online(watcher)
    watcher.publish(f"{BASE}/cmd/text", "十分钟后关右灶")
    reply = watcher.wait_json(f"{BASE}/result", lambda r: r.get("action") == "timer")
    assert reply["ok"] and reply["understood"] == {
        "action": "timer",
        "burner": "kitchen/right",
        "in": 600,
    }
    timer_id = reply["timer"]["id"]
    state = watcher.wait_json(
        f"{BASE}/state", lambda s: s["burners"]["right"]["next_cut"] is not None
    )
    assert state["burners"]["left"]["next_cut"] is None
    watcher.publish(f"{BASE}/cmd/text", json.dumps({"id": "tx", "text": "关掉中间的火"}))
    bad = watcher.wait_json(f"{BASE}/result", lambda r: r.get("id") == "tx")
    assert bad["ok"] is False and bad["code"] == "unknown_burner"
    watcher.publish(
        f"{BASE}/cmd", {"id": "c", "action": "cancel", "timer": timer_id, "ts": time.time()}
    )
    assert watcher.wait_json(f"{BASE}/result", lambda r: r.get("id") == "c")["ok"]
    watcher.publish(f"{BASE}/cmd", {"id": "t", "action": "timer", "burner": "left", "in": "1s"})
    assert watcher.wait_json(f"{BASE}/result", lambda r: r.get("id") == "t")["ok"]
    wait_for(lambda: daemon.status("left")["flame"] == "out", 6, daemon.log)
    watcher.publish(
        f"{BASE}/cmd", {"id": "b", "action": "timer", "burner": "left", "in": "10 years"}
    )
    assert (
        watcher.wait_json(f"{BASE}/result", lambda r: r.get("id") == "b")["code"] == "bad_command"
    )


def test_a_building_of_stoves_is_one_broker_connection(tmp_path, broker, cleanup) -> None:
    """300 stoves (600 burners) under a limit of 64 open files: one connection per
    stove would need 300. Every stove is online, its commands work, and the daemon
    holds one socket to the broker."""
    stoves = 300
    data = yaml.safe_load(kitchen_config(tmp_path).read_text())
    data["relays"] = {
        f"r{i}": {"driver": "simulated", "channels": 2, "start_lit": True} for i in range(stoves)
    }
    data["stoves"] = [
        {
            "id": f"s{i}",
            "burners": [
                {"id": f"b{n}", "relay": {"device": f"r{i}", "channel": n}, "pulse_s": 0.5}
                for n in (1, 2)
            ],
        }
        for i in range(stoves)
    ]
    data["mqtt"] = mqtt_section(broker)
    config = tmp_path / "building.yaml"
    config.write_text(yaml.safe_dump(data))
    watcher = Watcher(broker.port, ["stove_ctl/+/availability", "stove_ctl/s299/result"])
    cleanup.append(Closing(watcher))
    daemon = Daemon(config, prefix=["prlimit", "--nofile=64:64"])
    cleanup.append(daemon)
    daemon.start(timeout_s=60)

    def online_stoves() -> set[str]:
        return {m.topic for m in watcher.on("stove_ctl/+/availability") if m.payload == b"online"}

    wait_for(
        lambda: len(online_stoves()) >= stoves,
        30,
        lambda: f"{len(online_stoves())} online of {len(watcher.messages)} messages",
    )
    watcher.publish("stove_ctl/s299/cmd", {"id": "far", "action": "shutoff", "burner": "b2"})
    result = watcher.wait_json("stove_ctl/s299/result", lambda r: r["id"] == "far")
    assert result["ok"] and result["burners"][0]["burner"] == "s299/b2", result
    assert result["burners"][0]["cut_at"] is not None
    assert daemon.proc is not None
    peers = broker_sockets(daemon.proc.pid, broker.port)
    assert peers == 1, f"{peers} connections to the broker"


class Closing:
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def stop(self) -> None:
        self.watcher.close()


def broker_sockets(pid: int, port: int) -> int:
    """How many TCP connections process ``pid`` holds to ``port`` on loopback."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == port and fields[9] in inodes and fields[3] == "01":  # ESTABLISHED
            count += 1
    return count
