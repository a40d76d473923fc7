"""Config loading: every problem is named with its file and field path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stove_ctl.config import load_config
from stove_ctl.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

GOOD = {
    "state_dir": "./state",
    "relays": {"r1": {"driver": "simulated", "channels": 2}},
    "stoves": [
        {
            "id": "kitchen",
            "burners": [
                {"id": "left", "relay": {"device": "r1", "channel": 1}},
                {"id": "right", "relay": {"device": "r1", "channel": 2}, "pulse_s": 5},
            ],
        }
    ],
}


def write(tmp_path: Path, data: object, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def problems(tmp_path: Path, data: object) -> list[str]:
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert all(p.startswith(str(path)) for p in err.value.problems)
    return err.value.problems


def test_example_config_loads_and_defaults_apply() -> None:
    config = load_config(ROOT / "config.example.yaml")
    assert config.state_dir == ROOT / "state"  # relative to the file, not the cwd
    burner = config.stoves[0].burners[0]
    assert burner.wiring.value == "nc_series" and burner.pulse_s == 3
    assert config.trust.unlock_sources == ["cli"]


def test_good_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.stoves[0].burners[1].pulse_s == 5
    assert config.state_dir == tmp_path / "state"


def with_burner(**changes: object) -> dict:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["stoves"][0]["burners"][0].update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            with_burner(pulse_s=45),
            "stoves[0].burners[0].pulse_s: input should be less than or equal to 30 (got 45)",
        ),
        (
            with_burner(pulse_s=0.1),
            "stoves[0].burners[0].pulse_s: input should be greater than or equal to 0.5",
        ),
        (
            with_burner(pulse_s="soon"),
            "stoves[0].burners[0].pulse_s: input should be a valid number",
        ),
        (
            with_burner(wiring="nc_parallel"),
            "stoves[0].burners[0].wiring: input should be 'nc_series', 'no_parallel' or 'no_series'",
        ),
        (
            with_burner(pluse_s=3),
            "stoves[0].burners[0]: unknown field 'pluse_s' (did you mean 'pulse_s'?)",
        ),
        (with_burner(id="Left Burner"), "stoves[0].burners[0].id: string should match pattern"),
        (with_burner(id="all"), "stoves[0].burners[0].id: 'all' is reserved"),
        (with_burner(id="right"), "stoves[0].burners[1].id: burner id 'right' is used twice"),
        (
            with_burner(relay={"device": "nope", "channel": 1}),
            "stoves[0].burners[0].relay.device: no relay named 'nope' (relays: r1)",
        ),
        (
            with_burner(relay={"device": "r1", "channel": 3}),
            "stoves[0].burners[0].relay.channel: relay 'r1' has 2 channel(s), not 3",
        ),
        (
            with_burner(relay={"device": "r1", "channel": 2}),
            "stoves[0].burners[1].relay: channel 2 of 'r1' already switches kitchen/left",
        ),
        (
            {**GOOD, "relays": {"r1": {"driver": "zwave"}}},
            "relays.r1: input tag 'zwave' found using 'driver' does not match any of the expected tags: 'simulated'",
        ),
        ({**GOOD, "stoves": []}, "stoves: list should have at least 1 item"),
        ({k: v for k, v in GOOD.items() if k != "stoves"}, "stoves: required field is missing"),
        (
            {**GOOD, "trust": {"unlock_sources": ["anyone"]}},
            "trust.unlock_sources[0]: input should be",
        ),
        (
            {**GOOD, "trust": {"max_command_age_s": -1}},
            "trust.max_command_age_s: input should be greater than 0",
        ),
        (
            {**GOOD, "events": {"keep_days": 0}},
            "events.keep_days: input should be greater than or equal to 1",
        ),
        (
            {**GOOD, "events": {"keep_days": "a year"}},
            "events.keep_days: input should be a valid integer",
        ),
        ({**GOOD, "events": {"keep": 30}}, "events: unknown field 'keep'"),
    ],
)
def test_each_problem_is_reported_with_its_path(tmp_path: Path, data: dict, expected: str) -> None:
    found = problems(tmp_path, data)
    assert any(expected in p for p in found), found


def test_every_field_error_is_reported_at_once(tmp_path: Path) -> None:
    data = with_burner(pulse_s=99, wiring="sideways")
    data["stoves"][0]["burners"][1]["pulse_s"] = -1
    found = problems(tmp_path, data)
    assert len(found) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stoves: [\n  - id: a\n  bad", "line 2, column 3: not valid YAML"),
        ("stoves:\n  - id: a\n    burners: [\n", "line 4, column 1: not valid YAML"),
        ("- just\n- a list\n", "the file must hold a mapping of settings"),
        ("", "the file must hold a mapping of settings"),
    ],
)
def test_unparseable_files(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(tmp_path, text)
    assert any(expected in p for p in found), found


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "absent.yaml")
    assert err.value.problems == [f"{tmp_path / 'absent.yaml'}: no such file"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stove_ctl", *args], capture_output=True, text=True, timeout=60
    )


def test_check_config_command(tmp_path: Path) -> None:
    ok = cli("check-config", "-c", str(write(tmp_path, GOOD)))
    assert ok.returncode == 0 and "ok (1 stove(s), 2 burner(s), 1 relay(s))" in ok.stdout
    bad_path = write(tmp_path, with_burner(pulse_s=45), "bad.yaml")
    bad = cli("check-config", "-c", str(bad_path))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"{bad_path}: stoves[0].burners[0].pulse_s: input should be less than or equal to 30 (got 45)"
    ]
    assert not (tmp_path / "state").exists()  # checking changes nothing


def test_run_with_a_bad_config_exits_2_without_starting(tmp_path: Path) -> None:
    bad_path = write(tmp_path, with_burner(wiring="x"), "bad.yaml")
    result = cli("run", "-c", str(bad_path))
    assert result.returncode == 2
    assert "stoves[0].burners[0].wiring" in result.stderr
    assert not (tmp_path / "state").exists()


MIIO = {
    "relays": {"m": {"driver": "miio", "host": "127.0.0.5", "token": "00" * 16}},
    "stoves": [{"id": "k", "burners": [{"id": "left", "relay": {"device": "m"}}]}],
}


def with_miio(**changes: object) -> dict:
    data = yaml.safe_load(yaml.safe_dump(MIIO))
    data["relays"]["m"].update(changes)
    return {k: v for k, v in data.items()}


def test_miio_relay_config_and_secret_sources(tmp_path: Path, monkeypatch) -> None:
    config = load_config(write(tmp_path, MIIO))
    relay = config.relays["m"]
    assert relay.channel_map(1).siid == 2 and relay.poll_s == 1.0
    assert "00000000" not in repr(config)  # the token is a secret
    (tmp_path / "tok").write_text("ab" * 16 + "\n")
    data = with_miio(token=None, token_file="tok")
    del data["relays"]["m"]["token"]
    assert load_config(write(tmp_path, data)).relays["m"].token.get_secret_value() == "ab" * 16
    monkeypatch.setenv("RELAY_TOKEN", "cd" * 16)
    data = with_miio(token_env="RELAY_TOKEN")
    del data["relays"]["m"]["token"]
    assert load_config(write(tmp_path, data)).relays["m"].token.get_secret_value() == "cd" * 16


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"token": "xyz"}, "relays.m: a miIO token is 32 hexadecimal characters"),
        ({"token_env": "X"}, "relays.m: give exactly one of token, token_file, token_env"),
        ({"host": "kitchen.local"}, "relays.m.host: input is not a valid IPv4 address"),
        ({"protocol": "legacy", "channels": 2}, "legacy (set_power) relays have one channel"),
        ({"mapping": {3: {"siid": 4}}}, "mapping names channel 3; the relay has 1"),
        (
            {"mapping": {1: {"siid": 0}}},
            "relays.m.mapping[1].siid: input should be greater than or equal to 1 (got 0)",
        ),
        ({"timeout_s": 60}, "relays.m.timeout_s: input should be less than or equal to 10"),
        ({"poll_s": -1}, "relays.m.poll_s: input should be greater than or equal to 0"),
    ],
)
def test_bad_miio_relay_config(tmp_path: Path, change: dict, expected: str) -> None:
    found = problems(tmp_path, with_miio(**change))
    assert any(expected in p for p in found), found
    assert not any("00000000000000000000000000000000" in p for p in found)


def test_secret_from_a_missing_file_or_env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    for change, expected in (
        ({"token_file": "missing.tok"}, "relays.m.token_file: cannot read"),
        (
            {"token_env": "NOPE_TOKEN"},
            "relays.m.token_env: environment variable NOPE_TOKEN is not set",
        ),
    ):
        data = with_miio(**change)
        del data["relays"]["m"]["token"]
        found = problems(tmp_path, data)
        assert any(expected in p for p in found), found


BROKER = {"host": "127.0.0.1"}


@pytest.mark.parametrize(
    ("mqtt", "relay", "expected"),
    [
        ({**BROKER, "password": "x"}, None, "mqtt: a password needs a username"),
        (
            {**BROKER, "username": "u", "password": "x", "password_env": "Y"},
            None,
            "give at most one of password",
        ),
        ({**BROKER, "tls": {"cert_file": "c.pem"}}, None, "cert_file and key_file go together"),
        ({**BROKER, "tls": {"ca_file": "missing-ca.pem"}}, None, "mqtt.tls.ca_file: no such file"),
        ({**BROKER, "port": 70000}, None, "mqtt.port: input should be less than or equal to 65535"),
        ({**BROKER, "base_topic": "stove/#"}, None, "mqtt.base_topic: string should match pattern"),
        (
            {**BROKER, "protocol": "4"},
            None,
            "mqtt.protocol: input should be 'auto', '5' or '3.1.1'",
        ),
        (
            None,
            {"driver": "mqtt", "preset": "tasmota", "device": "t"},
            "relays.m: an mqtt relay needs the mqtt: section",
        ),
        (
            BROKER,
            {"driver": "mqtt", "preset": "sonoff", "device": "t"},
            "relays.m.preset: input should be",
        ),
        (
            BROKER,
            {"driver": "mqtt", "preset": "generic", "device": "t"},
            "the generic preset needs command_topic and state_topic",
        ),
        (
            BROKER,
            {"driver": "mqtt", "preset": "tasmota", "device": "a/#"},
            "relays.m.device: string should match pattern",
        ),
        (
            BROKER,
            {"driver": "mqtt", "preset": "zigbee2mqtt", "device": "z", "endpoints": {2: "_l2"}},
            "endpoints names channel 2; the relay has 1",
        ),
    ],
)
def test_bad_mqtt_config(tmp_path: Path, mqtt, relay, expected) -> None:
    data = yaml.safe_load(yaml.safe_dump(MIIO))
    if relay is not None:
        data["relays"]["m"] = relay
    if mqtt is not None:
        data["mqtt"] = mqtt
    found = problems(tmp_path, data)
    assert any(expected in p for p in found), found
    assert not any("'x'" in p for p in found)  # a password is never echoed back


def test_good_mqtt_config(tmp_path: Path) -> None:
    data = yaml.safe_load(yaml.safe_dump(MIIO))
    data["mqtt"] = {**BROKER, "username": "u", "password": "pw-secret"}
    data["relays"]["t"] = {"driver": "mqtt", "preset": "tasmota", "device": "stove"}
    config = load_config(write(tmp_path, data))
    assert config.mqtt is not None and config.mqtt.password.get_secret_value() == "pw-secret"
    assert "pw-secret" not in repr(config)
