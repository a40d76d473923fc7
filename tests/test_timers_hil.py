"""Timers through the real daemon: APScheduler with its SQLite store, in real time."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.daemon import Daemon, kitchen_config, wait_for

pytestmark = pytest.mark.hil


def with_extra(config: Path, **extra: object) -> Path:
    data = yaml.safe_load(config.read_text())
    data.update(extra)
    config.write_text(yaml.safe_dump(data))
    return config


def timers(daemon: Daemon) -> list[dict]:
    return json.loads(daemon.cli("timers", "--json").stdout)["timers"]


def test_countdown_timer_shuts_off_and_shows_as_next_cut(tmp_path, daemons) -> None:
    daemon = daemons(kitchen_config(tmp_path, pulse_s=0.5))
    out = daemon.cli("timer", "left", "2s")
    assert out.returncode == 0 and out.stdout.startswith("timer t-"), out.stderr
    assert daemon.status("left")["next_cut"] is not None
    assert daemon.status("left")["flame"] == "lit"
    wait_for(lambda: daemon.status("left")["flame"] == "out", 6, daemon.log)
    shutoff = daemon.status("left")["last_shutoff"]
    assert shutoff["source"] == "timer"
    assert daemon.status("right")["flame"] == "lit"
    assert timers(daemon) == []
    kinds = [e["kind"] for e in daemon.events()]
    assert kinds.index("timer_set") < kinds.index("timer_fired") < kinds.index("cut_confirmed")


def test_a_timer_missed_while_the_daemon_was_down_fires_at_start_up(tmp_path, daemons) -> None:
    config = kitchen_config(tmp_path, pulse_s=0.5)
    daemon = daemons(config)
    assert daemon.cli("timer", "right", "2s").returncode == 0
    daemon.kill()
    time.sleep(3.0)  # the due time passes with no daemon
    assert daemon.relay_outputs().get("2", False) is False
    again = daemons(config)
    wait_for(lambda: again.status("right")["flame"] == "out", 5, again.log)
    fired = [e for e in again.events() if e["kind"] == "timer_fired"]
    assert fired and fired[-1]["detail"]["late_s"] >= 0.5
    assert again.status("right")["last_shutoff"]["source"] == "timer"


def test_cancel_and_extend(tmp_path, daemons) -> None:
    daemon = daemons(kitchen_config(tmp_path, pulse_s=0.5))
    assert daemon.cli("timer", "left", "2s").returncode == 0
    cancelled = daemon.cli("cancel", "left")
    assert cancelled.returncode == 0 and "cancelled t-" in cancelled.stdout
    set_again = json.loads(daemon.cli("timer", "right", "2s", "--json").stdout)
    timer_id = set_again["timer"]["id"]
    extended = json.loads(daemon.cli("extend", timer_id, "60s", "--json").stdout)
    assert extended["timer"]["in_s"] > 55
    time.sleep(3.0)
    assert daemon.status("left")["flame"] == "lit" and daemon.status("right")["flame"] == "lit"
    assert [t["id"] for t in timers(daemon)] == [timer_id]
    assert daemon.cli("cancel", timer_id).returncode == 0
    assert timers(daemon) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("timer", "left", "0"), "a delay must be more than 0"),
        (("timer", "left", "15"), "15 what? say 15m for minutes or 15s for seconds"),
        (("at", "left", "13pm"), "cannot read '13pm' as a time: there is no 13 pm"),
        (("at", "left", "0am"), "cannot read '0am' as a time: there is no 0 am"),
        (("at", "left", "6:75pm"), "cannot read '6:75pm' as a time: there is no minute 75"),
        (("timer", "left", "-5m"), "a delay or time cannot be negative (got -5m)"),
        (("timer", "left", "10 years"), "unknown unit 'years'"),
        (("timer", "left", "87600h"), "more than 24 hours"),
        (("timer", "left", "soon"), "cannot read 'soon' as a duration"),
        (("timer", "middle", "5m"), "unknown burner 'middle'"),
        (("at", "left", "25:61"), "cannot read '25:61' as a time"),
        (("at", "left", "2020-01-01T10:00"), "is in the past"),
        (("cancel", "t-nothere"), "no timer 't-nothere'"),
        (("extend", "t-nothere", "5m"), "no timer 't-nothere'"),
    ],
)
def test_bad_timer_input_is_refused_and_nothing_is_scheduled(
    tmp_path, daemons, args, message
) -> None:
    daemon = daemons(kitchen_config(tmp_path))
    result = daemon.cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert timers(daemon) == []


def test_lock_window_the_daemon_starts_inside_cuts_and_holds(tmp_path, daemons) -> None:
    now = dt.datetime.now(dt.UTC)
    start = (now - dt.timedelta(minutes=1)).strftime("%H:%M")
    end = (now + dt.timedelta(minutes=30)).strftime("%H:%M")
    config = with_extra(
        kitchen_config(tmp_path),
        timezone="UTC",
        lock_windows=[{"name": "night", "start": start, "end": end, "burners": "all"}],
    )
    daemon = daemons(config)
    wait_for(lambda: daemon.status("left")["mode"] == "locked", 5, daemon.log)
    assert daemon.status("right")["mode"] == "locked"
    assert daemon.status("left")["lock"]["command_id"] == "window:night"
    wait_for(lambda: daemon.relay_outputs() == {"1": True, "2": True}, 5, daemon.log)
    wait_for(lambda: daemon.status("left")["flame"] == "out", 5, daemon.log)
    listed = timers(daemon)
    assert {t["name"] for t in listed} >= {"lock window night start"}


def test_bad_cron_and_window_config_are_refused(tmp_path) -> None:
    config = with_extra(
        kitchen_config(tmp_path),
        schedules=[{"name": "nightly", "cron": "61 25 * * *"}],
        lock_windows=[{"name": "x", "start": "23:00", "end": "23:00", "burners": "oven"}],
        timezone="Mars/Olympus",
    )
    result = Daemon(config).cli("check-config")
    assert result.returncode == 2
    text = result.stderr
    assert "schedules[0]: cron '61 25 * * *' is not valid" in text
    assert "lock_windows[0]: a lock window needs different start and end times" in text
    assert "timezone: unknown time zone 'Mars/Olympus'" in text


def test_say_in_chinese_and_english_through_the_daemon(tmp_path, daemons) -> None:
    daemon = daemons(kitchen_config(tmp_path, pulse_s=0.5))
    off = daemon.cli("say", "关掉左边的火")
    assert off.returncode == 0 and off.stdout.startswith("kitchen/left: shut off"), off.stderr
    assert daemon.status("left")["flame"] == "out" and daemon.status("right")["flame"] == "lit"
    assert daemon.status("left")["last_shutoff"]["source"] == "voice"
    timer = daemon.cli("say", "turn off the right burner in 10 minutes")
    assert timer.returncode == 0 and "timer t-" in timer.stdout
    assert [t["burners"] for t in timers(daemon)] == [["kitchen/right"]]
    cancel = daemon.cli("say", "取消定时")
    assert cancel.returncode == 0 and timers(daemon) == []
    unknown = daemon.cli("say", "关掉中间的火")
    assert unknown.returncode == 2 and "no middle burner" in unknown.stderr
    assert daemon.cli("lock", "right").returncode == 0
    unlock = daemon.cli("say", "解锁右灶")
    assert unlock.returncode == 2 and "not accepted from voice" in unlock.stderr
    assert daemon.status("right")["mode"] == "locked"


def test_timers_lists_the_earliest_first_a_page_at_a_time(tmp_path, daemons) -> None:
    daemon = daemons(kitchen_config(tmp_path))
    for burner, delay in [("left", "3h"), ("right", "1h"), ("left", "2h"), ("left", "5h")]:
        assert daemon.cli("timer", burner, delay).returncode == 0
    every = timers(daemon)
    assert [t["burners"] for t in every] == [
        ["kitchen/right"],
        ["kitchen/left"],
        ["kitchen/left"],
        ["kitchen/left"],
    ]
    page = json.loads(daemon.cli("timers", "-n", "2", "--json").stdout)
    assert page["total"] == 4 and [t["id"] for t in page["timers"]] == [t["id"] for t in every[:2]]
    text = daemon.cli("timers", "--limit", "1").stdout
    assert text.splitlines()[-1] == "… and 3 more (stove-ctl timers -n N for more)", text
    left = json.loads(daemon.cli("timers", "--burner", "left", "--json").stdout)
    assert left["total"] == 3 and all(t["burners"] == ["kitchen/left"] for t in left["timers"])
    # Bad limits: a clear error, nothing changed.
    for bad, why in [
        ("0", "must be between 1 and 1000, not 0"),
        ("5000", "must be between 1 and 1000, not 5000"),
        ("ten", "not a whole number: 'ten'"),
    ]:
        out = daemon.cli("timers", "-n", bad)
        assert out.returncode == 2 and why in out.stderr, (bad, out.stderr)
    reply = daemon.request({"action": "timers", "limit": 5000})
    assert reply["ok"] is False and "1000" in reply["error"], reply
    reply = daemon.request({"action": "shutoff", "burner": "left", "limit": 3})
    assert reply["ok"] is False and "'limit' is for 'timers' only" in reply["error"], reply
    assert daemon.status("left")["flame"] == "lit"
    assert len(timers(daemon)) == 4


def test_at_reads_am_pm_and_times_are_shown_local_without_microseconds(tmp_path, daemons) -> None:
    """`at left 6pm` is the next 18:00 in the daemon's zone; `timer`, `timers` and
    `status` show local times, a date only when not today; --json stays ISO."""
    zone = "Asia/Shanghai"
    daemon = daemons(with_extra(kitchen_config(tmp_path), timezone=zone))
    now = dt.datetime.now(ZoneInfo(zone))
    for said, hour, minute in [("6pm", 18, 0), ("6:30 PM", 18, 30), ("12am", 0, 0)]:
        out = daemon.cli("at", "left", said, "--json")
        assert out.returncode == 0, out.stderr
        due = dt.datetime.fromisoformat(json.loads(out.stdout)["timer"]["due"])
        assert (due.hour, due.minute) == (hour, minute) and due.utcoffset() == now.utcoffset()
        assert now < due <= now + dt.timedelta(days=1)
    countdown = daemon.cli("timer", "right", "1h")
    shown = countdown.stdout
    assert re.fullmatch(r"timer t-\w+: shuts off kitchen/right at .+ \(in 1h00m\)\n", shown)
    hour_later = now + dt.timedelta(hours=1)
    expected = f"{hour_later:%H:%M}" + (f":{hour_later:%S}" if hour_later.second else "")
    if hour_later.date() != now.date():
        expected = f"{hour_later:%a} {hour_later.day} {hour_later:%b} " + expected
    # The second may tick between now and the daemon's reading of it.
    assert f" at {expected[:-2]}" in shown, (expected, shown)
    listed = daemon.cli("timers").stdout.splitlines()
    assert len(listed) == 4
    for line in listed:
        when = line.split("  at ")[1]
        assert re.fullmatch(r"(\w{3} \d{1,2} \w{3} )?\d\d:\d\d(:\d\d)?", when), line
    assert any(line.endswith(" 00:00") for line in listed), listed  # the 12am one
    status = daemon.cli("status").stdout.splitlines()
    right = next(line for line in status if line.startswith("kitchen/right"))
    assert f" {expected[:-2]}" in right and "T" not in right.split()[4], right
    assert json.loads(daemon.cli("status", "--json").stdout)["timezone"] == zone
    # --json stays ISO, microseconds and all.
    assert all("T" in t["due"] for t in timers(daemon))
