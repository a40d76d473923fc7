"""The config file's sections: relays, stoves and burners, MQTT, schedules, lock
windows, sensor inputs, rules and trust. The root model and the YAML reader are in
``stove_ctl.config``."""

from __future__ import annotations

import datetime as dt
import re
from ipaddress import IPv4Address
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from stove_ctl.drivers.relay import Wiring

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
Source = Literal["cli", "mqtt", "voice", "mihome", "timer", "rule", "startup", "web"]
RESERVED_BURNER_IDS = {"all"}


class Model(BaseModel):
    """Every section: unknown keys are errors, and a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Contact = Literal["no", "nc"]
# The contact each wiring mode is built with (hardware/WIRING.md).
CONTACT_FOR: dict[Wiring, Contact] = {
    Wiring.NC_SERIES: "nc",
    Wiring.NO_PARALLEL: "no",
    Wiring.NO_SERIES: "no",
}


def _contacts_field() -> Any:
    return Field(
        None,
        min_length=1,
        description='The relay\'s contacts: ["no"], ["no", nc] or [nc]; default: its preset\'s, '
        "or unknown.",
    )


def _contact_words(value: Any) -> Any:
    # YAML reads a bare no (and off, n, false) as false: ask for quotes, as for times.
    if isinstance(value, list | tuple | set | frozenset) and any(
        isinstance(v, bool) for v in value
    ):
        raise ValueError(
            'write "no" in quotes: YAML reads a bare no as false (e.g. contacts: ["no", nc])'
        )
    return value


class SimulatedRelayConfig(Model):
    """A relay board simulated in-process, wired to the stove model in ``hardware/``."""

    driver: Literal["simulated"]
    channels: int = Field(2, ge=1, le=32)
    power_on_state: Literal["off", "on"] = "off"
    contact_resistance_ohm: float = Field(0.005, gt=0, le=10)
    start_lit: bool = Field(
        False, description="Burners on this board start lit, as if someone was cooking."
    )
    miswire: dict[Slug, Literal["outside_circuit", "inverted", "high_resistance", "swapped"]] = (
        Field(
            default_factory=dict,
            description="Installation mistakes to simulate, by burner id (hardware/miswire.py).",
        )
    )


class OffDelayConfig(Model):
    """A countdown property (in seconds) after which the device switches the channel off."""

    siid: int = Field(ge=1, le=255)
    piid: int = Field(ge=1, le=255)
    disarm: int | None = Field(
        None, description="The value meaning 'no countdown' (yeelink.switch.sw1: -1)."
    )


class MiioChannelConfig(Model):
    """Where a channel's switch lives in the device's MIoT spec."""

    siid: int = Field(ge=1, le=255)
    piid: int = Field(1, ge=1, le=255)
    off_delay: OffDelayConfig | None = None


class MiioRelayConfig(Model):
    """A Mi Home relay on the LAN (python-miio's protocol)."""

    driver: Literal["miio"]
    host: IPv4Address
    token: SecretStr | None = None
    token_file: Path | None = None
    token_env: str | None = None
    model: str | None = Field(None, description="Expected model; doctor checks it.")
    protocol: Literal["miot", "legacy"] = "miot"
    channels: int = Field(1, ge=1, le=8)
    mapping: dict[int, MiioChannelConfig] = Field(
        default_factory=dict, description="Per channel; default: channel n is siid n+1, piid 1."
    )
    timeout_s: float = Field(2.0, ge=0.2, le=10)
    poll_s: float = Field(1.0, ge=0, le=60, description="0 turns polling off.")
    contacts: frozenset[Contact] | None = _contacts_field()

    _contact_words = field_validator("contacts", mode="before")(_contact_words)

    @model_validator(mode="after")
    def _check(self) -> MiioRelayConfig:
        given = [f for f in ("token", "token_file", "token_env") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of token, token_file, token_env")
        if self.token is not None:
            check_token(self.token.get_secret_value())
        if self.protocol == "legacy" and self.channels != 1:
            raise ValueError("legacy (set_power) relays have one channel")
        for channel in self.mapping:
            if not 1 <= channel <= self.channels:
                raise ValueError(f"mapping names channel {channel}; the relay has {self.channels}")
        return self

    def channel_map(self, channel: int) -> MiioChannelConfig:
        return self.mapping.get(channel) or MiioChannelConfig(siid=channel + 1, piid=1)


def check_token(token: str) -> None:
    if len(token) != 32 or any(c not in "0123456789abcdefABCDEF" for c in token):
        raise ValueError("a miIO token is 32 hexadecimal characters")


TopicPart = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^#+\s]+$")]


class MqttRelayConfig(Model):
    """A relay whose firmware speaks MQTT, via a preset (or `generic` templates)."""

    driver: Literal["mqtt"]
    preset: Literal["tasmota", "zigbee2mqtt", "shelly_gen2", "esphome", "generic"]
    device: TopicPart = Field(
        description="Tasmota topic, Zigbee2MQTT friendly name, Shelly/ESPHome topic prefix."
    )
    channels: int = Field(1, ge=1, le=16)
    endpoints: dict[int, str] = Field(
        default_factory=dict, description="Zigbee2MQTT: per channel state suffix, e.g. _l1."
    )
    names: dict[int, str] = Field(
        default_factory=dict, description="ESPHome: per channel switch object id."
    )
    device_pulse: bool = Field(True, description="Use the firmware's own auto-off.")
    timeout_s: float = Field(2.0, ge=0.2, le=30)
    poll_s: float = Field(1.0, ge=0, le=60)
    contacts: frozenset[Contact] | None = _contacts_field()
    # generic only
    command_topic: str | None = None
    state_topic: str | None = None
    payload_on: str = "ON"
    payload_off: str = "OFF"
    state_on: str = "ON"
    state_off: str = "OFF"
    state_json_path: str | None = None
    availability_topic: str | None = None
    payload_available: str = "online"
    payload_not_available: str = "offline"

    _contact_words = field_validator("contacts", mode="before")(_contact_words)

    @model_validator(mode="after")
    def _check(self) -> MqttRelayConfig:
        if self.preset == "generic" and (not self.command_topic or not self.state_topic):
            raise ValueError("the generic preset needs command_topic and state_topic")
        for label, mapping in (("endpoints", self.endpoints), ("names", self.names)):
            for channel in mapping:
                if not 1 <= channel <= self.channels:
                    raise ValueError(
                        f"{label} names channel {channel}; the relay has {self.channels}"
                    )
        return self


RelayConfig = Annotated[
    SimulatedRelayConfig | MiioRelayConfig | MqttRelayConfig, Field(discriminator="driver")
]
DRIVERS = ("simulated", "miio", "mqtt")


class RelayRef(Model):
    device: Slug
    channel: int = Field(1, ge=1, le=32)


class BurnerConfig(Model):
    id: Slug
    name: str | None = None
    aliases: list[Annotated[str, Field(min_length=1, max_length=20)]] = Field(
        default_factory=list, description="Other names for text commands, e.g. [灶眼一, big]."
    )
    relay: RelayRef
    wiring: Wiring = Wiring.NC_SERIES
    pulse_s: float = Field(3.0, ge=0.5, le=30)


class StoveConfig(Model):
    id: Slug
    name: str | None = None
    burners: list[BurnerConfig] = Field(min_length=1)


class TlsConfig(Model):
    ca_file: Path | None = Field(None, description="CA that signed the broker's certificate.")
    cert_file: Path | None = Field(None, description="Client certificate, if the broker asks.")
    key_file: Path | None = None


def slug_of(topic: str) -> str:
    """A base topic as an id: anything but letters, digits, ``_`` and ``-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", topic)


class MqttConfig(Model):
    """The broker: remote commands, state, events, Home Assistant, and MQTT relays."""

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(1883, ge=1, le=65535)
    # Default: stove-ctl, or stove-ctl-<instance> for another base topic or instance
    # id, so two installations on one broker never take turns on one client id.
    client_id: str = Field("stove-ctl", min_length=1, max_length=64)
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    password_env: str | None = None
    tls: TlsConfig | None = None
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    base_topic: str = Field("stove_ctl", pattern=r"^[^#+\s]+$")
    instance_id: Slug | None = Field(
        None, description="Names this installation in Home Assistant; default: base_topic."
    )
    discovery: bool = True
    discovery_prefix: str = Field("homeassistant", pattern=r"^[^#+\s]+$")
    command_timeout_s: float = Field(10.0, gt=0, le=120)

    @model_validator(mode="before")
    @classmethod
    def _default_client_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "client_id" not in data:
            base = data.get("base_topic", "stove_ctl")
            instance = data.get("instance_id") or (slug_of(base) if isinstance(base, str) else None)
            if isinstance(instance, str) and instance != "stove_ctl":
                data = {**data, "client_id": f"stove-ctl-{instance}"[:64]}
        return data

    @property
    def instance(self) -> str:
        """This installation, in ids: ``instance_id``, else the base topic with anything
        but letters, digits, ``_`` and ``-`` turned into ``_``."""
        return self.instance_id or slug_of(self.base_topic)

    @model_validator(mode="after")
    def _check(self) -> MqttConfig:
        given = [f for f in ("password", "password_file", "password_env") if getattr(self, f)]
        if len(given) > 1:
            raise ValueError("give at most one of password, password_file, password_env")
        if given and self.username is None:
            raise ValueError("a password needs a username")
        if self.tls is not None and (self.tls.cert_file is None) != (self.tls.key_file is None):
            raise ValueError("tls: cert_file and key_file go together")
        return self


class ScheduleConfig(Model):
    """A cron schedule, e.g. a nightly "make sure everything is off"."""

    name: Slug
    cron: str = Field(description="Five fields: minute hour day month weekday.")
    action: Literal["shutoff", "lock"] = "shutoff"
    burners: str = "all"

    @model_validator(mode="after")
    def _cron(self) -> ScheduleConfig:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(self.cron)
        except ValueError as exc:
            raise ValueError(f"cron {self.cron!r} is not valid: {exc}") from None
        return self


class LockWindowConfig(Model):
    """Burners locked every day from ``start`` to ``end`` (may cross midnight)."""

    name: Slug
    start: dt.time
    end: dt.time
    burners: str = "all"

    @field_validator("start", "end", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # YAML reads an unquoted 23:30 as the number 1410 (base 60), which pydantic
        # would take as 00:23:30 UTC.
        if not isinstance(value, str | dt.time):
            raise ValueError(f'write the time in quotes, e.g. "23:30" (got {value!r})')
        return value

    @model_validator(mode="after")
    def _times(self) -> LockWindowConfig:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("lock window times are local times, without an offset")
        if self.start == self.end:
            raise ValueError("a lock window needs different start and end times")
        return self

    def contains(self, t: dt.time) -> bool:
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


class FlameInputConfig(Model):
    """A flame sensor for one burner: a thermocouple millivolt tap or an on/off sensor."""

    burner: str = Field(min_length=1)
    topic: str = Field(min_length=1, pattern=r"^[^#+]+$")
    lit_above_mv: float | None = Field(
        None, gt=0, le=100, description="Millivolt payloads: lit at or above this."
    )
    payload_lit: str = "ON"
    payload_out: str = "OFF"
    stale_s: float = Field(30, gt=0, le=3600, description="No reading for this long: unknown.")


class BinaryInputConfig(Model):
    topic: str = Field(min_length=1, pattern=r"^[^#+]+$")
    payload_on: str = "ON"
    payload_off: str = "OFF"


class AlarmInputConfig(BinaryInputConfig):
    name: Slug
    kind: Literal["gas", "smoke", "co"] = "gas"


class PresenceInputConfig(Model):
    topic: str = Field(min_length=1, pattern=r"^[^#+]+$")
    payload_away: str = "not_home"


class InputsConfig(Model):
    flame: list[FlameInputConfig] = Field(default_factory=list)
    motion: list[BinaryInputConfig] = Field(default_factory=list)
    alarms: list[AlarmInputConfig] = Field(default_factory=list)
    presence: PresenceInputConfig | None = None


class EventsConfig(Model):
    keep_days: int = Field(
        365, ge=1, le=36500, description="Events older than this are pruned, once a day."
    )


class RulesConfig(Model):
    max_flame_on_min: float | None = Field(None, gt=0, le=24 * 60)
    unattended_min: float | None = Field(None, gt=0, le=24 * 60)
    warning_lead_s: float = Field(60, ge=0, le=3600)
    snooze_max_min: float = Field(30, ge=0, le=240)
    confirm_s: float = Field(30, ge=1, le=600, description="Flame must be seen out by then.")
    alarm_lock: bool = True
    away_shutoff: bool = True


class WebConfig(Model):
    """The kitchen page (docs/WEB.md): off unless this section is set."""

    host: str = Field("127.0.0.1", min_length=1, max_length=253)
    port: int = Field(8470, ge=1, le=65535)
    # Needed for unlock/cancel/extend/snooze and for anything from another host.
    token_file: Path | None = None
    token: SecretStr | None = Field(None, exclude=True, description="Read from token_file.")

    @model_validator(mode="before")
    @classmethod
    def _no_inline_token(cls, data: Any) -> Any:
        if isinstance(data, dict) and "token" in data:
            raise ValueError("put the token in a file (chmod 600) and name it in web.token_file")
        return data


class SelfTestConfig(Model):
    """A scheduled self-test of every burner's relay (off unless configured): every
    ``every_days`` days, at ``at`` local time, on burners that are out and unlocked."""

    every_days: int = Field(30, ge=1, le=366)
    at: dt.time = dt.time(3, 30)
    pulse_s: float = Field(0.5, ge=0.2, le=5, description="How long each channel is cut.")

    @field_validator("at", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if not isinstance(value, str | dt.time):  # YAML reads a bare 3:30 as 210
            raise ValueError(f'write the time in quotes, e.g. "03:30" (got {value!r})')
        return value

    @model_validator(mode="after")
    def _local(self) -> SelfTestConfig:
        if self.at.tzinfo is not None:
            raise ValueError("the self-test time is a local time, without an offset")
        return self


class TrustConfig(Model):
    """Who may restore gas availability (DESIGN invariant 7)."""

    unlock_sources: list[Source] = Field(default_factory=lambda: list[Source](["cli"]))
    cancel_sources: list[Source] = Field(
        default_factory=lambda: list[Source](["cli", "mqtt", "voice", "web"]),
        description="Who may cancel or extend a timer.",
    )
    snooze_sources: list[Source] = Field(
        default_factory=lambda: list[Source](["cli", "mqtt", "voice", "web"]),
        description="Who may snooze a rule.",
    )
    max_command_age_s: float = Field(30.0, gt=0, le=3600)

    def allowed(self, action: str) -> list[Source]:
        if action == "unlock":
            return self.unlock_sources
        if action == "snooze":
            return self.snooze_sources
        return self.cancel_sources
