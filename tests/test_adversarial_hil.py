"""Issue 19: what a careless user or a hostile neighbour did to the real daemon, and
what must happen instead. Each test drives the daemon process through its real
interfaces (MQTT on a real Mosquitto, the CLI, the control socket, state_dir)."""

from __future__ import annotations

import json
import os
import shutil
import socket as socketlib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemon import Daemon, kitchen_config, wait_for
from tests.mqtt_watch import Watcher

pytestmark = pytest.mark.hil

KITCHEN = "stove_ctl/kitchen"
FLAT2 = "stove_ctl/flat2"


def two_stoves(tmp_path: Path, port: int, **trust: object) -> Path:
    """The kitchen (left, right) and flat2 (hob) on one three-channel board."""
    config = kitchen_config(tmp_path, mqtt={"host": "127.0.0.1", "port": port}, channels=3)
    data = yaml.safe_load(config.read_text())
    data["stoves"].append(
        {"id": "flat2", "burners": [{"id": "hob", "relay": {"device": "board", "channel": 3}}]}
    )
    if trust:
        data["trust"] = trust
    config.write_text(yaml.safe_dump(data))
    return config


def ask(watcher: Watcher, base: str, payload: dict | str, leaf: str = "cmd") -> dict:
    """Publish a command and wait for the reply that carries its id."""
    wanted = payload["id"] if isinstance(payload, dict) else json.loads(payload)["id"]
    before = len(watcher.on(f"{base}/result"))
    watcher.publish(f"{base}/{leaf}", payload)

    def reply() -> dict | None:
        replies = watcher.json(f"{base}/result")[before:]
        return next((r for r in replies if r.get("id") == wanted), None)

    return wait_for(reply, 10, lambda: str(watcher.json(f"{base}/result")[-5:]))


def online(watcher: Watcher, base: str = KITCHEN) -> None:
    watcher.wait(f"{base}/availability", lambda m: m.payload == b"online")


# -- 1. command ids -------------------------------------------------------------------


def test_a_reused_id_is_refused_and_a_redelivery_is_done_once(
    tmp_path, broker, daemons, record_property
) -> None:
    """Attempt: shutoff left as id "1" on kitchen/cmd, then lock right as id "1"; the
    shutoff redelivered; id "1" on flat2/cmd and on the control socket.
    Expected: the reuse is refused (duplicate_id) and right stays unlocked; the
    redelivery gets the first reply and makes no second cut; other channels' ids are
    their own."""
    daemon = daemons(two_stoves(tmp_path, broker.port))
    watcher = Watcher(broker.port, ["stove_ctl/#"])
    try:
        online(watcher)
        online(watcher, FLAT2)
        shutoff = {"id": "1", "action": "shutoff", "burner": "left"}
        first = ask(watcher, KITCHEN, shutoff)
        assert first["ok"] is True and first["action"] == "shutoff", first
        # The docs' own example id, reused for another command: refused, nothing done.
        reused = ask(watcher, KITCHEN, {"id": "1", "action": "lock", "burner": "right"})
        assert reused == {
            "id": "1",
            "ok": False,
            "code": "duplicate_id",
            "error": "id '1' was already used for a different command; "
            "give every command an id of its own",
        }
        right_after_reuse = daemon.status("right")["mode"]
        assert right_after_reuse == "ready"
        assert daemon.relay_outputs()["2"] is False
        # The same command delivered again: the first answer, and one shutoff only.
        again = ask(watcher, KITCHEN, shutoff)
        assert again == first
        cuts = [
            e
            for e in daemon.events()
            if e["kind"] == "cut_commanded" and e["burner"] == "kitchen/left"
        ]
        assert len(cuts) == 1, cuts
        # Another stove's topics have ids of their own.
        hob = ask(watcher, FLAT2, {"id": "1", "action": "lock", "burner": "hob"})
        assert hob["ok"] is True and hob["action"] == "lock", hob
        assert daemon.relay_outputs()["3"] is True
        # So does the control socket: id 1 there is new, and then taken.
        locked = daemon.request({"id": "1", "action": "lock", "burner": "right"})
        assert locked["ok"] is True and locked["action"] == "lock", locked
        refused = daemon.request({"id": "1", "action": "shutoff", "burner": "left"})
        assert refused["code"] == "duplicate_id", refused
        record_property(
            "observed",
            f"reuse: {reused['code']}, right {right_after_reuse}; "
            f"redelivery: same reply {again == first}, cuts {len(cuts)}; "
            f"flat2 id 1: {hob['action']} ok; socket reuse: {refused['code']}",
        )
    finally:
        watcher.close()


