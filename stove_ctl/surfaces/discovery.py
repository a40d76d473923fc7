"""Home Assistant MQTT discovery: what each stove shows in Home Assistant.

Each stove is one device. Per burner: a shutoff ``button``; a ``lock`` (lock, and
unlock where ``mqtt`` is an allowed unlock source); the flame ``binary_sensor``; the
mode ``sensor`` (an enum); a fault ``binary_sensor`` (a problem); a self-test
``binary_sensor`` (a problem: the last self-test failed); the next cut, a
timestamp ``sensor``; a ``number`` that sets a shutoff timer in minutes; and an
``event`` entity for shutoffs, warnings, alarms and faults.

Node and unique ids carry the installation (``mqtt.instance_id``, else the base topic),
so two daemons on one broker never take over each other's entities. What was published
is remembered in ``state_dir``; an entity that no longer exists (a burner renamed or
removed) gets an empty retained config, which removes it from Home Assistant.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stove_ctl import __version__
from stove_ctl.config import MqttConfig, StoveConfig
from stove_ctl.core.burner import Mode
from stove_ctl.core.commands import MAX_DELAY_S

log = logging.getLogger(__name__)

MODES = [mode.value for mode in Mode]
# Event kinds -> the event entity's event types.
EVENT_TYPES = {
    "cut_confirmed": "shutoff",
    "warning": "warning",
    "alarm": "alarm",
    "fault": "fault",
}
TIMER_MAX_MIN = int(MAX_DELAY_S // 60)  # a timer is at most a day ahead


def node_id(mqtt: MqttConfig, stove_id: str) -> str:
    return f"{mqtt.instance}_{stove_id}"


def configs(
    mqtt: MqttConfig, stove: StoveConfig, topic: Callable[[str], str]
) -> dict[str, dict[str, Any]]:
    """Discovery topic -> config payload, for every entity of ``stove``. ``topic``
    turns a leaf (``cmd``, ``state``, ``events``) into the stove's topic."""
    prefix = mqtt.discovery_prefix
    node = node_id(mqtt, stove.id)
    common = {
        # The daemon's connection (its last will) and this stove, both online.
        "availability": [
            {"topic": f"{mqtt.base_topic}/availability"},
            {"topic": topic("availability")},
        ],
        "availability_mode": "all",
        "device": {
            "identifiers": [node],
            "name": stove.name or f"Stove {stove.id}",
            "manufacturer": "stove-ctl",
            "model": "Gas stove shutoff controller",
            "sw_version": __version__,
        },
        "origin": {"name": "stove-ctl", "sw_version": __version__},
    }
    state, cmd = topic("state"), topic("cmd")
    out: dict[str, dict[str, Any]] = {}

    def add(platform: str, object_id: str, config: dict[str, Any]) -> None:
        out[f"{prefix}/{platform}/{node}/{object_id}/config"] = {
            **common,
            "unique_id": f"{node}_{object_id}",
            **config,
        }

    for burner in stove.burners:
        name = burner.name or burner.id
        # This burner's part of the state, {} if the state has none (the burner was
        # renamed and this entity is about to be removed): never a template error.
        b = f"{{% set b = value_json.burners.get({json.dumps(burner.id)}) or {{}} %}}"
        key = f"{stove.id}/{burner.id}"
        add(
            "button",
            f"{burner.id}_shutoff",
            {
                "name": f"Shut off {name}",
                "command_topic": cmd,
                "payload_press": json.dumps({"action": "shutoff", "burner": burner.id}),
                "icon": "mdi:fire-off",
            },
        )
        # ``value`` is payload_lock or payload_unlock. Unlock is a restore-direction
        # action: it carries the time it was sent, and is refused unless mqtt is in
        # trust.unlock_sources.
        add(
            "lock",
            f"{burner.id}_lock",
            {
                "name": f"{name} lock",
                "command_topic": cmd,
                "command_template": (
                    "{\"action\": \"{{ 'lock' if value == 'LOCK' else 'unlock' }}\", "
                    f'"burner": {json.dumps(burner.id)}, '
                    '"ts": {{ now().timestamp() }}}'
                ),
                "state_topic": state,
                "value_template": (
                    f"{b}{{{{ 'None' if not b else "
                    "('LOCKED' if b.get('locked') else 'UNLOCKED') }}"
                ),
                "icon": "mdi:gas-burner",
            },
        )
        add(
            "binary_sensor",
            f"{burner.id}_flame",
            {
                "name": f"{name} flame",
                "state_topic": state,
                "value_template": (
                    f"{b}{{% set f = b.get('flame') %}}"
                    "{{ 'ON' if f == 'lit' else ('OFF' if f == 'out' else 'None') }}"
                ),
                "device_class": "heat",
                "icon": "mdi:fire",
            },
        )
        add(
            "sensor",
            f"{burner.id}_mode",
            {
                "name": f"{name} mode",
                "state_topic": state,
                "value_template": f"{b}{{{{ b.get('mode') or 'None' }}}}",
                "device_class": "enum",
                "options": MODES,
                "icon": "mdi:state-machine",
            },
        )
        add(
            "binary_sensor",
            f"{burner.id}_fault",
            {
                "name": f"{name} fault",
                "state_topic": state,
                "value_template": (
                    f"{b}{{{{ 'None' if not b else ('ON' if b.get('fault') else 'OFF') }}}}"
                ),
                "device_class": "problem",
                "json_attributes_topic": state,
                "json_attributes_template": f"{b}{{{{ {{'fault': b.get('fault')}} | tojson }}}}",
            },
        )
        add("binary_sensor", f"{burner.id}_self_test", _self_test_entity(name, state, b))
        timer = topic(f"burners/{burner.id}/timer")  # retained, sent when it changes
        add(
            "sensor",
            f"{burner.id}_next_cut",
            {
                "name": f"{name} next cut",
                "state_topic": timer,
                # "None" is unknown (Home Assistant 2024.10 and later; before, a
                # timestamp sensor logs one warning each time the timer goes away).
                "value_template": "{{ value_json.next_cut or 'None' }}",
                "device_class": "timestamp",
                "icon": "mdi:timer-outline",
            },
        )
        add(
            "number",
            f"{burner.id}_timer",
            {
                "name": f"Shut off {name} in",
                "command_topic": cmd,
                "command_template": (
                    '{"action": "timer", '
                    f'"burner": {json.dumps(burner.id)}, '
                    '"in": {{ (value | float * 60) | round(0) | int }}}'
                ),
                # Minutes left until the next cut, unknown when none is due.
                "state_topic": timer,
                "value_template": (
                    "{{ 'None' if value_json.minutes is none else value_json.minutes }}"
                ),
                "min": 1,
                "max": TIMER_MAX_MIN,
                "step": 1,
                "mode": "box",
                "unit_of_measurement": "min",
                "icon": "mdi:timer-plus-outline",
            },
        )
        kinds = json.dumps(EVENT_TYPES)
        add(
            "event",
            f"{burner.id}_events",
            {
                "name": f"{name} events",
                "state_topic": topic("events"),
                "event_types": sorted(set(EVENT_TYPES.values())),
                # One stove's events topic carries every burner's events: this entity
                # takes its own burner's, and the daemon's alarms (no burner). Anything
                # else renders empty, which Home Assistant ignores.
                "value_template": (
                    f"{{% set t = {kinds}.get(value_json.kind) %}}"
                    f"{{% if t and value_json.burner in ({json.dumps(key)}, none) %}}"
                    "{{ {'event_type': t, 'source': value_json.source, "
                    "'command_id': value_json.command_id, 'detail': value_json.detail}"
                    " | tojson }}{% endif %}"
                ),
                "icon": "mdi:bell-alert",
            },
        )
    return out


