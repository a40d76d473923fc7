"""Home Assistant discovery payloads, without Home Assistant: every template is rendered
with Jinja (as Home Assistant does, in a sandbox) against the daemon's real state and
events, and every command a template makes is one the daemon accepts."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from typing import Any

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from stove_ctl.config import ConfigError, MqttConfig, parse_config
from stove_ctl.core.commands import parse_command
from stove_ctl.core.events import Event
from stove_ctl.surfaces import discovery
from stove_ctl.surfaces.mqtt_api import MqttApi
from tests import ha_mqtt_keys
from tests.conftest import Kitchen, run

PREFIX = "homeassistant"
NODE = "stove_ctl_kitchen"
# Strict: a missing attribute raises here, where Home Assistant would log an error.
ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
ENV.globals["now"] = lambda: dt.datetime.now(dt.UTC)


def render(template: str, **variables: Any) -> str:
    if "value" in variables and "value_json" not in variables:
        with contextlib.suppress(TypeError, ValueError):
            variables["value_json"] = json.loads(variables["value"])
    return ENV.from_string(template).render(**variables).strip()


def stoves(**mqtt: Any) -> tuple[MqttConfig, Any]:
    config = parse_config(
        {
            "relays": {"board": {"driver": "simulated", "channels": 2}},
            "stoves": [
                {
                    "id": "kitchen",
                    "burners": [
                        {"id": "left", "name": "Left", "relay": {"device": "board"}},
                        {"id": "right", "relay": {"device": "board", "channel": 2}},
                    ],
                }
            ],
            "mqtt": {"host": "127.0.0.1", **mqtt},
        }
    )
    assert config.mqtt is not None
    return config.mqtt, config.stoves


def configs(**mqtt: Any) -> dict[str, dict[str, Any]]:
    cfg, stove_list = stoves(**mqtt)
    return discovery.configs(cfg, stove_list[0], lambda leaf: f"{cfg.base_topic}/kitchen/{leaf}")


def entity(kind: str, object_id: str) -> dict[str, Any]:
    return configs()[f"{PREFIX}/{kind}/{NODE}/{object_id}/config"]


def test_every_burner_has_its_nine_entities_under_one_device() -> None:
    found = configs()
    per_burner = sorted(t.split("/")[1] for t in found if "/left_" in t)
    assert per_burner == [
        "binary_sensor",
        "binary_sensor",
        "binary_sensor",
        "button",
        "event",
        "lock",
        "number",
        "sensor",
        "sensor",
    ]
    assert len(found) == 18
    assert {c["device"]["identifiers"][0] for c in found.values()} == {NODE}
    unique_ids = [c["unique_id"] for c in found.values()]
    assert len(set(unique_ids)) == len(unique_ids)


@pytest.mark.parametrize(
    ("mqtt", "node"),
    [
        ({}, "stove_ctl_kitchen"),
        ({"base_topic": "home/flat.2"}, "home_flat_2_kitchen"),
        ({"base_topic": "home/flat2", "instance_id": "flat2"}, "flat2_kitchen"),
    ],
)
def test_node_and_unique_ids_carry_the_installation(mqtt: dict[str, Any], node: str) -> None:
    found = configs(**mqtt)
    assert all(f"/{node}/" in topic for topic in found)
    assert all(c["unique_id"].startswith(f"{node}_") for c in found.values())


def test_two_base_topics_never_share_an_id_or_a_topic() -> None:
    first, second = configs(), configs(base_topic="flat2")
    assert not set(first) & set(second)
    assert not {c["unique_id"] for c in first.values()} & {c["unique_id"] for c in second.values()}


def test_a_bad_instance_id_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        stoves(instance_id="Flat 2!")
    assert any("mqtt.instance_id" in problem for problem in caught.value.problems)


@pytest.mark.parametrize(("value", "action"), [("LOCK", "lock"), ("UNLOCK", "unlock")])
def test_the_lock_sends_commands_the_daemon_accepts_with_a_fresh_ts(
    value: str, action: str
) -> None:
    lock = entity("lock", "left_lock")
    data = json.loads(render(lock["command_template"], value=value))
    command = parse_command(data, source="mqtt")
    assert (command.action, command.burner) == (action, "left")
    assert command.ts is not None and abs(command.ts - time.time()) < 5


@pytest.mark.parametrize(("value", "seconds"), [(20, 1200), ("7.5", 450), (1, 60)])
def test_the_number_sets_a_timer_the_daemon_accepts(value: Any, seconds: float) -> None:
    number = entity("number", "left_timer")
    command = parse_command(json.loads(render(number["command_template"], value=value)), "mqtt")
    assert (command.action, command.burner, command.in_s) == ("timer", "left", seconds)


def test_the_button_is_a_shutoff() -> None:
    button = entity("button", "left_shutoff")
    command = parse_command(json.loads(button["payload_press"]), source="mqtt")
    assert (command.action, command.burner) == ("shutoff", "left")


def state_of(kitchen: Kitchen) -> str:
    """The state the daemon publishes for this kitchen, as a JSON payload."""
    cfg, stove_list = stoves()
    api = MqttApi(kitchen.controller, kitchen.events, cfg, stove_list, kitchen.clock)
    return json.dumps(api.channels["kitchen"].state())


def test_state_templates_against_the_daemons_own_state(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        await k.clock.settle()
        state = state_of(k)
        lock, flame = entity("lock", "left_lock"), entity("binary_sensor", "left_flame")
        mode, fault = entity("sensor", "left_mode"), entity("binary_sensor", "left_fault")
        assert render(lock["value_template"], value=state) == "UNLOCKED"
        assert render(flame["value_template"], value=state) == "ON"
        assert render(mode["value_template"], value=state) == "ready"
        assert render(fault["value_template"], value=state) == "OFF"
        await k.do("lock", "left")
        await k.clock.settle()
        state = state_of(k)
        assert render(lock["value_template"], value=state) == "LOCKED"
        assert render(mode["value_template"], value=state) in mode["options"]
        assert render(mode["value_template"], value=state) == "locked"
        k.board.offline = True
        await k.do("shutoff", "right")
        await k.clock.advance(1.0)
        state = state_of(k)
        right_fault = entity("binary_sensor", "right_fault")
        assert render(right_fault["value_template"], value=state) == "ON"
        attributes = json.loads(render(right_fault["json_attributes_template"], value=state))
        assert "failed" in attributes["fault"]
        k.board.offline = False
        await k.advance(10.0)

    run(body())


def event(kind: str, burner: str | None, **fields: Any) -> str:
    return json.dumps(
        Event(ts=time.time(), kind=kind, burner=burner, source="rule", **fields).model_dump()
    )


@pytest.mark.parametrize(
    ("kind", "burner", "event_type"),
    [
        ("cut_confirmed", "kitchen/left", "shutoff"),
        ("warning", "kitchen/left", "warning"),
        ("alarm", "kitchen/left", "alarm"),
        ("fault", "kitchen/left", "fault"),
        ("alarm", None, "alarm"),  # the daemon's own (a lost store): every burner's
        ("cut_confirmed", "kitchen/right", ""),  # another burner's
        ("command", "kitchen/left", ""),  # not one of the event types
        ("cut_commanded", "kitchen/left", ""),
        ("daemon_start", None, ""),
    ],
)
def test_the_event_entity_takes_its_own_burners_events(
    kind: str, burner: str | None, event_type: str
) -> None:
    events = entity("event", "left_events")
    rendered = render(
        events["value_template"], value=event(kind, burner, detail={"error": 'a "quoted" x'})
    )
    if not event_type:
        assert rendered == ""  # Home Assistant ignores an empty rendering
        return
    data = json.loads(rendered)
    assert data["event_type"] == event_type
    assert data["event_type"] in events["event_types"]
    assert data["source"] == "rule"
    assert data["detail"] == {"error": 'a "quoted" x'}


@pytest.mark.parametrize(
    ("ahead_s", "minutes"), [(None, None), (90, 2), (30, 1), (-5, 1), (3 * 86400, 1440)]
)
def test_the_timer_topic_has_the_next_cut_and_whole_minutes_left(
    ahead_s: float | None, minutes: int | None
) -> None:
    now = 1_800_000_000.0
    due = None if ahead_s is None else dt.datetime.fromtimestamp(now + ahead_s, dt.UTC)
    payload = discovery.timer_state(due.isoformat() if due else None, now)
    assert payload == {"next_cut": due.isoformat() if due else None, "minutes": minutes}
    sensor, number = entity("sensor", "left_next_cut"), entity("number", "left_timer")
    value = json.dumps(payload)
    assert render(sensor["value_template"], value=value) == (due.isoformat() if due else "None")
    shown = render(number["value_template"], value=value)
    assert shown == ("None" if minutes is None else str(minutes))
    if minutes is not None:
        assert number["min"] <= minutes <= number["max"]


# Keys only the newest Home Assistant knows; an older one drops them without a word.
NEWER_ONLY = {"sensor": {"options"}}


@pytest.mark.parametrize("version", ha_mqtt_keys.VERSIONS)
def test_every_config_uses_only_keys_home_assistant_accepts(version: str) -> None:
    """Home Assistant drops unknown keys silently, so a misspelt key would just not
    work: every key must be one this version (or, listed above, the newest) accepts,
    and every required one must be there. Key lists read off each version's own
    discovery schemas (tests/ha_mqtt_keys.py)."""
    accepted, required = ha_mqtt_keys.ACCEPTED[version], ha_mqtt_keys.REQUIRED[version]
    nested = ha_mqtt_keys.NESTED[version]
    for topic, config in configs().items():
        platform = topic.split("/")[1]
        allowed = accepted[platform]
        if version == ha_mqtt_keys.OLD:
            allowed = allowed | NEWER_ONLY.get(platform, set())
        assert set(config) <= allowed, (topic, set(config) - allowed)
        assert required[platform] <= set(config), (topic, required[platform] - set(config))
        assert set(config["device"]) <= nested["device"]
        assert set(config["origin"]) <= nested["origin"]
        assert config["device"]["identifiers"] and config["origin"]["name"]


def test_state_templates_of_a_burner_no_longer_in_the_state_render_unknown() -> None:
    """A burner renamed: the new state reaches Home Assistant before the old entities
    are removed. Their templates render unknown ("None"), never an error."""
    state = json.dumps({"stove": "kitchen", "burners": {"back": {"mode": "ready"}}})
    for kind, object_id in [
        ("lock", "right_lock"),
        ("binary_sensor", "right_flame"),
        ("sensor", "right_mode"),
        ("binary_sensor", "right_fault"),
    ]:
        assert render(entity(kind, object_id)["value_template"], value=state) == "None"
    attributes = entity("binary_sensor", "right_fault")["json_attributes_template"]
    assert json.loads(render(attributes, value=state)) == {"fault": None}


@pytest.mark.parametrize(
    ("mqtt", "client_id"),
    [
        ({}, "stove-ctl"),
        ({"base_topic": "flat2"}, "stove-ctl-flat2"),
        ({"base_topic": "home/flat.2"}, "stove-ctl-home_flat_2"),
        ({"instance_id": "b7"}, "stove-ctl-b7"),
        ({"base_topic": "flat2", "client_id": "mine"}, "mine"),
    ],
)
def test_the_client_id_follows_the_installation_unless_given(
    mqtt: dict[str, Any], client_id: str
) -> None:
    """Two installations with one client id take turns on the broker (each kick is a
    last will: every entity flips to unavailable)."""
    cfg, _ = stoves(**mqtt)
    assert cfg.client_id == client_id
