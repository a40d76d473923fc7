"""How each MQTT relay firmware is spoken to: data, not code.

Templates may use ``{device}`` (the device's topic, friendly name or prefix),
``{n}`` (channel, from 1), ``{i}`` (channel, from 0), ``{idx}`` (Tasmota's relay
index: empty on a one-relay device), ``{ep}`` (a Zigbee2MQTT endpoint suffix such as
``_l1``), ``{name}`` (an ESPHome switch object id), ``{src}`` (our RPC client id),
``{req}`` (an RPC request id), ``{value}`` (the on/off payload) and ``{hold}`` (the
device-side pulse, already encoded for the firmware).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StateSource:
    """Where a channel's state is reported and how to read it."""

    topic: str
    json_path: str | None = None  # dotted path into a JSON payload; None: plain payload
    on: object = "ON"
    off: object = "OFF"
    # For RPC replies that carry the channel in the payload: (path, template) that must match.
    match: tuple[str, str] | None = None


@dataclass(frozen=True)
class Availability:
    topic: str
    online: tuple[str, ...]
    offline: tuple[str, ...]
    json_path: str | None = None  # e.g. "state" for {"state": "online"}


@dataclass(frozen=True)
class Pulse:
    """A device-side pulse: messages that switch on and make the device switch back."""

    messages: tuple[tuple[str, str], ...]
    encode: Callable[[float], str]
    # Messages that cancel a pulse setting before a plain set (so a lock holds).
    disarm: tuple[tuple[str, str], ...] = ()


NO_ONLY = frozenset({"no"})


@dataclass(frozen=True)
class Preset:
    """How to speak to a firmware, and what its hardware is known to have.

    ``contacts``: the relay contacts every device of this kind has, ``"no"``
    (normally open) and/or ``"nc"`` (normally closed); None where the firmware runs on
    boards with either and the preset cannot know. Which wiring modes a relay can be
    used for follows from it (hardware/WIRING.md); a relay's config may state its own.
    """

    name: str
    set_topic: str
    payload_on: str
    payload_off: str
    states: tuple[StateSource, ...]
    query: tuple[str, str] | None = None
    availability: Availability | None = None
    pulse: Pulse | None = None
    defaults: dict[str, str] = field(default_factory=dict)
    contacts: frozenset[str] | None = None


def tasmota_pulse_time(seconds: float) -> str:
    """Tasmota PulseTime: 1-111 in 0.1 s steps, 112-64900 as seconds + 100."""
    if seconds <= 11.1:
        return str(max(1, round(seconds * 10)))
    return str(min(64900, round(seconds) + 100))


def whole_seconds(seconds: float) -> str:
    return str(max(1, round(seconds)))


def plain_seconds(seconds: float) -> str:
    return f"{seconds:g}"


# Tasmota, Zigbee2MQTT and ESPHome run on relays with an NO contact only, with NO and
# NC (changeover), or with either per channel: contacts unknown (None).
TASMOTA = Preset(
    name="tasmota",
    set_topic="cmnd/{device}/POWER{idx}",
    payload_on="ON",
    payload_off="OFF",
    states=(
        StateSource("stat/{device}/POWER{idx}"),
        StateSource("stat/{device}/RESULT", json_path="POWER{idx}"),
    ),
    query=("cmnd/{device}/POWER{idx}", ""),
    availability=Availability("tele/{device}/LWT", ("Online",), ("Offline",)),
    pulse=Pulse(
        messages=(("cmnd/{device}/PulseTime{n}", "{hold}"), ("cmnd/{device}/POWER{idx}", "ON")),
        encode=tasmota_pulse_time,
        # PulseTime is a stored setting that ends every later ON: clear it before a hold.
        disarm=(("cmnd/{device}/PulseTime{n}", "0"),),
    ),
)

ZIGBEE2MQTT = Preset(
    name="zigbee2mqtt",
    set_topic="zigbee2mqtt/{device}/set",
    payload_on='{{"state{ep}": "ON"}}',
    payload_off='{{"state{ep}": "OFF"}}',
    states=(StateSource("zigbee2mqtt/{device}", json_path="state{ep}"),),
    query=("zigbee2mqtt/{device}/get", '{{"state{ep}": ""}}'),
    availability=Availability(
        "zigbee2mqtt/{device}/availability", ("online",), ("offline",), "state"
    ),
    pulse=Pulse(
        messages=(("zigbee2mqtt/{device}/set", '{{"state{ep}": "ON", "on_time": {hold}}}'),),
        encode=whole_seconds,
    ),
)

SHELLY_GEN2 = Preset(
    name="shelly_gen2",
    set_topic="{device}/rpc",
    payload_on=(
        '{{"id": {req}, "src": "{src}", "method": "Switch.Set", '
        '"params": {{"id": {i}, "on": true}}}}'
    ),
    payload_off=(
        '{{"id": {req}, "src": "{src}", "method": "Switch.Set", '
        '"params": {{"id": {i}, "on": false}}}}'
    ),
    states=(
        # NotifyStatus (on by default) carries only what changed; status/switch:<id>
        # only comes with "generic status update over MQTT" turned on.
        StateSource(
            "{device}/events/rpc", json_path="params.switch:{i}.output", on=True, off=False
        ),
        StateSource("{device}/status/switch:{i}", json_path="output", on=True, off=False),
        StateSource(
            "{src}/rpc", json_path="result.output", on=True, off=False, match=("result.id", "{i}")
        ),
    ),
    query=(
        "{device}/rpc",
        '{{"id": {req}, "src": "{src}", "method": "Switch.GetStatus", "params": {{"id": {i}}}}}',
    ),
    availability=Availability("{device}/online", ("true",), ("false",)),
    pulse=Pulse(
        messages=(
            (
                "{device}/rpc",
                '{{"id": {req}, "src": "{src}", "method": "Switch.Set", '
                '"params": {{"id": {i}, "on": true, "toggle_after": {hold}}}}}',
            ),
        ),
        encode=plain_seconds,
    ),
    # A Shelly relay closes when on and has no NC terminal: one normally-open contact
    # per channel (dry, I to O, on the Plus 1 / Pro 1; the PM models switch mains L to O).
    contacts=NO_ONLY,
)

ESPHOME = Preset(
    name="esphome",
    set_topic="{device}/switch/{name}/command",
    payload_on="ON",
    payload_off="OFF",
    states=(StateSource("{device}/switch/{name}/state"),),
    availability=Availability("{device}/status", ("online",), ("offline",)),
)

PRESETS = {p.name: p for p in (TASMOTA, ZIGBEE2MQTT, SHELLY_GEN2, ESPHOME)}