def _self_test_entity(name: str, state: str, b: str) -> dict[str, Any]:
    """A problem when the burner's last self-test failed; its result, date, problems,
    commissioning and reminders as attributes (stove_ctl/core/selftest.py)."""
    attributes = (
        "{'self_test': b.get('self_test'), 'commissioning': b.get('commissioning'), "
        "'reminders': b.get('reminders', [])}"
    )
    return {
        "name": f"{name} self-test",
        "state_topic": state,
        "value_template": (
            f"{b}{{{{ 'None' if not b else ('ON' if b.get('self_test_problem') else 'OFF') }}}}"
        ),
        "device_class": "problem",
        "json_attributes_topic": state,
        "json_attributes_template": f"{b}{{{{ {attributes} | tojson }}}}",
        "icon": "mdi:clipboard-check-outline",
    }


def timer_state(next_cut: str | None, now: float) -> dict[str, Any]:
    """A burner's ``…/burners/<id>/timer`` payload: the next cut (ISO time) and the
    whole minutes left until it (at least 1, at most a day), or both None."""
    if next_cut is None:
        return {"next_cut": None, "minutes": None}
    left = dt.datetime.fromisoformat(next_cut).timestamp() - now
    return {"next_cut": next_cut, "minutes": min(max(math.ceil(left / 60), 1), TIMER_MAX_MIN)}


class Published:
    """What this daemon published, kept in ``state_dir`` (``discovery.json``): the
    discovery topics of its entities, and those of entities it removed. Home Assistant
    only hears a removal (an empty retained config) while it is connected, so removed
    entities are cleared again every time it comes online (the last ``MAX_REMOVED``)."""

    MAX_REMOVED = 1000

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> tuple[set[str] | None, set[str]]:
        """(topics published last time, or None if not known; topics removed)."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None, set()
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s (%s): stale entities are not cleared", self.path, exc)
            return None, set()
        published, removed = (
            _topics(data.get(key)) if isinstance(data, dict) else None
            for key in ("published", "removed")
        )
        if published is None or removed is None:
            log.warning("%s is not two lists of topics: stale entities are not cleared", self.path)
            return None, set()
        return published, removed

    def save(self, published: set[str], removed: set[str]) -> None:
        data = {
            "published": sorted(published),
            "removed": sorted(removed)[: self.MAX_REMOVED],
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(data, indent=1))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)


def _topics(value: Any) -> set[str] | None:
    """``value`` as a set of topics, if it is a list of strings."""
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        return None
    return set(value)


def legacy(mqtt: MqttConfig, stoves: list[StoveConfig]) -> set[str]:
    """Topics an earlier stove-ctl published that this one no longer does: the lock
    was a ``switch`` before it became a ``lock``."""
    prefix = mqtt.discovery_prefix
    return {
        f"{prefix}/switch/{node_id(mqtt, s.id)}/{b.id}_lock/config"
        for s in stoves
        for b in s.burners
    }
