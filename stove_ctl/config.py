"""Configuration: pydantic models and the one function that reads YAML.

Relative paths in a config file are taken relative to the file's own directory, so
``stove-ctl run -c /etc/stove-ctl/config.yaml`` works from any working directory.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import tempfile
from ipaddress import IPv4Address
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from stove_ctl.errors import ConfigError
from stove_ctl.relay import Wiring

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
Source = Literal["cli", "mqtt", "voice", "mihome", "timer", "rule", "startup"]
RESERVED_BURNER_IDS = {"all"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulatedRelayConfig(_Model):
    """A relay board simulated in-process, wired to the stove model in ``hardware/``."""

    driver: Literal["simulated"]
    channels: int = Field(2, ge=1, le=32)
    power_on_state: Literal["off", "on"] = "off"
    contact_resistance_ohm: float = Field(0.005, gt=0, le=10)
    start_lit: bool = Field(
        False, description="Burners on this board start lit, as if someone was cooking."
    )


class OffDelayConfig(_Model):
    """A countdown property (in seconds) after which the device switches the channel off."""

    siid: int = Field(ge=1, le=255)
    piid: int = Field(ge=1, le=255)
    disarm: int | None = Field(
        None, description="The value meaning 'no countdown' (yeelink.switch.sw1: -1)."
    )


class MiioChannelConfig(_Model):
    """Where a channel's switch lives in the device's MIoT spec."""

    siid: int = Field(ge=1, le=255)
    piid: int = Field(1, ge=1, le=255)
    off_delay: OffDelayConfig | None = None


class MiioRelayConfig(_Model):
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

    @model_validator(mode="after")
    def _check(self) -> MiioRelayConfig:
        given = [f for f in ("token", "token_file", "token_env") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of token, token_file, token_env")
        if self.token is not None:
            _check_token(self.token.get_secret_value())
        if self.protocol == "legacy" and self.channels != 1:
            raise ValueError("legacy (set_power) relays have one channel")
        for channel in self.mapping:
            if not 1 <= channel <= self.channels:
                raise ValueError(f"mapping names channel {channel}; the relay has {self.channels}")
        return self

    def channel_map(self, channel: int) -> MiioChannelConfig:
        return self.mapping.get(channel) or MiioChannelConfig(siid=channel + 1, piid=1)


def _check_token(token: str) -> None:
    if len(token) != 32 or any(c not in "0123456789abcdefABCDEF" for c in token):
        raise ValueError("a miIO token is 32 hexadecimal characters")


TopicPart = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^#+\s]+$")]


class MqttRelayConfig(_Model):
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


class RelayRef(_Model):
    device: Slug
    channel: int = Field(1, ge=1, le=32)


class BurnerConfig(_Model):
    id: Slug
    name: str | None = None
    aliases: list[Annotated[str, Field(min_length=1, max_length=20)]] = Field(
        default_factory=list, description="Other names for text commands, e.g. [灶眼一, big]."
    )
    relay: RelayRef
    wiring: Wiring = Wiring.NC_SERIES
    pulse_s: float = Field(3.0, ge=0.5, le=30)


class StoveConfig(_Model):
    id: Slug
    name: str | None = None
    burners: list[BurnerConfig] = Field(min_length=1)


class TlsConfig(_Model):
    ca_file: Path | None = Field(None, description="CA that signed the broker's certificate.")
    cert_file: Path | None = Field(None, description="Client certificate, if the broker asks.")
    key_file: Path | None = None


class MqttConfig(_Model):
    """The broker: remote commands, state, events, Home Assistant, and MQTT relays."""

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = Field("stove-ctl", min_length=1, max_length=64)
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    password_env: str | None = None
    tls: TlsConfig | None = None
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    base_topic: str = Field("stove_ctl", pattern=r"^[^#+\s]+$")
    discovery: bool = True
    discovery_prefix: str = Field("homeassistant", pattern=r"^[^#+\s]+$")
    command_timeout_s: float = Field(10.0, gt=0, le=120)

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


class ScheduleConfig(_Model):
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


class LockWindowConfig(_Model):
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


class FlameInputConfig(_Model):
    """A flame sensor for one burner: a thermocouple millivolt tap or an on/off sensor."""

    burner: str = Field(min_length=1)
    topic: str = Field(min_length=1, pattern=r"^[^#+]+$")
    lit_above_mv: float | None = Field(
        None, gt=0, le=100, description="Millivolt payloads: lit at or above this."
    )
    payload_lit: str = "ON"
    payload_out: str = "OFF"
    stale_s: float = Field(30, gt=0, le=3600, description="No reading for this long: unknown.")


class BinaryInputConfig(_Model):
    topic: str = Field(min_length=1, pattern=r"^[^#+]+$")
    payload_on: str = "ON"
    payload_off: str = "OFF"


class AlarmInputConfig(BinaryInputConfig):
    name: Slug
    kind: Literal["gas", "smoke", "co"] = "gas"


class PresenceInputConfig(_Model):
    topic: str = Field(min_length=1, pattern=r"^[^#+]+$")
    payload_away: str = "not_home"


class InputsConfig(_Model):
    flame: list[FlameInputConfig] = Field(default_factory=list)
    motion: list[BinaryInputConfig] = Field(default_factory=list)
    alarms: list[AlarmInputConfig] = Field(default_factory=list)
    presence: PresenceInputConfig | None = None


class RulesConfig(_Model):
    max_flame_on_min: float | None = Field(None, gt=0, le=24 * 60)
    unattended_min: float | None = Field(None, gt=0, le=24 * 60)
    warning_lead_s: float = Field(60, ge=0, le=3600)
    snooze_max_min: float = Field(30, ge=0, le=240)
    confirm_s: float = Field(30, ge=1, le=600, description="Flame must be seen out by then.")
    alarm_lock: bool = True
    away_shutoff: bool = True


def _local_zone() -> str:
    try:
        import tzlocal

        return str(tzlocal.get_localzone_name() or "UTC")
    except Exception:  # noqa: BLE001 - any trouble finding it means UTC
        return "UTC"


class TrustConfig(_Model):
    """Who may restore gas availability (DESIGN invariant 7)."""

    unlock_sources: list[Source] = Field(default_factory=lambda: list[Source](["cli"]))
    cancel_sources: list[Source] = Field(
        default_factory=lambda: list[Source](["cli", "mqtt", "voice"]),
        description="Who may cancel or extend a timer.",
    )
    snooze_sources: list[Source] = Field(
        default_factory=lambda: list[Source](["cli", "mqtt", "voice"]),
        description="Who may snooze a rule.",
    )
    max_command_age_s: float = Field(30.0, gt=0, le=3600)

    def allowed(self, action: str) -> list[Source]:
        if action == "unlock":
            return self.unlock_sources
        if action == "snooze":
            return self.snooze_sources
        return self.cancel_sources


class Config(_Model):
    state_dir: Path = Path("state")
    socket: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    relays: dict[Slug, RelayConfig]
    stoves: list[StoveConfig] = Field(min_length=1)
    trust: TrustConfig = Field(default_factory=TrustConfig)
    mqtt: MqttConfig | None = None
    timezone: str = Field(default_factory=_local_zone, description="IANA name, e.g. Asia/Shanghai")
    schedules: list[ScheduleConfig] = Field(default_factory=list)
    lock_windows: list[LockWindowConfig] = Field(default_factory=list)
    inputs: InputsConfig = Field(default_factory=InputsConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (e.g. Asia/Shanghai, Europe/Berlin)"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @model_validator(mode="after")
    def _cross_references(self) -> Config:
        problems: list[str] = []
        stove_ids: set[str] = set()
        used_channels: dict[tuple[str, int], str] = {}
        for si, stove in enumerate(self.stoves):
            if stove.id in stove_ids:
                problems.append(f"stoves[{si}].id: stove id {stove.id!r} is used twice")
            stove_ids.add(stove.id)
            burner_ids: set[str] = set()
            for bi, burner in enumerate(stove.burners):
                where = f"stoves[{si}].burners[{bi}]"
                if burner.id in RESERVED_BURNER_IDS:
                    problems.append(
                        f"{where}.id: {burner.id!r} is reserved (it means every burner)"
                    )
                if burner.id in burner_ids:
                    problems.append(f"{where}.id: burner id {burner.id!r} is used twice in stove")
                burner_ids.add(burner.id)
                device = self.relays.get(burner.relay.device)
                if device is None:
                    known = ", ".join(sorted(self.relays)) or "none"
                    problems.append(
                        f"{where}.relay.device: no relay named {burner.relay.device!r} "
                        f"(relays: {known})"
                    )
                    continue
                if burner.relay.channel > device.channels:
                    problems.append(
                        f"{where}.relay.channel: relay {burner.relay.device!r} has "
                        f"{device.channels} channel(s), not {burner.relay.channel}"
                    )
                key = (burner.relay.device, burner.relay.channel)
                if key in used_channels:
                    problems.append(
                        f"{where}.relay: channel {key[1]} of {key[0]!r} already switches "
                        f"{used_channels[key]}"
                    )
                used_channels[key] = f"{stove.id}/{burner.id}"
        burner_names = {b.id for s in self.stoves for b in s.burners} | {s.id for s in self.stoves}
        burner_names |= {f"{s.id}/{b.id}" for s in self.stoves for b in s.burners} | {"all"}
        targets = [(f"schedules[{i}]", s.burners) for i, s in enumerate(self.schedules)]
        targets += [(f"inputs.flame[{i}]", f.burner) for i, f in enumerate(self.inputs.flame)]
        targets += [(f"lock_windows[{i}]", w.burners) for i, w in enumerate(self.lock_windows)]
        for where, name in targets:
            if name not in burner_names:
                problems.append(f"{where}.burners: no burner or stove {name!r}")
        uses_inputs = self.inputs.flame or self.inputs.motion or self.inputs.alarms
        if self.mqtt is None and (uses_inputs or self.inputs.presence):
            problems.append("inputs: sensor inputs come over MQTT: add the mqtt: section")
        if self.mqtt is None:
            for relay_id, relay in self.relays.items():
                if isinstance(relay, MqttRelayConfig):
                    problems.append(f"relays.{relay_id}: an mqtt relay needs the mqtt: section")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def resolve(self, base: Path, source: str) -> Config:
        """Make relative paths relative to ``base`` and read secrets from files and
        the environment. Raises ConfigError naming each field that fails."""
        state_dir = self.state_dir if self.state_dir.is_absolute() else base / self.state_dir
        socket = self.socket
        if socket is not None and not socket.is_absolute():
            socket = base / socket
        problems: list[str] = []
        relays: dict[str, RelayConfig] = {}
        for relay_id, relay in self.relays.items():
            if isinstance(relay, MiioRelayConfig) and relay.token is None:
                where = f"{source}: relays.{relay_id}"
                try:
                    token = _read_secret(relay.token_file, relay.token_env, base)
                    _check_token(token)
                except ValueError as exc:
                    field = "token_file" if relay.token_file is not None else "token_env"
                    problems.append(f"{where}.{field}: {exc}")
                    continue
                relay = relay.model_copy(update={"token": SecretStr(token)})
            relays[relay_id] = relay
        mqtt = self.mqtt
        if mqtt is not None:
            updates: dict[str, Any] = {}
            if mqtt.password is None and (mqtt.password_file or mqtt.password_env):
                try:
                    updates["password"] = SecretStr(
                        _read_secret(mqtt.password_file, mqtt.password_env, base)
                    )
                except ValueError as exc:
                    field = "password_file" if mqtt.password_file else "password_env"
                    problems.append(f"{source}: mqtt.{field}: {exc}")
            if mqtt.tls is not None:
                files = {
                    name: path if path is None or path.is_absolute() else base / path
                    for name, path in (
                        ("ca_file", mqtt.tls.ca_file),
                        ("cert_file", mqtt.tls.cert_file),
                        ("key_file", mqtt.tls.key_file),
                    )
                }
                for name, path in files.items():
                    if path is not None and not _is_file(path):
                        problems.append(f"{source}: mqtt.tls.{name}: no such file {path}")
                updates["tls"] = mqtt.tls.model_copy(update=files)
            mqtt = mqtt.model_copy(update=updates)
        if problems:
            raise ConfigError(problems)
        return self.model_copy(
            update={"state_dir": state_dir, "socket": socket, "relays": relays, "mqtt": mqtt}
        )

    def control_socket(self) -> Path:
        return self.socket if self.socket is not None else default_socket_path()


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name too long for the file system
        return False


def _read_secret(file: Path | None, env: str | None, base: Path) -> str:
    if file is not None:
        path = file if file.is_absolute() else base / file
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    assert env is not None
    value = os.environ.get(env)
    if value is None:
        raise ValueError(f"environment variable {env} is not set")
    return value.strip()


def default_socket_path() -> Path:
    """Where the daemon listens and the CLI looks when nothing else is said."""
    env = os.environ.get("STOVE_CTL_SOCKET")
    if env:
        return Path(env)
    return default_socket_dir() / "stove-ctl.sock"


def default_socket_dir() -> Path:
    """A directory only this user can write to: ``$XDG_RUNTIME_DIR`` (private by
    definition), else ``/tmp/stove-ctl-<uid>``, which the daemon creates mode 0700 and
    checks (stove_ctl/instance.py). A socket straight in /tmp could be squatted by any
    local user before the daemon starts."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime)
    return Path(tempfile.gettempdir()) / f"stove-ctl-{os.getuid()}"


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i == 2 and loc[0] == "relays" and part in DRIVERS:
            continue  # the discriminator's tag (relays.<id>.<driver>) is noise in a path
        else:
            name = part if part.isprintable() else repr(part)
            out += f".{name}" if out else name
    return out or "(top level)"


