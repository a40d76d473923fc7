"""SIGHUP reloads the config (the real daemon, in real time): a bad file changes
nothing; a good one keeps locks, timers and a shutoff in progress, and takes up burners
added and removed. The process log has one plain line per shutoff and lock."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemon import Daemon, kitchen_config, wait_for

pytestmark = pytest.mark.hil


def edit(config: Path, change: Any) -> None:
    data = yaml.safe_load(config.read_text())
    change(data)
    config.write_text(yaml.safe_dump(data))


def burners(daemon: Daemon) -> list[str]:
    return [b["burner"] for b in daemon.request({"action": "status"}).get("burners", [])]


def reloads(daemon: Daemon) -> list[dict[str, Any]]:
    return [e for e in daemon.events() if e["kind"] == "reload"]


def hup(daemon: Daemon) -> None:
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)


def test_a_bad_config_on_sighup_changes_nothing_and_says_so(tmp_path, daemons) -> None:
    config = kitchen_config(tmp_path)
    daemon = daemons(config)
    assert daemon.cli("lock", "left").returncode == 0
    good = config.read_text()
    for bad, why in [
        ("stoves: [\n", "config.yaml"),  # not YAML
        (good.replace("pulse_s: 2.0", "pulse_s: -1"), "pulse_s"),
        (good.replace(str(tmp_path / "state"), str(tmp_path / "elsewhere")), "state_dir"),
    ]:
        before = len(reloads(daemon))
        config.write_text(bad)
        hup(daemon)
        wait_for(lambda b=before: len(reloads(daemon)) > b, 10, daemon.log)
        event = reloads(daemon)[-1]
        assert event["detail"]["ok"] is False and why in event["detail"]["error"], event
        assert daemon.proc is not None and daemon.proc.poll() is None
        assert burners(daemon) == ["kitchen/left", "kitchen/right"]
        assert daemon.status("left")["mode"] == "locked"
    assert "reload refused, carrying on with the running config" in daemon.log()
    assert daemon.cli("off", "right").returncode == 0  # still serving
    config.write_text(good)


def test_a_good_config_on_sighup_keeps_locks_timers_and_a_pulse_in_progress(
    tmp_path, daemons
) -> None:
    config = kitchen_config(tmp_path, pulse_s=2.0)
    daemon = daemons(config)
    daemon.wait_reconciled()
    assert daemon.cli("lock", "left").returncode == 0
    assert daemon.cli("timer", "right", "3h").returncode == 0
    timer = daemon.request({"action": "timers"})["timers"][0]
    assert daemon.cli("off", "right", "--no-wait").returncode == 0
    wait_for(lambda: daemon.status("right")["circuit"] == "cut", 5, daemon.log)

    def grow(data: dict[str, Any]) -> None:  # a second stove; the kitchen loses nothing
        data["relays"]["hob"] = {"driver": "simulated", "channels": 1, "start_lit": True}
        data["stoves"].append(
            {"id": "flat2", "burners": [{"id": "hob", "relay": {"device": "hob", "channel": 1}}]}
        )

    edit(config, grow)
    hup(daemon)
    wait_for(lambda: "flat2/hob" in burners(daemon), 15, daemon.log)
    assert daemon.proc is not None and daemon.proc.poll() is None
    left = daemon.status("left")
    assert left["mode"] == "locked" and left["lock"]["source"] == "cli", left
    assert [t["id"] for t in daemon.request({"action": "timers"})["timers"]] == [timer["id"]]
    # The pulse under way when the signal came ended restored, as it would have anyway.
    wait_for(lambda: daemon.status("right")["mode"] == "ready", 10, daemon.log)
    right = daemon.status("right")
    assert right["circuit"] == "intact" and right["last_shutoff"]["outcome"] == "restored"
    assert daemon.relay_outputs()["1"] is True and daemon.relay_outputs()["2"] is False
    event = reloads(daemon)[-1]
    assert event["detail"] == {"ok": True, "added": ["flat2/hob"], "removed": []}

    def shrink(data: dict[str, Any]) -> None:
        data["stoves"][0]["burners"] = data["stoves"][0]["burners"][:1]  # right goes

    edit(config, shrink)
    hup(daemon)
    wait_for(lambda: burners(daemon) == ["kitchen/left", "flat2/hob"], 15, daemon.log)
    assert reloads(daemon)[-1]["detail"]["removed"] == ["kitchen/right"]
    assert daemon.status("left")["mode"] == "locked"
    assert daemon.cli("off", "flat2/hob").returncode == 0


def test_the_process_log_has_a_line_per_shutoff_and_lock_and_no_job_chatter(
    tmp_path, cleanup
) -> None:
    config = kitchen_config(tmp_path, pulse_s=0.5)
    daemon = Daemon(config, env={"JOURNAL_STREAM": "8:12345"}).start()
    cleanup.append(daemon)
    assert daemon.cli("off", "left").returncode == 0
    assert daemon.cli("lock", "right").returncode == 0
    assert daemon.cli("timer", "left", "2h").returncode == 0
    assert daemon.cli("unlock", "right").returncode == 0
    wait_for(lambda: "kitchen/right: unlock by cli" in daemon.log(), 5, daemon.log)
    lines = daemon.log().splitlines()
    assert sum("kitchen/left: cut confirmed by cli" in line for line in lines) == 1, lines
    assert sum("kitchen/right: lock by cli" in line for line in lines) == 1, lines
    assert not [line for line in lines if "Added job" in line or "Removed job" in line]
    # Under systemd the journal stamps each line: none of our own.
    assert all(line.startswith(("INFO ", "WARNING ", "ERROR ")) for line in lines), lines[:3]


def test_sighup_before_anything_else_does_not_kill_the_daemon(tmp_path, daemons) -> None:
    daemon = daemons(kitchen_config(tmp_path))
    for _ in range(3):
        hup(daemon)
        time.sleep(0.2)
    wait_for(lambda: len(reloads(daemon)) >= 1, 15, daemon.log)
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert daemon.request({"action": "status"})["ok"]
    assert os.path.exists(daemon.socket)
    assert daemon.stop() == 0
