"""The kitchen page's API against the real daemon process and the simulated kitchen
(docs/WEB.md): reads, commands and their trust rules, bad input, a port in use, and
a live page that never reads. Real time, bounded (marked ``hil``)."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.daemon import wait_for
from tests.web import TOKEN, bearer, call, web_config

pytestmark = pytest.mark.hil


def test_status_events_and_a_shutoff_from_this_machine_with_no_token(
    tmp_path: Path, daemons
) -> None:
    config, port = web_config(tmp_path)
    daemon = daemons(config)
    daemon.wait_reconciled()
    status, doc = call(port, "GET", "/api/status")
    assert status == 200 and doc["ok"] is True
    assert [b["burner"] for b in doc["burners"]] == ["kitchen/left", "kitchen/right"]
    assert doc["authenticated"] is False and isinstance(doc["now"], float)

    status, reply = call(port, "POST", "/api/command", {"action": "shutoff", "burner": "left"})
    assert status == 200, reply
    assert reply["ok"] is True and reply["burners"][0]["source"] == "web"
    assert reply["burners"][0]["cut_at"] is not None  # confirmed when it answers
    wait_for(lambda: daemon.status("left")["mode"] == "ready", 10, daemon.log)
    assert daemon.status("left")["flame"] == "out"
    assert daemon.status("right")["flame"] == "lit"
    assert daemon.status("left")["last_shutoff"]["source"] == "web"

    status, events = call(port, "GET", "/api/events?burner=left&n=100")
    assert status == 200
    kinds = [e["kind"] for e in events["events"]]
    assert kinds == [
        "cut_commanded",
        "cut_confirmed",
        "flame_out_confirmed",
        "restore_commanded",
        "restore_confirmed",
    ]
    assert {e["burner"] for e in events["events"]} == {"kitchen/left"}
    _, everything = call(port, "GET", "/api/events?n=2")
    assert len(everything["events"]) == 2

    _, shown = call(port, "GET", "/api/shutoffs?burner=kitchen/left")
    (shutoff,) = shown["shutoffs"]
    assert shutoff["command_id"] == reply["id"] and shutoff["source"] == "web"
    assert [s["kind"] for s in shutoff["steps"]] == ["command", *kinds]

    for query, code in (("burner=nope", "unknown_burner"), ("n=lots", "bad_command")):
        status, error = call(port, "GET", f"/api/events?{query}")
        assert (status, error["ok"], error["code"]) == (400, False, code)


def test_giving_gas_back_needs_the_token_and_a_fresh_ts(tmp_path: Path, daemons) -> None:
    config, port = web_config(tmp_path)
    daemon = daemons(config)
    daemon.wait_reconciled()
    assert daemon.cli("lock", "left").returncode == 0
    unlock = {"action": "unlock", "burner": "left"}

    status, reply = call(port, "POST", "/api/command", unlock)
    assert (status, reply["code"]) == (401, "not_authorized")
    status, reply = call(port, "POST", "/api/command", unlock, {"Authorization": "Bearer wrong"})
    assert (status, reply["code"]) == (401, "not_authorized")
    status, reply = call(port, "POST", "/api/command", unlock, bearer())  # no ts
    assert (status, reply["code"]) == (403, "stale")
    old = {**unlock, "ts": time.time() - 600}
    status, reply = call(port, "POST", "/api/command", old, bearer())
    assert (status, reply["code"]) == (403, "stale")
    assert daemon.status("left")["mode"] == "locked"
    assert daemon.relay_outputs()["1"] is True

    status, reply = call(port, "POST", "/api/command", {**unlock, "ts": time.time()}, bearer())
    assert status == 200 and reply["ok"] is True, reply
    wait_for(lambda: daemon.status("left")["lock"] is None, 10, daemon.log)
    unlocked = [e for e in daemon.events() if e["kind"] == "unlock"]
    assert unlocked[-1]["source"] == "web"

    # A session cookie from the token does as well as the header.
    status, reply = call(port, "POST", "/api/login", {"token": "wrong"})
    assert (status, reply["code"]) == (401, "not_authorized")
    conn_headers = {"Cookie": _login(port)}
    _, doc = call(port, "GET", "/api/status", headers=conn_headers)
    assert doc["authenticated"] is True
    assert daemon.cli("lock", "right").returncode == 0
    again = {"action": "unlock", "burner": "right", "ts": time.time()}
    status, reply = call(port, "POST", "/api/command", again, conn_headers)
    assert status == 200 and reply["ok"] is True, reply


def _login(port: int) -> str:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        "POST", "/api/login", json.dumps({"token": TOKEN}), {"Content-Type": "application/json"}
    )
    response = conn.getresponse()
    response.read()
    cookie = response.getheader("Set-Cookie") or ""
    conn.close()
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    return cookie.split(";", 1)[0]


def test_unlock_is_refused_when_web_is_not_an_unlock_source(tmp_path: Path, daemons) -> None:
    config, port = web_config(tmp_path, unlock_web=False)
    daemon = daemons(config)
    daemon.wait_reconciled()
    assert daemon.cli("lock", "left").returncode == 0
    unlock = {"action": "unlock", "burner": "left", "ts": time.time()}
    status, reply = call(port, "POST", "/api/command", unlock, bearer())
    assert (status, reply["code"]) == (403, "not_allowed")
    assert daemon.status("left")["mode"] == "locked"


def test_another_sites_requests_are_refused_and_change_nothing(tmp_path: Path, daemons) -> None:
    config, port = web_config(tmp_path)
    daemon = daemons(config)
    daemon.wait_reconciled()
    assert daemon.cli("lock", "left").returncode == 0
    before = len(daemon.events())
    evil = {"Origin": "http://evil.example"}
    for body, headers in (
        ({"action": "shutoff", "burner": "right"}, evil),
        ({"action": "unlock", "burner": "left", "ts": time.time()}, {**evil, **bearer()}),
    ):
        status, reply = call(port, "POST", "/api/command", body, headers)
        assert (status, reply["code"]) == (403, "cross_origin")
    status, reply = call(port, "GET", "/api/status", headers={"Origin": "null"})
    assert (status, reply["code"]) == (403, "cross_origin")
    # A site that points its own name at 127.0.0.1 (DNS rebinding) is not this machine.
    status, reply = call(port, "GET", "/api/status", headers={"Host": f"evil.example:{port}"})
    assert (status, reply["code"]) == (401, "not_local")
    status, _ = call(
        port, "GET", "/api/status", headers={"Host": f"evil.example:{port}", **bearer()}
    )
    assert status == 200
    # The page's own origin is fine.
    own = {"Origin": f"http://127.0.0.1:{port}"}
    status, _ = call(port, "GET", "/api/status", headers=own)
    assert status == 200
    assert daemon.status("left")["mode"] == "locked"
    assert daemon.status("right")["flame"] == "lit"
    assert len(daemon.events()) == before


def test_bad_input_gets_a_json_error_and_changes_nothing(tmp_path: Path, daemons) -> None:
    config, port = web_config(tmp_path)
    daemon = daemons(config)
    daemon.wait_reconciled()
    outputs = daemon.relay_outputs()
    json_type = {"Content-Type": "application/json"}
    cases = [
        (b'{"action": "shutoff", "burner": "' + b"x" * 5000 + b'"}', json_type, 413, "too_large"),
        (b'{"action": "shutoff"}', {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (b'{"action": "shutoff"}', {}, 415, "unsupported_media_type"),
        (b'{"action": "shut', json_type, 400, "bad_json"),
        (b"[1, 2]", json_type, 400, "bad_command"),
        (b'{"action": "shutoff", "burner": "oven"}', json_type, 400, "unknown_burner"),
        (b'{"action": "ignite", "burner": "left"}', json_type, 400, "unknown_action"),
        (b'{"action": "timer", "burner": "left", "in": "15"}', json_type, 400, "bad_command"),
        (b'{"action": "shutoff", "burner": "left", "wat": 1}', json_type, 400, "bad_command"),
    ]
    for raw, headers, status_code, code in cases:
        status, reply = call(port, "POST", "/api/command", raw=raw, headers=headers)
        assert (status, reply["ok"], reply["code"]) == (status_code, False, code), raw[:60]
        assert reply["error"]
    assert daemon.relay_outputs() == outputs
    assert all(b["mode"] == "ready" for b in daemon.request({"action": "status"})["burners"])
    assert daemon.status("left")["flame"] == "lit"
    status, _ = call(port, "GET", "/api/nothing-here")
    assert status == 404
    status, reply = call(port, "POST", "/api/command", {"action": "shutoff", "burner": "left"})
    assert status == 200 and reply["ok"] is True  # and it carries on


def test_command_ids_are_the_pages_own(tmp_path: Path, daemons) -> None:
    config, port = web_config(tmp_path)
    daemon = daemons(config)
    daemon.wait_reconciled()
    first = {"action": "shutoff", "burner": "left", "id": "page-1"}
    status, reply = call(port, "POST", "/api/command", first)
    assert status == 200 and reply["id"] == "page-1"
    status, again = call(port, "POST", "/api/command", first)
    assert again == reply  # one command, one answer
    status, other = call(port, "POST", "/api/command", {**first, "burner": "right"})
    assert (status, other["code"]) == (400, "duplicate_id")
    # The control socket's ids are another channel's.
    assert daemon.request({"action": "shutoff", "burner": "right", "id": "page-1"})["ok"]
    commands = [e for e in daemon.events() if e["kind"] == "command"]
    assert [(e["source"], e["command_id"]) for e in commands] == [
        ("web", "page-1"),
        ("cli", "page-1"),
    ]


def test_a_port_in_use_is_one_line_and_the_daemon_still_cuts(tmp_path: Path, daemons) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config, _ = web_config(tmp_path, port=port)
        daemon = daemons(config)
        daemon.wait_reconciled()
        lines = [line for line in daemon.log().splitlines() if "kitchen page" in line]
        assert len(lines) == 1, daemon.log()
        assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
        assert "runs on without it" in lines[0] and "ERROR" in lines[0]
        assert "Traceback" not in daemon.log()
        off = daemon.cli("off", "left")
        assert off.returncode == 0, off.stderr
        assert daemon.status("left")["flame"] == "out"


def test_a_live_page_that_never_reads_does_not_delay_a_cut(tmp_path: Path, daemons) -> None:
    config, port = web_config(tmp_path, pulse_s=0.5)
    daemon = daemons(config)
    daemon.wait_reconciled()
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", port))
    stuck.sendall(f"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    sent = [0]

    def flood() -> None:  # ~6 MB of events for a page that reads none of them
        for _ in range(12_000):
            daemon.request({"action": "say", "text": "x" * 190})
            sent[0] += 1

    flooding = threading.Thread(target=flood)
    flooding.start()
    try:
        wait_for(lambda: sent[0] >= 6000, 30)  # its buffers are full by now (~2.6 MB)
        started = time.monotonic()
        off = daemon.cli("off", "right", "--no-wait")
        took = time.monotonic() - started
        assert off.returncode == 0, off.stderr
        assert took < 5, took
        assert daemon.status("right")["last_shutoff"]["cut_at"] is not None
        status, _ = call(port, "GET", "/api/status", timeout_s=5)  # others are served
        assert status == 200
        flooding.join(timeout=60)
        # The stuck page was dropped (its queue overflowed): what it gets ends.
        stuck.settimeout(20)
        while stuck.recv(65536):
            pass
    finally:
        flooding.join(timeout=60)
        stuck.close()


def test_a_reload_keeps_the_page(tmp_path: Path, daemons) -> None:
    config, port = web_config(tmp_path)
    daemon = daemons(config)
    daemon.wait_reconciled()
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: daemon.log().count("kitchen page on") == 2, 10, daemon.log)
    status, reply = call(port, "POST", "/api/command", {"action": "shutoff", "burner": "left"})
    assert status == 200 and reply["ok"] is True