# -- 4. a stove's topics reach only its own burners --------------------------------------


def test_a_stoves_topics_address_only_its_own_burners(
    tmp_path, broker, daemons, record_property
) -> None:
    """Attempt: on kitchen/cmd, lock flat2/hob (and "flat2", "hob"), unlock it with mqtt
    allowed to unlock, cancel flat2's timer; "关火" on kitchen/cmd/text; status.
    Expected: unknown_burner / unknown_timer, flat2 untouched; "关火" cuts the kitchen's
    two burners only; status shows the kitchen only."""
    daemon = daemons(two_stoves(tmp_path, broker.port, unlock_sources=["cli", "mqtt"]))
    watcher = Watcher(broker.port, ["stove_ctl/#"])
    try:
        online(watcher)
        online(watcher, FLAT2)
        for n, burner in enumerate(["flat2/hob", "flat2", "hob"]):
            reply = ask(watcher, KITCHEN, {"id": f"x{n}", "action": "lock", "burner": burner})
            assert reply["ok"] is False and reply["code"] == "unknown_burner", reply
            assert "kitchen/left, kitchen/right)" in reply["error"]
        assert daemon.request({"action": "status"})["burners"][2]["lock"] is None
        assert daemon.relay_outputs().get("3", False) is False
        # Locked from its own topic, flat2's hob cannot be unlocked from the kitchen's.
        assert ask(watcher, FLAT2, {"id": "l", "action": "lock", "burner": "hob"})["ok"]
        unlock = {"id": "u", "action": "unlock", "burner": "flat2/hob", "ts": time.time()}
        assert ask(watcher, KITCHEN, unlock)["code"] == "unknown_burner"
        assert daemon.relay_outputs()["3"] is True
        # Nor can its timer be cancelled from there.
        timer = ask(watcher, FLAT2, {"id": "t", "action": "timer", "burner": "hob", "in": "1h"})
        cancel = {"id": "c", "action": "cancel", "timer": timer["timer"]["id"], "ts": time.time()}
        assert ask(watcher, KITCHEN, cancel)["code"] == "unknown_timer"
        assert len(daemon.request({"action": "timers"})["timers"]) == 1
        # "关火" on the kitchen's text topic is the kitchen's burners, not the building's.
        said = ask(watcher, KITCHEN, json.dumps({"id": "s", "text": "关火"}), "cmd/text")
        assert said["ok"] is True
        assert [b["burner"] for b in said["burners"]] == ["kitchen/left", "kitchen/right"]
        events = daemon.events()
        assert not [e for e in events if e["kind"] == "unlock"]
        hob_cuts = [
            e for e in events if e["kind"] == "cut_commanded" and e["burner"] == "flat2/hob"
        ]
        assert [e["command_id"] for e in hob_cuts] == ["l"]  # its own lock, nothing else
        # The kitchen's status shows the kitchen only, and flat2's event topic carried
        # none of the kitchen's commands, refusals or cuts.
        status = ask(watcher, KITCHEN, {"id": "st", "action": "status"})
        assert [b["burner"] for b in status["burners"]] == ["kitchen/left", "kitchen/right"]
        seen_by_flat2 = [(e["kind"], e["command_id"]) for e in watcher.json(f"{FLAT2}/events")]
        assert seen_by_flat2, "flat2 got its own events"
        assert all(cid in ("l", "t", None) for _, cid in seen_by_flat2), seen_by_flat2
        record_property(
            "observed",
            f"lock/unlock flat2 from kitchen: unknown_burner; cancel its timer: unknown_timer; "
            f"hob cuts: {[e['command_id'] for e in hob_cuts]} (its own lock only); "
            f"关火 cut {[b['burner'] for b in said['burners']]}; "
            f"flat2/events got only its own ({len(seen_by_flat2)} events)",
        )
    finally:
        watcher.close()


# -- 5. text over MQTT needs the same freshness as JSON ------------------------------------


