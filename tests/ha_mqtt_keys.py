"""Home Assistant MQTT discovery config keys for stove-ctl's platforms.

Platforms: button, lock, binary_sensor, sensor, number, event.
Versions:  2024.3.3 and 2026.11.0 (newest homeassistant release on pypi.org when
checked on 2026-12-05: `pip index versions homeassistant --python-version 3.15
--only-binary=:all:` -> 2026.11.0; it requires Python >= 3.14.2, so a plain
`--python-version 3.13`/`3.14` query stops at 2025.4.4 / 2026.2.3).

Where the data came from
------------------------
* Wheels: `pip download homeassistant==2024.3.3 --no-deps` and
  `pip download homeassistant==2026.11.0 --python-version 3.15 --only-binary=:all: --no-deps`
  (pypi.org), unpacked.
* Key sets were NOT typed by hand: they were extracted by walking each
  platform's `DISCOVERY_SCHEMA` object at runtime (voluptuous in 2024.3.3,
  `probatio` - HA's voluptuous replacement - in 2026.11.0), with HA imported in
  throw-away venvs (2024.3.3 on Python 3.11; 2026.11.0 on Python 3.13
  after mechanically rewriting PEP 758 `except A, B:` syntax and adding
  `from __future__ import annotations`; no logic was changed).
* Source files the schemas are defined in:
    2024.3.3  homeassistant/components/mqtt/{button,lock,binary_sensor,sensor,number,event}.py
              shared keys: mqtt/config.py (SCHEMA_BASE, MQTT_RO_SCHEMA, MQTT_RW_SCHEMA)
                           mqtt/mixins.py:159-247 (availability, device, MQTT_ENTITY_COMMON_SCHEMA)
                           mqtt/discovery.py:87-95 (MQTT_ORIGIN_INFO_SCHEMA)
    2026.11.0 homeassistant/components/mqtt/{button,lock,binary_sensor,sensor,number,event}.py
              shared keys: mqtt/config.py:22-46, mqtt/schemas.py:82-217

Semantics
---------
* Keys are full names (abbreviations such as `stat_t` are expanded by
  discovery before validation: mqtt/abbreviations.py).
* All six DISCOVERY_SCHEMAs use `extra=REMOVE_EXTRA`: a key that is not in
  ACCEPTED[version][platform] is dropped SILENTLY (no log).  So sending a key
  that only a newer HA knows is harmless on an older HA, and vice versa.
  A key that IS accepted but has an invalid value rejects the whole entity
  (ERROR "Error '...' when processing MQTT discovery message topic: ...").
* `availability` and `availability_topic` are mutually exclusive
  (vol.Exclusive group "availability").  Top-level `payload_available` /
  `payload_not_available` / `availability_template` only apply to
  `availability_topic`; list entries carry their own keys (NESTED below).
* `platform` is added by discovery itself ("mqtt") and is not listed.
* Conditional rules that a flat key list cannot express are in CONDITIONAL.
"""

VERSIONS = ("2024.3.3", "2026.11.0")
OLD, NEWEST = VERSIONS

