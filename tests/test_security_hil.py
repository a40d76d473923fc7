"""Security checks (issue 6): trust by source and freshness for restore-direction
commands, secrets kept out of everything a user or another process can see, and a
warning when a config holding secrets is readable by others."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from tests.daemon import Daemon, cli_no_config, kitchen_config, miio_config, wait_for
from tests.miio_kitchen import TOKEN, miio_kitchen
from tests.mqtt_watch import Watcher
from tests.test_mqtt_security_hil import PASSWORD, password_broker

pytestmark = pytest.mark.hil

BASE = "stove_ctl/kitchen"


def with_trust(config: Path, **trust: object) -> Path:
    data = yaml.safe_load(config.read_text())
    data["trust"] = trust
    config.write_text(yaml.safe_dump(data))
    return config


def ask(watcher: Watcher, payload: dict, retain: bool = False) -> dict:
    watcher.publish(f"{BASE}/cmd", payload, retain=retain)
    reply = watcher.wait_json(f"{BASE}/result", lambda r: r["id"] == payload["id"])
    if retain:
        watcher.publish(f"{BASE}/cmd", b"", retain=True)  # clear it
    return reply


def test_cancel_and_snooze_from_a_disallowed_source_are_refused(tmp_path, broker, daemons) -> None:
    config = kitchen_config(tmp_path, mqtt={"host": "127.0.0.1", "port": broker.port})
    daemon = daemons(with_trust(config, cancel_sources=["cli"], snooze_sources=["cli"]))
    watcher = Watcher(broker.port, [f"{BASE}/#"])
    try:
        watcher.wait(f"{BASE}/availability", lambda m: m.payload == b"online")
        timer = ask(watcher, {"id": "t", "action": "timer", "burner": "left", "in": "10m"})
        assert timer["ok"], timer  # reducing gas: accepted from mqtt
        timer_id = timer["timer"]["id"]
        for n, payload in enumerate(
            [
                {"action": "cancel", "burner": "left"},
                {"action": "cancel", "timer": timer_id},
                {"action": "extend", "timer": timer_id, "in": "5m"},
                {"action": "snooze", "burner": "left", "in": "5m"},
            ]
        ):
            reply = ask(watcher, {"id": f"r{n}", "ts": time.time(), **payload})
            assert reply["ok"] is False and reply["code"] == "not_allowed", reply
        timers = daemon.request({"action": "timers"})["timers"]
        assert [t["id"] for t in timers] == [timer_id]
        assert timers[0]["in_s"] > 590  # not extended either
        # Spoken through `say` (source voice), the same cancel is refused too.
        said = daemon.cli("say", "取消定时")
        assert said.returncode == 2
        assert said.stderr == "stove-ctl: cancel is not accepted from voice (allowed: cli)\n"
        assert daemon.cli("cancel", timer_id).returncode == 0  # the CLI may
        assert daemon.request({"action": "timers"})["timers"] == []
    finally:
        watcher.close()


def test_retained_and_stale_cancels_are_refused(tmp_path, broker, daemons) -> None:
    daemons(kitchen_config(tmp_path, mqtt={"host": "127.0.0.1", "port": broker.port}))
    watcher = Watcher(broker.port, [f"{BASE}/#"])
    try:
        watcher.wait(f"{BASE}/availability", lambda m: m.payload == b"online")
        assert ask(watcher, {"id": "t", "action": "timer", "burner": "left", "in": "10m"})["ok"]
        cases = [
            ({"id": "c1", "action": "cancel", "burner": "left", "ts": time.time()}, True),
            ({"id": "c2", "action": "cancel", "burner": "left", "ts": time.time() - 600}, False),
            ({"id": "c3", "action": "cancel", "burner": "left", "ts": time.time() + 600}, False),
            ({"id": "c4", "action": "cancel", "burner": "left"}, False),
        ]
        for payload, retain in cases:
            reply = ask(watcher, payload, retain=retain)
            assert reply["ok"] is False and reply["code"] == "stale", (payload, reply)
        fresh = ask(watcher, {"id": "c5", "action": "cancel", "burner": "left", "ts": time.time()})
        assert fresh["ok"], fresh  # mqtt may cancel by default, when fresh and live
    finally:
        watcher.close()


def test_secrets_never_reach_logs_events_status_or_mqtt(tmp_path, cleanup) -> None:
    broker = password_broker(tmp_path)
    cleanup.append(broker)
    kitchen = miio_kitchen()
    cleanup.append(kitchen.sim)
    config = miio_config(tmp_path, kitchen.host, TOKEN, pulse_s=0.5)
    data = yaml.safe_load(config.read_text())
    data["mqtt"] = {
        "host": "127.0.0.1",
        "port": broker.port,
        "username": "stove",
        "password": PASSWORD,
    }
    data["log_level"] = "debug"
    config.write_text(yaml.safe_dump(data))
    config.chmod(0o600)
    spy = Watcher(broker.port, ["#"], username="stove", password=PASSWORD)
    cleanup.append(type("C", (), {"stop": staticmethod(spy.close)}))
    daemon = Daemon(config).start()
    cleanup.append(daemon)
    wait_for(lambda: "connected to broker" in daemon.log(), 10, daemon.log)
    assert daemon.cli("off", "left").returncode == 0
    assert daemon.cli("lock", "right").returncode == 0
    assert daemon.cli("unlock", "right").returncode == 0
    spy.publish(f"{BASE}/cmd", {"id": "m", "action": "status"})
    spy.wait_json(f"{BASE}/result", lambda r: r["id"] == "m")
    doctor = daemon.cli("doctor")
    seen = "\n".join(
        [
            daemon.log(),
            daemon.cli("status", "--json").stdout,
            daemon.cli("events", "--json", "-n", "1000").stdout,
            daemon.cli("check-config").stdout + daemon.cli("check-config").stderr,
            doctor.stdout + doctor.stderr,
            "\n".join(m.payload.decode(errors="replace") for m in spy.messages),
        ]
    )
    assert "debug" in daemon.log().lower() or "DEBUG" in daemon.log()  # the noisiest level
    assert "cut_confirmed" in seen
    for secret in (PASSWORD, TOKEN, TOKEN.upper(), bytes.fromhex(TOKEN).hex(" ")):
        assert secret not in seen, secret


def test_a_config_with_secrets_readable_by_others_is_warned_at_start(tmp_path, daemons) -> None:
    kitchen = miio_kitchen()
    try:
        config = miio_config(tmp_path, kitchen.host, TOKEN, pulse_s=0.5)
        config.chmod(0o644)
        check = cli_no_config("check-config", "-c", str(config))
        assert check.returncode == 0
        expected = (
            f"warning: {config} holds secrets (relays.stove-relay.token) and other users "
            f"can read it (mode 0644): run chmod 600 {config}"
        )
        assert expected in check.stderr.splitlines()
        daemon = daemons(config)
        assert f"WARNING stove_ctl: {expected.removeprefix('warning: ')}" in daemon.log()
        assert daemon.cli("off", "left").returncode == 0  # a warning, not a refusal
        daemon.stop()

        config.chmod(0o600)
        assert "warning" not in cli_no_config("check-config", "-c", str(config)).stderr
        # A token in a file of its own: the file is what must be private.
        data = yaml.safe_load(config.read_text())
        del data["relays"]["stove-relay"]["token"]
        data["relays"]["stove-relay"]["token_file"] = "token.txt"
        config.write_text(yaml.safe_dump(data))
        config.chmod(0o644)
        (tmp_path / "token.txt").write_text(TOKEN + "\n")
        os.chmod(tmp_path / "token.txt", 0o640)
        warned = cli_no_config("check-config", "-c", str(config)).stderr
        assert f"{tmp_path / 'token.txt'} (relays.stove-relay.token_file) is readable" in warned
        assert "mode 0640" in warned and str(config) + " holds" not in warned
        os.chmod(tmp_path / "token.txt", 0o600)
        assert "warning" not in cli_no_config("check-config", "-c", str(config)).stderr
    finally:
        kitchen.sim.stop()