def _describe(error: Any) -> str:
    kind = error["type"]
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        name = str(loc[-1])
        hint = _suggest(name)
        return f"unknown field {name!r}{hint}"
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    message = str(error["msg"])
    if "input" in error and kind not in ("model_type", "dict_type", "list_type"):
        got = error["input"]
        if not isinstance(got, dict | list):
            return f"{message[0].lower()}{message[1:]} (got {got!r})"
    return f"{message[0].lower()}{message[1:]}"


_FIELD_NAMES = {
    name
    for model in (
        Config,
        StoveConfig,
        BurnerConfig,
        RelayRef,
        TrustConfig,
        SimulatedRelayConfig,
        MiioRelayConfig,
        MiioChannelConfig,
        OffDelayConfig,
        MqttConfig,
        TlsConfig,
        MqttRelayConfig,
        ScheduleConfig,
        LockWindowConfig,
        FlameInputConfig,
        BinaryInputConfig,
        AlarmInputConfig,
        PresenceInputConfig,
        InputsConfig,
        RulesConfig,
    )
    for name in model.model_fields
}


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, sorted(_FIELD_NAMES), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_config(data: Any, source: str = "<config>") -> Config:
    """Validate already-parsed data. Raises ConfigError with one line per problem."""
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the file must hold a mapping of settings"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = tuple(error["loc"])
            if error["type"] == "extra_forbidden":
                path = path[:-1]  # the message names the unknown field itself
            loc = _location(path)
            if error["type"] == "value_error" and not error["loc"]:
                for part in _describe(error).split("; "):
                    problems.append(f"{source}: {part}")
                continue
            problems.append(f"{source}: {loc}: {_describe(error)}")
        raise ConfigError(problems) from None


def load_config(path: Path | str) -> Config:
    """Read, validate and resolve a config file. The only place YAML is read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())  # one line
        raise ConfigError([f"{path}: {where}not valid YAML: {problem}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: not valid YAML: nested too deeply"]) from None
    except Exception as exc:  # noqa: BLE001 - PyYAML's own constructors fail on scalars
        # they cannot build (2020-13-45, "!!float ", "!!timestamp x") with ValueError,
        # IndexError, AttributeError...: all of it is a file that is not valid YAML.
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError([f"{path}: not valid YAML: cannot read a value: {detail}"]) from None
    config = parse_config(data, str(path))
    return config.resolve(path.resolve().parent, str(path))