ACCEPTED: dict[str, dict[str, frozenset[str]]] = {
    "2024.3.3": {
        "button": frozenset(
            {
                "availability",
                "availability_mode",
                "availability_template",
                "availability_topic",
                "command_template",
                "command_topic",
                "device",
                "device_class",
                "enabled_by_default",
                "encoding",
                "entity_category",
                "icon",
                "json_attributes_template",
                "json_attributes_topic",
                "name",
                "object_id",
                "origin",
                "payload_available",
                "payload_not_available",
                "payload_press",
                "qos",
                "retain",
                "unique_id",
            }
        ),
        "lock": frozenset(
            {
                "availability",
                "availability_mode",
                "availability_template",
                "availability_topic",
                "code_format",
                "command_template",
                "command_topic",
                "device",
                "enabled_by_default",
                "encoding",
                "entity_category",
                "icon",
                "json_attributes_template",
                "json_attributes_topic",
                "name",
                "object_id",
                "optimistic",
                "origin",
                "payload_available",
                "payload_lock",
                "payload_not_available",
                "payload_open",
                "payload_reset",
                "payload_unlock",
                "qos",
                "retain",
                "state_jammed",
                "state_locked",
                "state_locking",
                "state_topic",
                "state_unlocked",
                "state_unlocking",
                "unique_id",
                "value_template",
            }
        ),
        "binary_sensor": frozenset(
            {
                "availability",
                "availability_mode",
                "availability_template",
                "availability_topic",
                "device",
                "device_class",
                "enabled_by_default",
                "encoding",
                "entity_category",
                "expire_after",
                "force_update",
                "icon",
                "json_attributes_template",
                "json_attributes_topic",
                "name",
                "object_id",
                "off_delay",
                "origin",
                "payload_available",
                "payload_not_available",
                "payload_off",
                "payload_on",
                "qos",
                "state_topic",
                "unique_id",
                "value_template",
            }
        ),
        "sensor": frozenset(
            {
                "availability",
                "availability_mode",
                "availability_template",
                "availability_topic",
                "device",
                "device_class",
                "enabled_by_default",
                "encoding",
                "entity_category",
                "expire_after",
                "force_update",
                "icon",
                "json_attributes_template",
                "json_attributes_topic",
                "last_reset_value_template",
                "name",
                "object_id",
                "origin",
                "payload_available",
                "payload_not_available",
                "qos",
                "state_class",
                "state_topic",
                "suggested_display_precision",
                "unique_id",
                "unit_of_measurement",
                "value_template",
            }
        ),
        "number": frozenset(
            {
                "availability",
                "availability_mode",
                "availability_template",
                "availability_topic",
                "command_template",
                "command_topic",
                "device",
                "device_class",
                "enabled_by_default",
                "encoding",
                "entity_category",
                "icon",
                "json_attributes_template",
                "json_attributes_topic",
                "max",
                "min",
                "mode",
                "name",
                "object_id",
                "optimistic",
                "origin",
                "payload_available",
                "payload_not_available",
                "payload_reset",
                "qos",
                "retain",
                "state_topic",
                "step",
                "unique_id",
                "unit_of_measurement",
                "value_template",
            }
        ),
        "event": frozenset(
            {
                "availability",
                "availability_mode",
                "availability_template",
                "availability_topic",
                "device",
                "device_class",
                "enabled_by_default",
                "encoding",
                "entity_category",
                "event_types",
                "icon",
                "json_attributes_template",
                "json_attributes_topic",
                "name",
                "object_id",
                "origin",
                "payload_available",
                "payload_not_available",
                "qos",
                "state_topic",
                "unique_id",
                "value_template",
            }
        ),
    },
    "2026.11.0": {
        "button": frozenset(
            {
                "availability",
                "availability_mode",
                "availability_template",
                "availability_topic",
                "command_template",
                "command_topic",
                "default_entity_id",
                "device",
                "device_class",
                "enabled_by_default",
                "encoding",
                "entity_category",
                "entity_picture",
                "group",
                "icon",
                "json_attributes_template",
                "json_attributes_topic",
                "message_expiry_interval",
                "name",
                "origin",
                "payload_available",
                "payload_not_available",
                "payload_press",
                "qos",
                "retain",
                "unique_id",
                "visible_by_default",
            }
        ),
        "lock": frozenset(
            {
                "availability",
                "availability_mode",
                "availability_template",
                "availability_topic",
                "code_format",
                "command_template",
                "command_topic",
                "default_entity_id",
                "device",
                "enabled_by_default",
                "encoding",
                "entity_category",
                "entity_picture",
                "group",
                "icon",
                "json_attributes_template",
                "json_attributes_topic",
                "message_expiry_interval",
                "name",
                "optimistic",
                "origin",
                "payload_available",
                "payload_lock",
                "payload_not_available",
                "payload_open",
                "payload_reset",
                "payload_unlock",
                "qos",
                "retain",
                "state_jammed",
                "state_locked",
                "state_locking",
                "state_open",
                "state_opening",
                "state_topic",
                "state_unlocked",
                "state_unlocking",
                "unique_id",
                "value_template",
                "visible_by_default",
            }
        ),
        "binary_sensor": frozenset(
            {
                "availability",
                "availability_mode",
                "availability_template",
                "availability_topic",
                "default_entity_id",
                "device",
                "device_class",
                "enabled_by_default",
                "encoding",
                "entity_category",
                "entity_picture",
                "expire_after",
                "force_update",
                "group",
                "icon",
                "json_attributes_template",
                "json_attributes_topic",
                "message_expiry_interval",
                "name",
                "off_delay",
                "origin",
                "payload_available",
                "payload_not_available",
                "payload_off",
                "payload_on",
                "qos",
                "state_topic",
                "unique_id",
                "value_template",
                "visible_by_default",
            }
        ),
        "sensor": frozenset(
            {
                "availability",
                "availability_mode",
                "availability_template",
                "availability_topic",
                "default_entity_id",
                "device",
                "device_class",
                "enabled_by_default",
                "encoding",
                "entity_category",
                "entity_picture",
                "expire_after",
                "force_update",
                "group",
                "icon",
                "json_attributes_template",
                "json_attributes_topic",
                "last_reset_value_template",
                "message_expiry_interval",
                "name",
                "options",
                "origin",
                "payload_available",
                "payload_not_available",
                "qos",
                "state_class",
                "state_topic",
                "suggested_display_precision",
                "unique_id",
                "unit_of_measurement",
                "value_template",
                "visible_by_default",
            }
        ),
        "number": frozenset(
            {
                "availability",
                "availability_mode",
                "availability_template",
                "availability_topic",
                "command_template",
                "command_topic",
                "default_entity_id",
                "device",
                "device_class",
                "enabled_by_default",
                "encoding",
                "entity_category",
                "entity_picture",
                "group",
                "icon",
                "json_attributes_template",
                "json_attributes_topic",
                "max",
                "message_expiry_interval",
                "min",
                "mode",
                "name",
                "optimistic",
                "origin",
                "payload_available",
                "payload_not_available",
                "payload_reset",
                "qos",
                "retain",
                "state_topic",
                "step",
                "unique_id",
                "unit_of_measurement",
                "value_template",
                "visible_by_default",
            }
        ),
        "event": frozenset(
            {
                "availability",
                "availability_mode",
                "availability_template",
                "availability_topic",
                "default_entity_id",
                "device",
                "device_class",
                "enabled_by_default",
                "encoding",
                "entity_category",
                "entity_picture",
                "event_types",
                "group",
                "icon",
                "json_attributes_template",
                "json_attributes_topic",
                "message_expiry_interval",
                "name",
                "origin",
                "payload_available",
                "payload_not_available",
                "qos",
                "state_topic",
                "unique_id",
                "value_template",
                "visible_by_default",
            }
        ),
    },
}

