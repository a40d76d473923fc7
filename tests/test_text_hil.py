"""Text commands through the real daemon and ``stove-ctl say`` (a few corpus lines),
and ``stove-ctl snooze``. Real time, bounded (marked ``hil``)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.daemon import kitchen_config, wait_for

pytestmark = pytest.mark.hil
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _say(daemon, text: str) -> tuple[int, dict]:
    done = daemon.cli("say", text, "--json")
    return done.returncode, json.loads(done.stdout)


def test_say_reads_every_word_or_refuses_and_records_it(tmp_path: Path, daemons) -> None:
    config = kitchen_config(tmp_path, pulse_s=1.0)
    data = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**data, "timezone": "Asia/Shanghai"}))
    daemon = daemons(config)

    # A delay in traditional characters, and one in simplified: timers, nothing cut now.
    code, reply = _say(daemon, "一刻鐘後關左灶")
    assert code == 0 and reply["understood"] == {
        "action": "timer",
        "burner": "kitchen/left",
        "in": 900,
    }
    code, reply = _say(daemon, "过五分钟关右边")
    assert code == 0 and reply["understood"]["in"] == 300
    # A bare 12-hour time is the next one: about three hours from now, not fifteen.
    soon = dt.datetime.now(SHANGHAI) + dt.timedelta(hours=3)
    code, reply = _say(daemon, f"{soon.hour % 12 or 12}点关右灶")
    assert code == 0 and reply["understood"]["at"] == f"{soon.hour:02d}:00", reply
    # extend from text, then cancel from text.
    code, reply = _say(daemon, "extend the timer on the left burner by 10 minutes")
    assert code == 0 and reply["action"] == "extend", reply
    assert 1490 < reply["timer"]["in_s"] <= 1500
    code, reply = _say(daemon, "cancel the timers on the right burner")
    assert code == 0 and len(reply["timers"]) == 2

    # Refused: a negation, a delay it cannot read. Nothing cut; each one recorded.
    for text in ("不要关火", "turn off the stove in a few minutes"):
        done = daemon.cli("say", text)
        assert done.returncode == 2 and "nothing was done" in done.stderr, done.stderr
    rejected = [e for e in daemon.events() if e["kind"] == "rejected"]
    assert [e["detail"]["text"] for e in rejected] == [
        "不要关火",
        "turn off the stove in a few minutes",
    ]
    assert all(e["source"] == "voice" for e in rejected)
    assert daemon.status("left")["flame"] == "lit" and daemon.status("right")["flame"] == "lit"

    # And a plain one cuts.
    code, reply = _say(daemon, "關掉左邊的火")
    assert code == 0 and reply["understood"] == {"action": "shutoff", "burner": "kitchen/left"}
    wait_for(lambda: daemon.status("left")["flame"] == "out", 10, daemon.log)
    assert daemon.status("right")["flame"] == "lit"

    # snooze: bad arguments are one line, exit 2, and snooze nothing.
    for args in (("left", "-5m"), ("left", "99h"), ("oven", "5m"), ("left", "soon"), ("0",)):
        bad = daemon.cli("snooze", *args)
        assert bad.returncode == 2, (args, bad.stdout, bad.stderr)
        assert bad.stderr.startswith("stove-ctl: ") and bad.stderr.count("\n") == 1, bad.stderr
    assert "snoozed" not in [e["kind"] for e in daemon.events()]
    # The CLI command and the text.
    snooze = daemon.cli("snooze", "right", "10m")
    assert snooze.returncode == 0, snooze.stderr
    assert snooze.stdout.strip() == "kitchen/right: rules put off 10m00s", snooze.stdout
    code, reply = _say(daemon, "snooze the right burner for 5 minutes")
    assert code == 0 and reply["burners"][0]["snoozed_s"] == 300, reply
