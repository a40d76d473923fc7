"""The real daemon process and the real CLI, against the simulated kitchen.

These run in real time (marked ``hil``); each is bounded by short pulses and
explicit timeouts.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon import cli_no_config, kitchen_config, wait_for

pytestmark = pytest.mark.hil


def test_off_status_and_events_from_the_users_side(tmp_path: Path, daemons) -> None:
    daemon = daemons(kitchen_config(tmp_path, pulse_s=1.0))
    assert daemon.status("left")["flame"] == "lit"

    off = daemon.cli("off", "left")
    assert off.returncode == 0, off.stderr
    assert off.stdout.startswith("kitchen/left: shut off: cut at ")
    assert "restored at" in off.stdout

    status = daemon.cli("status")
    assert status.returncode == 0
    left_row = next(line for line in status.stdout.splitlines() if line.startswith("kitchen/left"))
    assert left_row.split()[1:5] == ["ready", "out", "intact", "-"]
    assert "by cli: cut " in left_row and "restored " in left_row
    left = daemon.status("left")
    shutoff = left["last_shutoff"]
    assert shutoff["restored_at"] - shutoff["cut_at"] >= 1.0
    assert daemon.status("right")["flame"] == "lit"
    assert daemon.relay_outputs() == {"1": False, "2": False}

    events = daemon.cli("events")
    assert events.returncode == 0
    kinds = [line.split()[2] for line in events.stdout.splitlines()]
    assert kinds == [
        "daemon_start",
        "command",
        "cut_commanded",
        "cut_confirmed",
        "flame_out_confirmed",
        "restore_commanded",
        "restore_confirmed",
    ]
    assert " ms " in events.stdout  # latencies are shown


def test_events_follow_streams_new_events(tmp_path: Path, daemons) -> None:
    daemon = daemons(kitchen_config(tmp_path, pulse_s=0.5))
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stove_ctl",
            "events",
            "--follow",
            "-n",
            "1",
            "-c",
            str(daemon.config),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = follower.stdout.readline()
        assert "daemon_start" in first
        assert daemon.cli("off", "right").returncode == 0
        lines = [follower.stdout.readline() for _ in range(6)]
        assert [line.split()[2] for line in lines] == [
            "command",
            "cut_commanded",
            "cut_confirmed",
            "flame_out_confirmed",
            "restore_commanded",
            "restore_confirmed",
        ]
    finally:
        follower.kill()
        follower.wait(timeout=10)


def test_sigkill_mid_pulse_then_restart_leaves_the_burner_restored(tmp_path: Path, daemons) -> None:
    config = kitchen_config(tmp_path, pulse_s=10.0)
    daemon = daemons(config)
    off = daemon.cli("off", "left", "--no-wait")
    assert off.returncode == 0 and "restore pending" in off.stdout
    assert daemon.relay_outputs()["1"] is True  # cut, mid-pulse
    daemon.kill()
    assert daemon.relay_outputs()["1"] is True  # nobody restored it

    again = daemons(config)
    # Held for a full pulse (10 s here) from the restart, then restored.
    wait_for(lambda: again.status("left")["circuit"] == "intact", 20, again.log)
    assert again.relay_outputs()["1"] is False
    restore = [e for e in again.events() if e["kind"] == "restore_confirmed"]
    assert restore[-1]["source"] == "startup"
    assert again.status("left")["last_shutoff"]["outcome"] == "restored"
    assert again.status("left")["mode"] == "ready"


def test_lock_survives_restarts_and_a_relay_power_cycle(tmp_path: Path, daemons) -> None:
    config = kitchen_config(tmp_path)
    daemon = daemons(config)
    lock = daemon.cli("lock", "right")
    assert lock.returncode == 0 and "locked, cut confirmed" in lock.stdout
    assert daemon.status("right")["flame"] == "out"
    assert daemon.stop() == 0

    again = daemons(config)
    assert again.status("right")["mode"] == "locked"
    assert again.relay_outputs()["2"] is True
    again.kill()

    # The relay loses power while the daemon is down: it comes back not cutting.
    (again.state_dir / "sim-relay-board.json").unlink()
    third = daemons(config)
    wait_for(lambda: third.relay_outputs().get("2") is True, 10, third.log)
    assert third.status("right")["mode"] == "locked"
    assert "lock_reasserted" in [e["kind"] for e in third.events()]

    unlock = third.cli("unlock", "right")
    assert unlock.returncode == 0 and "unlocked, circuit restored" in unlock.stdout
    assert third.relay_outputs()["2"] is False
    assert third.status("right")["mode"] == "ready"


def test_sigterm_mid_pulse_restores_before_exiting(tmp_path: Path, daemons) -> None:
    daemon = daemons(kitchen_config(tmp_path, pulse_s=2.0))
    assert daemon.cli("off", "all", "--no-wait").returncode == 0
    assert daemon.relay_outputs() == {"1": True, "2": True}
    assert daemon.stop() == 0
    assert daemon.relay_outputs() == {"1": False, "2": False}
    assert not daemon.socket.exists()


def test_bad_cli_input_is_one_line_exit_2_and_changes_nothing(tmp_path: Path, daemons) -> None:
    daemon = daemons(kitchen_config(tmp_path))
    before = daemon.relay_outputs()
    cases = [
        (
            ("off", "middle"),
            "stove-ctl: unknown burner 'middle' (burners: kitchen/left, kitchen/right)",
        ),
        (("lock", "oven"), "stove-ctl: unknown burner 'oven'"),
        (("off", "left", "right"), "unrecognized arguments: right"),
        (("lock",), "the following arguments are required: burner"),
        (("events", "-n", "0"), "must be between 1 and 10000, not 0"),
        (("events", "--burner", "nope"), "unknown burner 'nope'"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
    ]
    for args, message in cases:
        result = daemon.cli(*args)
        assert result.returncode == 2, (args, result)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)
    time.sleep(0.2)
    assert daemon.relay_outputs() == before
    kinds = [e["kind"] for e in daemon.events()]
    assert not [k for k in kinds if k.startswith("cut")]
    assert daemon.status("left")["mode"] == "ready" and daemon.proc.poll() is None


def test_no_daemon_is_one_line(tmp_path: Path) -> None:
    result = cli_no_config("status", env={"STOVE_CTL_SOCKET": str(tmp_path / "none.sock")})
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no daemon is running" in lines[0]
    # A socket left behind by a killed daemon reads the same.
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))
    result = cli_no_config("off", "left", env={"STOVE_CTL_SOCKET": str(stale)})
    assert result.returncode == 3 and "no daemon is running" in result.stderr


def test_second_daemon_on_the_same_state_is_refused(tmp_path: Path, daemons) -> None:
    config = kitchen_config(tmp_path)
    daemons(config)
    second = subprocess.run(
        [sys.executable, "-m", "stove_ctl", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 2
    assert "another stove-ctl daemon" in second.stderr


def test_after_an_unlock_status_no_longer_says_locked(tmp_path: Path, daemons) -> None:
    """A shutoff on a locked burner keeps the circuit cut (outcome "locked"); the
    unlock restores it, and the shutoff's record says so, with the time."""
    daemon = daemons(kitchen_config(tmp_path, pulse_s=0.5))
    assert daemon.cli("lock", "right").returncode == 0
    off = daemon.cli("off", "right")
    assert "burner is locked, circuit stays cut" in off.stdout, off.stdout
    locked = next(
        line for line in daemon.cli("status").stdout.splitlines() if line.startswith("kitchen/r")
    )
    assert locked.endswith("restored - (locked)"), locked
    unlock = daemon.cli("unlock", "right")
    assert unlock.returncode == 0 and "circuit restored" in unlock.stdout, unlock.stdout
    wait_for(lambda: daemon.status("right")["last_shutoff"]["outcome"] == "restored", 5)
    row = next(
        line for line in daemon.cli("status").stdout.splitlines() if line.startswith("kitchen/r")
    )
    assert "locked" not in row and row.split()[1:4] == ["ready", "out", "intact"], row
    shutoff = daemon.status("right")["last_shutoff"]
    assert shutoff["restored_at"] >= shutoff["cut_at"] + 0.5
    assert not row.endswith("restored -"), row


def test_events_are_read_from_the_file_when_no_daemon_answers(tmp_path, daemons) -> None:
    config = kitchen_config(tmp_path, pulse_s=0.5)
    daemon = daemons(config)
    assert daemon.cli("off", "left").returncode == 0
    assert daemon.cli("lock", "right").returncode == 0
    daemon.kill()  # a crash: no daemon_stop, the socket left behind
    out = daemon.cli("events", "-n", "100")
    assert out.returncode == 0, out.stderr
    assert f"(no daemon answers: read from {daemon.state_dir / 'events.db'})" in out.stderr
    assert "cut_confirmed" in out.stdout and "lock" in out.stdout
    left = daemon.cli("events", "--burner", "left", "--json")
    burners = {json.loads(line)["burner"] for line in left.stdout.splitlines()}
    assert left.returncode == 0 and burners == {"kitchen/left"}, left.stdout
    unknown = daemon.cli("events", "--burner", "oven")
    assert unknown.returncode == 2 and "unknown burner 'oven'" in unknown.stderr
    (daemon.state_dir / "events.db").rename(daemon.state_dir / "moved.db")
    gone = daemon.cli("events")
    assert gone.returncode == 1 and "cannot be read" in gone.stderr, gone.stderr