def test_restore_direction_text_over_mqtt_needs_a_fresh_ts(
    tmp_path, broker, daemons, record_property
) -> None:
    """Attempt: with a timer set, cancel it by text on kitchen/cmd/text: ts 0, no ts,
    ts in the future, plain text with no ts at all.
    Expected: each refused as stale, the timer kept; a fresh ts cancels."""
    daemon = daemons(kitchen_config(tmp_path, mqtt={"host": "127.0.0.1", "port": broker.port}))
    watcher = Watcher(broker.port, ["stove_ctl/#"])
    try:
        online(watcher)
        assert ask(watcher, KITCHEN, {"id": "t", "action": "timer", "burner": "left", "in": "1h"})[
            "ok"
        ]
        stale = [
            json.dumps({"id": "a", "text": "cancel the timer", "ts": 0}),
            json.dumps({"id": "b", "text": "取消定时"}),
            json.dumps({"id": "d", "text": "取消定时", "ts": time.time() + 600}),
        ]
        for payload in stale:
            reply = ask(watcher, KITCHEN, payload, "cmd/text")
            assert reply["ok"] is False and reply["code"] == "stale", reply
        # Plain text carries no time at all: refused the same way.
        before = len(watcher.on(f"{KITCHEN}/result"))
        watcher.publish(f"{KITCHEN}/cmd/text", "取消定时")
        plain = wait_for(lambda: watcher.json(f"{KITCHEN}/result")[before:], 10)[0]
        assert plain["ok"] is False and plain["code"] == "stale", plain
        assert "must carry ts" in plain["error"]
        timers = daemon.request({"action": "timers"})["timers"]
        assert len(timers) == 1 and timers[0]["in_s"] < 3600  # neither cancelled nor extended
        # Fresh, the same words work; bad fields are refused with a clear error.
        bad = ask(
            watcher, KITCHEN, json.dumps({"id": "e", "text": "取消定时", "ts": "now"}), "cmd/text"
        )
        assert bad["ok"] is False and bad["code"] == "bad_command", bad
        extra = json.dumps({"id": "f", "text": "取消定时", "ts": time.time(), "as": "cli"})
        assert ask(watcher, KITCHEN, extra, "cmd/text")["error"] == "unknown field 'as'"
        fresh = json.dumps({"id": "g", "text": "取消定时", "ts": time.time()})
        assert ask(watcher, KITCHEN, fresh, "cmd/text")["ok"] is True
        assert daemon.request({"action": "timers"})["timers"] == []
        record_property(
            "observed", f"stale cancels refused ({plain['code']}), timer kept; fresh one cancels"
        )
    finally:
        watcher.close()


# -- 2, 3. a damaged state file or timer store fails closed, and says so ---------------------