REQUIRED: dict[str, dict[str, frozenset[str]]] = {
    "2024.3.3": {
        "button": frozenset({"command_topic"}),
        "lock": frozenset({"command_topic"}),
        "binary_sensor": frozenset({"state_topic"}),
        "sensor": frozenset({"state_topic"}),
        "number": frozenset({"command_topic"}),
        "event": frozenset({"event_types", "state_topic"}),
    },
    "2026.11.0": {
        "button": frozenset({"command_topic"}),
        "lock": frozenset({"command_topic"}),
        "binary_sensor": frozenset({"state_topic"}),
        "sensor": frozenset({"state_topic"}),
        "number": frozenset({"command_topic"}),
        "event": frozenset({"event_types", "state_topic"}),
    },
}

# Defaults HA fills in when a key is omitted (enum defaults by value).
DEFAULTS: dict[str, dict[str, dict[str, object]]] = {
    "2024.3.3": {
        "button": {
            "availability_mode": "latest",
            "enabled_by_default": True,
            "encoding": "utf-8",
            "payload_available": "online",
            "payload_not_available": "offline",
            "payload_press": "PRESS",
            "qos": 0,
            "retain": False,
        },
        "lock": {
            "availability_mode": "latest",
            "enabled_by_default": True,
            "encoding": "utf-8",
            "optimistic": False,
            "payload_available": "online",
            "payload_lock": "LOCK",
            "payload_not_available": "offline",
            "payload_reset": "None",
            "payload_unlock": "UNLOCK",
            "qos": 0,
            "retain": False,
            "state_jammed": "JAMMED",
            "state_locked": "LOCKED",
            "state_locking": "LOCKING",
            "state_unlocked": "UNLOCKED",
            "state_unlocking": "UNLOCKING",
        },
        "binary_sensor": {
            "availability_mode": "latest",
            "enabled_by_default": True,
            "encoding": "utf-8",
            "force_update": False,
            "payload_available": "online",
            "payload_not_available": "offline",
            "payload_off": "OFF",
            "payload_on": "ON",
            "qos": 0,
        },
        "sensor": {
            "availability_mode": "latest",
            "enabled_by_default": True,
            "encoding": "utf-8",
            "force_update": False,
            "payload_available": "online",
            "payload_not_available": "offline",
            "qos": 0,
        },
        "number": {
            "availability_mode": "latest",
            "enabled_by_default": True,
            "encoding": "utf-8",
            "max": 100.0,
            "min": 0.0,
            "mode": "auto",
            "optimistic": False,
            "payload_available": "online",
            "payload_not_available": "offline",
            "payload_reset": "None",
            "qos": 0,
            "retain": False,
            "step": 1.0,
        },
        "event": {
            "availability_mode": "latest",
            "enabled_by_default": True,
            "encoding": "utf-8",
            "payload_available": "online",
            "payload_not_available": "offline",
            "qos": 0,
        },
    },
    "2026.11.0": {
        "button": {
            "availability_mode": "latest",
            "enabled_by_default": True,
            "encoding": "utf-8",
            "payload_available": "online",
            "payload_not_available": "offline",
            "payload_press": "PRESS",
            "qos": 0,
            "retain": False,
            "visible_by_default": True,
        },
        "lock": {
            "availability_mode": "latest",
            "enabled_by_default": True,
            "encoding": "utf-8",
            "optimistic": False,
            "payload_available": "online",
            "payload_lock": "LOCK",
            "payload_not_available": "offline",
            "payload_reset": "None",
            "payload_unlock": "UNLOCK",
            "qos": 0,
            "retain": False,
            "state_jammed": "JAMMED",
            "state_locked": "LOCKED",
            "state_locking": "LOCKING",
            "state_open": "OPEN",
            "state_opening": "OPENING",
            "state_unlocked": "UNLOCKED",
            "state_unlocking": "UNLOCKING",
            "visible_by_default": True,
        },
        "binary_sensor": {
            "availability_mode": "latest",
            "enabled_by_default": True,
            "encoding": "utf-8",
            "force_update": False,
            "payload_available": "online",
            "payload_not_available": "offline",
            "payload_off": "OFF",
            "payload_on": "ON",
            "qos": 0,
            "visible_by_default": True,
        },
        "sensor": {
            "availability_mode": "latest",
            "enabled_by_default": True,
            "encoding": "utf-8",
            "force_update": False,
            "payload_available": "online",
            "payload_not_available": "offline",
            "qos": 0,
            "visible_by_default": True,
        },
        "number": {
            "availability_mode": "latest",
            "enabled_by_default": True,
            "encoding": "utf-8",
            "max": 100.0,
            "min": 0.0,
            "mode": "auto",
            "optimistic": False,
            "payload_available": "online",
            "payload_not_available": "offline",
            "payload_reset": "None",
            "qos": 0,
            "retain": False,
            "step": 1.0,
            "visible_by_default": True,
        },
        "event": {
            "availability_mode": "latest",
            "enabled_by_default": True,
            "encoding": "utf-8",
            "payload_available": "online",
            "payload_not_available": "offline",
            "qos": 0,
            "visible_by_default": True,
        },
    },
}

