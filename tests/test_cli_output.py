"""The CLI's own reading of clock times and its way of showing moments (unit tests;
the daemon's side is in tests/test_timers_hil.py and tests/test_daemon_hil.py)."""

from __future__ import annotations

import datetime as dt
import re
import time
from zoneinfo import ZoneInfo

import pytest

from stove_ctl.cli import _render_status, _twelve_hour, _when
from stove_ctl.errors import StoveCtlError

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("said", "sent"),
    [
        ("6pm", "18:00"),
        ("6 pm", "18:00"),
        ("6:30pm", "18:30"),
        ("6:30 PM", "18:30"),
        ("12am", "00:00"),
        ("12pm", "12:00"),
        ("12:15am", "00:15"),
        ("11:59 pm", "23:59"),
        ("noon", "12:00"),
        ("midnight", "00:00"),
        # No am/pm: passed on as said, for the daemon's 24-hour reading.
        ("18:30", "18:30"),
        ("6:30", "6:30"),
        ("18:30:15", "18:30:15"),
        ("2026-11-24T18:30", "2026-11-24T18:30"),
        ("6", "6"),
    ],
)
def test_at_reads_am_and_pm(said: str, sent: str) -> None:
    assert _twelve_hour(said) == sent


@pytest.mark.parametrize(
    ("said", "why"),
    [
        ("13pm", "there is no 13 pm"),
        ("0am", "there is no 0 am"),
        ("6:75pm", "there is no minute 75"),
        ("00:30am", "there is no 0 am"),
    ],
)
def test_at_refuses_an_am_pm_time_that_does_not_exist(said: str, why: str) -> None:
    with pytest.raises(StoveCtlError) as err:
        _twelve_hour(said)
    assert str(err.value) == f"cannot read {said!r} as a time: {why} (say 18:30 or 6:30pm)"


def test_a_moment_today_is_a_time_and_any_other_has_the_date() -> None:
    now = dt.datetime.now(SHANGHAI).replace(microsecond=0)
    at_noon = now.replace(hour=12, minute=0, second=0)
    assert _when(at_noon.timestamp(), SHANGHAI) == "12:00"
    assert _when(at_noon.replace(second=5).timestamp() + 0.25, SHANGHAI) == "12:00:05"
    assert _when(at_noon.isoformat(), SHANGHAI) == "12:00"
    later = at_noon + dt.timedelta(days=2)
    expected = f"{later:%a} {later.day} {later:%b} 12:00"
    if later.year != now.year:
        expected = f"{later:%a} {later.day} {later:%b} {later.year} 12:00"
    assert _when(later.timestamp(), SHANGHAI) == expected
    assert _when(dt.datetime(2020, 3, 7, 18, 30, tzinfo=SHANGHAI).isoformat()) == (
        "Sat 7 Mar 2020 18:30"
    )
    assert _when(None) == "-"


def test_an_iso_time_is_shown_in_the_daemons_zone() -> None:
    """An ISO time from the daemon carries its zone's offset; with the zone named too,
    the moment is shown there, whatever zone this machine is in."""
    moment = dt.datetime.now(SHANGHAI).replace(hour=18, minute=30, second=0, microsecond=0)
    utc = moment.astimezone(dt.UTC).isoformat()
    assert _when(utc, SHANGHAI) == "18:30"


def _status(burner: dict) -> dict:
    base = {
        "burner": "kitchen/left",
        "mode": "ready",
        "flame": "lit",
        "going_out": False,
        "circuit": "intact",
        "lock": None,
        "fault": None,
        "last_shutoff": None,
        "next_cut": None,
    }
    return {"ok": True, "action": "status", "timezone": "UTC", "burners": [{**base, **burner}]}


def test_status_shows_going_out_only_when_the_daemon_says_so() -> None:
    assert _render_status(_status({})).splitlines()[1].split()[2] == "lit"
    row = _render_status(_status({"going_out": True})).splitlines()[1]
    assert re.match(r"kitchen/left +ready +going out +intact", row), row


def test_status_shows_no_microseconds_and_no_date_today() -> None:
    now = time.time()
    due = dt.datetime.fromtimestamp(now + 60, dt.UTC).isoformat()
    shutoff = {
        "source": "cli",
        "requested_at": now,
        "cut_at": now,
        "restored_at": now + 3,
        "outcome": "locked",
    }
    text = _render_status(_status({"next_cut": due, "last_shutoff": shutoff}))
    row = text.splitlines()[1]
    assert "." not in row and not re.search(r"\d{4}-\d\d-\d\dT|\+00:00", row), row
    assert " by cli: cut " in row and row.endswith("(held by a lock, since unlocked)"), row