def saved_locks(path: Path) -> dict[str, Any]:
    """The locks in a stopped daemon's state store, read as another program would."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT key, lock FROM burners WHERE lock IS NOT NULL").fetchall()
    finally:
        db.close()
    return {key: json.loads(lock) for key, lock in rows}


def damage(path: Path, how: str) -> bytes | None:
    """Damage a file the way a power cut or a careless hand does; returns what it holds."""
    if how == "directory":
        path.unlink()
        path.mkdir()
        return None
    whole = path.read_bytes()
    content = {
        "garbage": b"{broken",
        "empty": b"",
        "truncated": whole[:25],
        "torn": whole[: len(whole) // 2 + 100],  # a write cut short mid-page
    }[how]
    path.write_bytes(content)
    return content


@pytest.mark.parametrize("how", ["garbage", "empty", "truncated", "torn", "directory"])
def test_a_damaged_state_file_keeps_cut_burners_locked_and_says_so(
    tmp_path, broker, daemons, how, record_property
) -> None:
    """Attempt: lock left, stop, damage state.db (garbage, empty, truncated, torn
    mid-page, a directory), start.
    Expected: left found cut stays cut, locked by startup; an alarm, the log, status
    (text and JSON) and the MQTT state say the state was lost; the bad file is kept."""
    config = kitchen_config(tmp_path, mqtt={"host": "127.0.0.1", "port": broker.port})
    first = daemons(config)
    assert first.cli("lock", "left").returncode == 0
    assert first.stop() == 0
    state = first.state_dir / "state.db"
    assert saved_locks(state)["kitchen/left"]["source"] == "cli"
    content = damage(state, how)

    again = daemons(config)
    again.wait_reconciled()
    # Held for longer than a pulse (2 s): a shutoff would have restored it by now.
    time.sleep(3)
    left = again.status("left")
    assert left["mode"] == "locked" and left["lock"]["source"] == "startup", left
    assert again.relay_outputs()["1"] is True
    assert again.status("right")["mode"] == "ready"
    assert again.relay_outputs()["2"] is False
    status = again.request({"action": "status"})
    assert "could not be read at start-up" in status["state_store"], status["state_store"]
    text = again.cli("status").stdout
    assert f"PROBLEM with the saved state (locks): {state} could not be read at start-up" in text
    alarms = [e for e in again.events() if e["kind"] == "alarm"]
    assert len(alarms) == 1 and "saved state lost" in alarms[0]["detail"]["error"], alarms
    assert "STATE LOST" in again.log()
    watcher = Watcher(broker.port, [f"{KITCHEN}/state"])
    try:
        shown = watcher.wait_json(f"{KITCHEN}/state", lambda s: s["health"]["state_store"] != "ok")
        assert shown["burners"]["left"]["locked"] is True
    finally:
        watcher.close()
    # The damaged file is kept aside as it was; the lock is saved anew.
    aside = state.with_name("state.db.damaged")
    if content is None:
        assert aside.is_dir()
    else:
        assert aside.read_bytes() == content
    assert saved_locks(state)["kitchen/left"]["source"] == "startup"
    # A person unlocks it; the next start is a normal one.
    assert again.cli("unlock", "left").returncode == 0
    assert again.relay_outputs()["1"] is False
    assert again.stop() == 0
    third = daemons(config)
    third.wait_reconciled()
    assert third.request({"action": "status"})["state_store"] == "ok"
    assert third.status("left")["mode"] == "ready"
    record_property(
        "observed",
        f"left {left['mode']} by {left['lock']['source']}, relay cut after 3 s; alarm, "
        f"STATE LOST logged, status and MQTT health say so; kept as {aside.name}",
    )


def test_an_upgrade_takes_over_the_older_state_json(tmp_path, daemons, record_property) -> None:
    """Attempt: lock left, stop, and leave the state as stove-ctl before state.db saved
    it (state.json only); start.
    Expected: left is still locked by the person who locked it, with no alarm; the old
    file is kept as state.json.imported; the lock is in state.db."""
    config = kitchen_config(tmp_path)
    first = daemons(config)
    assert first.cli("lock", "left").returncode == 0
    assert first.stop() == 0
    state = first.state_dir / "state.db"
    lock = saved_locks(state)["kitchen/left"]
    state.unlink()
    (first.state_dir / "state.json").write_text(
        json.dumps({"locks": {"kitchen/left": lock}, "last_shutoff": {}})
    )
    again = daemons(config)
    again.wait_reconciled()
    left = again.status("left")
    assert left["mode"] == "locked" and left["lock"]["source"] == "cli", left
    assert again.relay_outputs()["1"] is True
    assert again.request({"action": "status"})["state_store"] == "ok"
    assert not [e for e in again.events() if e["kind"] == "alarm"]
    assert not (first.state_dir / "state.json").exists()
    assert (first.state_dir / "state.json.imported").exists()
    assert saved_locks(state)["kitchen/left"] == lock
    record_property("observed", "left still locked by cli; state.json kept as .imported")


@pytest.mark.parametrize("how", ["garbage", "empty", "directory"])
def test_a_damaged_timer_store_is_reported_and_kept_aside(
    tmp_path, daemons, how, record_property
) -> None:
    """Attempt: set a timer, stop, damage timers.db (garbage, empty, a directory), start.
    Expected: an alarm, the log and status (text and JSON) say the timers were lost;
    the bad file is kept; a new store works across a restart."""
    config = kitchen_config(tmp_path)
    first = daemons(config)
    assert first.cli("timer", "left", "1h").returncode == 0
    assert first.stop() == 0
    store = first.state_dir / "timers.db"
    content = damage(store, how)

    again = daemons(config)
    status = again.request({"action": "status"})
    assert "could not be read at start-up" in status["timer_store"], status["timer_store"]
    text = again.cli("status").stdout
    assert f"PROBLEM with the timers: {store} could not be read at start-up" in text
    alarms = [e for e in again.events() if e["kind"] == "alarm"]
    assert len(alarms) == 1 and alarms[0]["detail"]["error"].startswith("timers lost: ")
    assert "TIMERS LOST" in again.log()
    aside = store.with_name("timers.db.damaged")
    assert aside.is_dir() if content is None else aside.read_bytes() == content
    # The new store works: a timer set now survives a restart.
    assert again.cli("timer", "right", "2h").returncode == 0
    assert again.stop() == 0
    third = daemons(config)
    timers = third.request({"action": "timers"})["timers"]
    assert [t["burners"] for t in timers] == [["kitchen/right"]]
    assert third.request({"action": "status"})["timer_store"] == "ok"
    record_property(
        "observed",
        f"alarm, TIMERS LOST logged, status says so; kept as {aside.name}; "
        "a new timer survived a restart",
    )


# -- 10. a pulse cut short by a crash is closed in the records ------------------------------


def test_a_pulse_the_relay_ended_while_the_daemon_was_down_is_closed(
    tmp_path, daemons, record_property
) -> None:
    """Attempt: SIGKILL the daemon mid-pulse on a miIO relay with an off-delay; the relay
    restores by itself; restart.
    Expected: the shutoff is closed as restored, with a restore_confirmed event from
    startup; status no longer shows "(cutting)"."""
    from tests.daemon import miio_config
    from tests.miio_kitchen import TOKEN, miio_kitchen

    kitchen = miio_kitchen()
    try:
        config = miio_config(tmp_path, kitchen.host, TOKEN, pulse_s=1.0)
        daemon = daemons(config)
        assert daemon.cli("off", "left", "--no-wait").returncode == 0
        daemon.kill()
        wait_for(lambda: kitchen.board.get(1) is False, 3)  # the device's own off-delay
        again = daemons(config)
        wait_for(
            lambda: again.status("left")["last_shutoff"]["outcome"] == "restored", 10, again.log
        )
        last = again.status("left")["last_shutoff"]
        assert last["cut_at"] is not None and last["restored_at"] >= last["cut_at"]
        assert again.status("left")["mode"] == "ready"
        assert "(cutting)" not in again.cli("status").stdout
        closed = [e for e in again.events() if e["kind"] == "restore_confirmed"]
        assert len(closed) == 1 and closed[0]["source"] == "startup", closed
        assert "off-delay" in closed[0]["detail"]["seen"]
        assert closed[0]["command_id"] == last["command_id"]
        record_property(
            "observed", f"outcome {last['outcome']}; restore_confirmed by {closed[0]['source']}"
        )
    finally:
        kitchen.sim.stop()


# -- 6, 9. one daemon per socket and per state_dir ------------------------------------------


def run_second(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stove_ctl", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


def assert_refused_naming(second: subprocess.CompletedProcess, first: Daemon, what: str) -> None:
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
    assert lines[0].startswith(f"stove-ctl: another stove-ctl daemon (pid {first.pid}, "), lines
    assert str(first.config) in lines[0] and what in lines[0], lines


def test_a_second_daemon_on_the_same_socket_names_the_first_and_leaves_it_alone(
    tmp_path, daemons, record_property
) -> None:
    """Attempt: start a second daemon with the same socket and another state_dir.
    Expected: it exits 2 naming the first (pid, config) and leaves its socket alone."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = daemons(kitchen_config(tmp_path / "a"))
    other = kitchen_config(tmp_path / "b")
    data = yaml.safe_load(other.read_text())
    data["socket"] = str(first.socket)  # same socket, another state_dir
    other.write_text(yaml.safe_dump(data))
    second = run_second(other)
    assert_refused_naming(second, first, f"the control socket {first.socket}")
    assert first.socket.exists()
    assert first.cli("status").returncode == 0  # still reachable
    assert not (tmp_path / "b" / "state" / "events.db").exists()  # B touched nothing
    record_property("observed", f"exit {second.returncode}; first still answers")