# Keys of nested dicts (same extraction; `device` also validated by
# validate_device_has_at_least_one_identifier: identifiers or connections required).
NESTED: dict[str, dict[str, dict[str, frozenset[str]]]] = {
    "2024.3.3": {
        "device": frozenset(
            {
                "identifiers",
                "connections",
                "manufacturer",
                "model",
                "name",
                "hw_version",
                "serial_number",
                "sw_version",
                "via_device",
                "suggested_area",
                "configuration_url",
                # "via_hub" is accepted as a deprecated alias and renamed to via_device
            }
        ),
        "origin": frozenset({"name", "sw_version", "support_url"}),  # name required
        "availability[]": frozenset(
            {"topic", "payload_available", "payload_not_available", "value_template"}
        ),  # topic required
    },
    "2026.11.0": {
        "device": frozenset(
            {
                "identifiers",
                "connections",
                "manufacturer",
                "model",
                "model_id",
                "name",
                "hw_version",
                "serial_number",
                "sw_version",
                "via_device",
                "suggested_area",
                "configuration_url",
                "child_device",  # {"identifiers": [...] (required), "name": ...}; needs unique_id
                # "via_hub" is removed with a logged message (raise_if_present=False)
            }
        ),
        "origin": frozenset({"name", "sw_version", "support_url"}),  # name required
        "availability[]": frozenset(
            {"topic", "payload_available", "payload_not_available", "value_template"}
        ),  # topic required
    },
}

