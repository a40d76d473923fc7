"""The self-test through the real daemon, in real time: the control-socket action the
schedule also uses, the CLI, status (text and JSON), and bad requests."""

from __future__ import annotations

import pytest
import yaml

from tests.daemon import Daemon, kitchen_config

pytestmark = pytest.mark.hil


def test_self_test_through_the_daemon(tmp_path) -> None:
    path = kitchen_config(tmp_path, start_lit=False)
    data = yaml.safe_load(path.read_text())
    data["self_test"] = {"every_days": 30, "at": "03:30", "pulse_s": 0.3}
    path.write_text(yaml.safe_dump(data))
    daemon = Daemon(path).start()
    try:
        daemon.wait_reconciled()
        done = daemon.cli("self-test")
        assert done.returncode == 0, done.stderr
        assert "kitchen/left: self-test ok" in done.stdout
        assert "kitchen/right: self-test ok" in done.stdout
        assert daemon.relay_outputs() == {"1": False, "2": False}  # both restored
        kinds = [(e["kind"], e["source"]) for e in daemon.events() if e["burner"] == "kitchen/left"]
        assert kinds == [
            ("cut_commanded", "self_test"),
            ("cut_confirmed", "self_test"),
            ("restore_commanded", "self_test"),
            ("restore_confirmed", "self_test"),
            ("self_test", "cli"),
        ]
        status = daemon.status("left")
        assert status["self_test"]["result"] == "ok" and status["self_test_problem"] is False
        assert status["reminders"] == ["never commissioned: run `stove-ctl commission left`"]
        text = daemon.cli("status").stdout
        assert "kitchen/left: self-test ok " in text
        assert "kitchen/left: REMINDER: never commissioned" in text
        # Bad requests change nothing.
        for bad, words in (
            ({"action": "self_test", "burner": "middle"}, "unknown burner"),
            ({"action": "self_test", "burners": "all"}, "unknown field 'burners'"),
            ({"action": "commission_record", "burner": "left", "result": "fine"}, "result"),
            ({"action": "commission_record", "burner": "all", "result": "passed"}, "one"),
        ):
            reply = daemon.request(bad)
            assert reply["ok"] is False and words in reply["error"], (bad, reply)
        assert not (daemon.state_dir / "commissioning.json").exists()
        assert daemon.cli("self-test", "middle").returncode == 2
    finally:
        daemon.stop()


def test_a_lit_burner_is_skipped_by_the_daemon(tmp_path) -> None:
    daemon = Daemon(kitchen_config(tmp_path, start_lit=True)).start()
    try:
        daemon.wait_reconciled()
        done = daemon.cli("self-test", "left")
        assert done.returncode == 0
        assert "kitchen/left: self-test skipped: the burner is lit" in done.stdout
        assert daemon.relay_outputs() in ({}, {"1": False, "2": False})  # never switched
        assert "cut_commanded" not in [e["kind"] for e in daemon.events()]
        assert daemon.status("left")["self_test_skipped"]["reason"] == "the burner is lit"
    finally:
        daemon.stop()