def test_two_daemons_on_the_per_user_default_socket(tmp_path, cleanup, record_property) -> None:
    """Attempt: two configs that both leave socket: out (the per-user default).
    Expected: the second exits 2 naming the first, which keeps working."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    configs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        config = kitchen_config(tmp_path / name)
        data = yaml.safe_load(config.read_text())
        del data["socket"]
        config.write_text(yaml.safe_dump(data))
        configs.append(config)
    first = Daemon(configs[0], env=env)
    cleanup.append(first)
    first.start()
    assert first.socket == runtime / "stove-ctl.sock" and first.socket.exists()
    second = run_second(configs[1], env)
    assert_refused_naming(second, first, "the control socket")
    assert first.cli("off", "left").returncode == 0
    record_property("observed", f"exit {second.returncode}; the first still cuts")


def test_two_daemons_on_one_read_only_state_dir(tmp_path, cleanup, record_property) -> None:
    """Attempt: two daemons with different sockets on one read-only state_dir.
    Expected: the second exits 2 naming the first."""
    shared = tmp_path / "state"
    configs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        config = kitchen_config(tmp_path / name)
        data = yaml.safe_load(config.read_text())
        data["state_dir"] = str(shared)
        config.write_text(yaml.safe_dump(data))
        configs.append(config)
    shared.mkdir()
    if os.getuid() == 0:  # root writes through any mode bits: a read-only mount instead
        script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
        prefix = ["unshare", "-m", "sh", "-c", script, str(shared)]
    else:
        shared.chmod(0o555)
        prefix = []
    first = Daemon(configs[0], prefix=prefix)
    cleanup.append(first)
    first.start()
    assert first.cli("off", "left").returncode == 0  # cuts, with nowhere to save
    assert "Read-only file system" in first.request({"action": "status"})["state_store"]
    second = subprocess.run(
        [*prefix, sys.executable, "-m", "stove_ctl", "run", "-c", str(configs[1])],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert_refused_naming(second, first, f"state_dir {shared}")
    record_property("observed", f"exit {second.returncode}, naming pid {first.pid}")
    assert first.cli("status").returncode == 0


# -- 7. the default socket lives in a private directory -------------------------------------


def test_the_default_socket_is_in_a_private_directory_a_squatter_cannot_take(
    tmp_path, cleanup, record_property
) -> None:
    """Attempt: another user pre-creates the default socket's path, or its directory (a
    file, their own directory, a directory open to all).
    Expected: the socket lives in a 0700 directory of ours; a squatted directory is one
    clear line, exit 2, no traceback."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp), "XDG_RUNTIME_DIR": ""}
    config = kitchen_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    del data["socket"]
    config.write_text(yaml.safe_dump(data))
    private = tmp / f"stove-ctl-{os.getuid()}"
    # What a neighbour could pre-create under the old name: harmless now.
    (tmp / f"stove-ctl-{os.getuid()}.sock").write_text("mine")
    daemon = Daemon(config, env=env)
    cleanup.append(daemon)
    daemon.start()
    assert daemon.socket == private / "stove-ctl.sock"
    info = private.stat()
    assert info.st_mode & 0o777 == 0o700 and info.st_uid == os.getuid()
    assert daemon.cli("off", "left").returncode == 0  # the CLI finds it there
    assert daemon.stop() == 0

    def refused(why: str) -> None:
        run = run_second(config, env)
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
        assert run.stderr == (
            f"stove-ctl: the control socket's directory {private} {why}; "
            "remove it, or set socket: in the config\n"
        )

    private.chmod(0o777)
    refused("is open to other users (mode 0777)")
    if os.getuid() == 0:  # only root can give a directory away
        os.chown(private, 65534, 65534)
        private.chmod(0o700)
        refused("belongs to another user (uid 65534)")
    shutil.rmtree(private)
    private.write_text("squatted")
    refused("is not a directory (someone else may have made it)")
    record_property("observed", "socket in a 0700 directory; each squat refused in one line")


def test_a_squatted_configured_socket_is_one_line_and_left_alone(tmp_path, record_property) -> None:
    """Attempt: a plain file, then a listening socket, at the configured socket path.
    Expected: one line, exit 2, and the squatter's file or socket left in place."""
    config = kitchen_config(tmp_path)
    sock = Path(yaml.safe_load(config.read_text())["socket"])
    sock.write_text("not a socket")
    run = run_second(config)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr == (
        f"stove-ctl: {sock} is not a socket; refusing to replace it: remove it, or set "
        "socket: in the config\n"
    )
    assert sock.read_text() == "not a socket"
    sock.unlink()
    # A listening socket that is not a stove-ctl daemon: refused, left listening.
    with socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM) as squatter:
        squatter.bind(str(sock))
        squatter.listen(1)
        run = run_second(config)
        assert run.returncode == 2 and "has something else listening on it" in run.stderr
        assert sock.exists()
    record_property("observed", "refused in one line both times; both left in place")