NESTED_REQUIRED = {
    "origin": frozenset({"name"}),
    "availability[]": frozenset({"topic"}),
    "device": "identifiers or connections (at least one, non-empty)",
}

# Rules enforced by extra validators / entity code, per version.
CONDITIONAL: dict[str, dict[str, list[str]]] = {
    "2024.3.3": {
        "number": ["min < max, else schema error \"'max' must be > 'min'\" (number.py:76-81)"],
        "sensor": [
            "last_reset_topic present -> schema error (cv.removed, sensor.py:86-98)",
            "entity_category 'config' -> HomeAssistantError when the entity is added "
            "(sensor/__init__.py:301-304); same for binary_sensor",
        ],
        "event": [],
        "lock": ["no state_topic -> forced optimistic"],
        "button": [],
        "binary_sensor": [],
    },
    "2026.11.0": {
        "number": [
            'min <= max (min == max allowed), else "max must be >= min" (number.py:71-82)',
            "ambiguous units are normalised (AMBIGUOUS_UNITS)",
        ],
        "sensor": [
            "options requires device_class 'enum', must be non-empty, and excludes "
            "state_class / unit_of_measurement (sensor.py:112-128)",
            "last_reset_value_template requires state_class 'total' (sensor.py:97-104)",
            "unit_of_measurement must be valid for device_class / state_class "
            "(e.g. temperature needs '°C'/'°F'/'K'); '' or whitespace unit is dropped (sensor.py:106-158)",
            "entity_category 'config' is a schema error (util.entity_category_without_config)",
        ],
        "binary_sensor": ["entity_category 'config' is a schema error"],
        "event": [],
        "lock": ["no state_topic -> forced optimistic"],
        "button": [],
        "device": ["device.child_device requires unique_id (schemas.py:220-229)"],
    },
}

# Keys present in only one of the two versions, with the first release that has them
# where it was pinned down.  "checked" = verified in the unpacked wheel of that
# release; "PR" = from the merge date of the PR (not checked in a wheel).
INTRODUCED = {
    "sensor.options": "2024.9 (PR home-assistant/core#123248; present in 2024.10.0 wheel, absent in 2024.3.3)",
    "lock.state_open": "2024.6 (PR #117110; present in 2024.10.0 wheel)",
    "lock.state_opening": "2024.6 (PR #117110; present in 2024.10.0 wheel)",
    "*.entity_picture": "2024.11.0 (checked: absent 2024.10.0, present 2024.11.0; PR #128404)",
    "*.default_entity_id": "2025.10 (PR #151775 deprecating object_id); present in 2026.3.0 wheel",
    "*.object_id": "REMOVED in 2026.4.0 (checked: present 2026.3.0 with deprecation warning, absent 2026.4.0)",
    "*.group": "2026.4.0 (checked: absent 2026.3.0, present 2026.4.0; PR #152270)",
    "*.visible_by_default": "between 2026.4.0 and 2026.11.0 (absent in 2026.4.0 wheel; PR #168832 merged 2026-04-22 -> ~2026.5)",
    "*.message_expiry_interval": "between 2026.4.0 and 2026.11.0 (PR #171143 merged 2026-05-18 -> ~2026.6)",
}


def only_in(version: str, platform: str) -> frozenset[str]:
    """Keys accepted by `version` but not by the other listed version."""
    other = NEWEST if version == OLD else OLD
    return ACCEPTED[version][platform] - ACCEPTED[other][platform]


COMMON_TO_BOTH: dict[str, frozenset[str]] = {
    p: ACCEPTED[OLD][p] & ACCEPTED[NEWEST][p] for p in ACCEPTED[OLD]
}


if __name__ == "__main__":
    for plat in ACCEPTED[OLD]:
        print(f"{plat}:")
        print(f"  required (both): {sorted(REQUIRED[OLD][plat])}")
        print(f"  only {OLD}: {sorted(only_in(OLD, plat))}")
        print(f"  only {NEWEST}: {sorted(only_in(NEWEST, plat))}")
