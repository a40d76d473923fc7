"""The kitchen page's parts that need no daemon: the token file, who is local, and
the shutoff timelines with their millivolt readings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from stove_ctl.config import load_config
from stove_ctl.config.exposure import exposed_secrets
from stove_ctl.core.events import Event
from stove_ctl.drivers.relay import Sample
from stove_ctl.errors import ConfigError
from stove_ctl.surfaces.web import auth
from stove_ctl.surfaces.web.timeline import Readings, shutoffs
from tests.daemon import kitchen_config


def _with_token_file(tmp_path: Path, text: str | None, mode: int = 0o600) -> Path:
    path = kitchen_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["web"] = {"token_file": "web.token"}
    path.write_text(yaml.safe_dump(data))
    if text is not None:
        (tmp_path / "web.token").write_text(text)
        (tmp_path / "web.token").chmod(mode)
    return path


def test_the_token_file_is_read_and_checked(tmp_path: Path) -> None:
    config = load_config(_with_token_file(tmp_path, "s3cret-kitchen-token\n"))
    assert config.web is not None and config.web.token is not None
    assert config.web.token.get_secret_value() == "s3cret-kitchen-token"
    assert exposed_secrets(tmp_path / "config.yaml", config) == []
    loose = load_config(_with_token_file(tmp_path, "s3cret-kitchen-token\n", 0o644))
    (warning,) = exposed_secrets(tmp_path / "config.yaml", loose)
    assert "web.token_file" in warning and "chmod 600" in warning


@pytest.mark.parametrize(("text", "words"), [(None, "cannot read"), ("  \n", "is empty")])
def test_a_missing_or_empty_token_file_is_a_config_error(
    tmp_path: Path, text: str | None, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_with_token_file(tmp_path, text))
    assert "web.token_file" in str(caught.value) and words in str(caught.value)


@pytest.mark.parametrize("text", ["s3cret", "1234", "fifteen-chars-x"])
def test_a_short_token_is_a_config_error(tmp_path: Path, text: str) -> None:
    # A neighbour who reaches the page may guess a short token: refused, with a hint.
    with pytest.raises(ConfigError) as caught:
        load_config(_with_token_file(tmp_path, text + "\n"))
    message = str(caught.value)
    assert f"is {len(text)} characters; use at least 16 random ones" in message
    assert "/dev/urandom" in message
    # sixteen is enough
    config = load_config(_with_token_file(tmp_path, "sixteen-chars-xx\n"))
    assert config.web is not None and config.web.token is not None


def test_who_is_local_and_which_origin_is_foreign() -> None:
    assert auth.local("127.0.0.1", "127.0.0.1:8470", "127.0.0.1")
    assert auth.local("::1", "[::1]:8470", "127.0.0.1")
    assert auth.local("127.0.0.1", "localhost:8470", "127.0.0.1")
    assert not auth.local("127.0.0.1", "evil.example:8470", "127.0.0.1")  # DNS rebinding
    assert not auth.local("192.168.1.9", "192.168.1.2:8470", "0.0.0.0")
    assert not auth.foreign_origin(None, "http", "127.0.0.1:8470")
    assert not auth.foreign_origin("http://127.0.0.1:8470", "http", "127.0.0.1:8470")
    assert auth.foreign_origin("http://127.0.0.1:9999", "http", "127.0.0.1:8470")
    assert auth.foreign_origin("null", "http", "127.0.0.1:8470")
    token = "t0ken"
    assert auth.authenticated(token, "Bearer t0ken", None)
    assert not auth.authenticated(token, "Bearer nope", auth.session_value(token))
    assert auth.authenticated(token, None, auth.session_value(token))
    assert not auth.authenticated(None, "Bearer ", "")


class _Clock:
    def __init__(self) -> None:
        self.mono = 100.0

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return 1000.0 + self.mono


class _Thermocouple:
    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.mv = 25.0

    def flame(self) -> bool | None:
        return self.mv > 10

    def reading(self) -> Sample | None:
        return Sample(self.mv, self.clock.monotonic())


class _Spec:
    def __init__(self, flame: Any) -> None:
        self.key = "kitchen/left"
        self.flame = flame


def test_a_shutoff_is_its_events_with_the_readings_around_it() -> None:
    clock = _Clock()
    thermocouple = _Thermocouple(clock)
    readings = Readings([_Spec(thermocouple)], clock)  # type: ignore[list-item]
    for step in range(20):
        thermocouple.mv = 25.0 if step < 5 else 25.0 - step
        readings.sample()
        readings.sample()  # the same reading again is kept once
        clock.mono += 0.5
    kinds = ["cut_commanded", "cut_confirmed", "flame_out_confirmed", "restore_confirmed"]
    events = [Event(ts=1102.0, kind="command", command_id="c1", source="web", detail={})]
    events += [
        Event(ts=1102.5 + i, kind=k, burner="kitchen/left", command_id="c1", source="web")
        for i, k in enumerate(kinds)
    ]
    events.append(Event(ts=1103.0, kind="timer_set", burner="kitchen/left", command_id="t"))
    (shutoff,) = shutoffs(events, 10, readings)
    assert [s["kind"] for s in shutoff["steps"]] == ["command", *kinds]
    assert shutoff["source"] == "web" and shutoff["start"] == 1102.0
    assert len(shutoff["readings"]) == 20
    assert shutoff["readings"][0] == [1100.0, 25.0]
