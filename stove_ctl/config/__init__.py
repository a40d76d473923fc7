"""Configuration: pydantic models and the one function that reads YAML.

Relative paths in a config file are taken relative to the file's own directory, so
``stove-ctl run -c /etc/stove-ctl/config.yaml`` works from any working directory.
"""

from __future__ import annotations

import difflib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from stove_ctl.config.sections import (
    CONTACT_FOR,
    DRIVERS,
    RESERVED_BURNER_IDS,
    AlarmInputConfig,
    BinaryInputConfig,
    BurnerConfig,
    EventsConfig,
    FlameInputConfig,
    InputsConfig,
    LockWindowConfig,
    MiioChannelConfig,
    MiioRelayConfig,
    Model,
    MqttConfig,
    MqttRelayConfig,
    OffDelayConfig,
    PresenceInputConfig,
    RelayConfig,
    RelayRef,
    RulesConfig,
    ScheduleConfig,
    SelfTestConfig,
    SimulatedRelayConfig,
    Slug,
    Source,
    StoveConfig,
    TlsConfig,
    TopicPart,
    TrustConfig,
    WebConfig,
    check_token,
)
from stove_ctl.drivers.mqtt_presets import PRESETS
from stove_ctl.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "DRIVERS",
    "RESERVED_BURNER_IDS",
    "AlarmInputConfig",
    "BinaryInputConfig",
    "BurnerConfig",
    "Config",
    "FlameInputConfig",
    "InputsConfig",
    "LockWindowConfig",
    "MiioChannelConfig",
    "MiioRelayConfig",
    "Model",
    "MqttConfig",
    "MqttRelayConfig",
    "OffDelayConfig",
    "PresenceInputConfig",
    "RelayConfig",
    "RelayRef",
    "RulesConfig",
    "ScheduleConfig",
    "SelfTestConfig",
    "SimulatedRelayConfig",
    "Slug",
    "Source",
    "StoveConfig",
    "TlsConfig",
    "TopicPart",
    "TrustConfig",
    "WebConfig",
    "default_socket_dir",
    "default_socket_path",
    "load_config",
    "parse_config",
    "relay_contacts",
]


def _local_zone() -> str:
    try:
        import tzlocal

        return str(tzlocal.get_localzone_name() or "UTC")
    except Exception:  # noqa: BLE001 - any trouble finding it means UTC
        return "UTC"


class Config(Model):
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
    events: EventsConfig = Field(default_factory=EventsConfig)
    web: WebConfig | None = None
    self_test: SelfTestConfig | None = None

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
        problems += _miswire_problems(self)
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
                    check_token(token)
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
        web = self.web
        if web is not None and web.token_file is not None:
            token_file = web.token_file if web.token_file.is_absolute() else base / web.token_file
            try:
                token = _read_secret(token_file, None, base)
                if not token:
                    raise ValueError(f"{token_file} is empty: put the page's token in it")
                if len(token) < MIN_WEB_TOKEN:
                    # Anyone who reaches the page may guess: a short token falls to it.
                    raise ValueError(
                        f"the token in {token_file} is {len(token)} characters; use at least "
                        f"{MIN_WEB_TOKEN} random ones "
                        f"(e.g. head -c 24 /dev/urandom | base64 > {token_file.name})"
                    )
                web = web.model_copy(update={"token_file": token_file, "token": SecretStr(token)})
            except ValueError as exc:
                problems.append(f"{source}: web.token_file: {exc}")
        if problems:
            raise ConfigError(problems)
        return self.model_copy(
            update={
                "state_dir": state_dir,
                "socket": socket,
                "relays": relays,
                "mqtt": mqtt,
                "web": web,
            }
        )

    def control_socket(self) -> Path:
        return self.socket if self.socket is not None else default_socket_path()

    def wiring_warnings(self, source: str = "<config>") -> list[str]:
        """A plain-words warning for each burner whose wiring needs a contact its relay
        does not have (e.g. nc_series on a Shelly, which has only an NO contact). A
        warning, not an error: what a relay has is known per preset, not per device,
        and a daemon that refuses to start cannot cut the gas."""
        warnings = []
        names = {"no": "normally-open (NO)", "nc": "normally-closed (NC)"}
        for si, stove in enumerate(self.stoves):
            for bi, burner in enumerate(stove.burners):
                relay = self.relays.get(burner.relay.device)
                contacts, said_by = relay_contacts(relay) if relay else (None, "")
                needed = CONTACT_FOR[burner.wiring]
                if contacts is None or needed in contacts:
                    continue
                (other,) = contacts  # a relay has "no" and/or "nc": here one, not the needed
                fixes = (
                    "wire its NO contact as no_parallel (across the thermocouple's terminals) "
                    "or no_series"
                    if other == "no"
                    else "wire its NC contact as nc_series"
                )
                warnings.append(
                    f"{source}: stoves[{si}].burners[{bi}].wiring: {stove.id}/{burner.id} is "
                    f"wired {burner.wiring.value}, which needs a {names[needed]} contact, but "
                    f"relay {burner.relay.device!r} has only a {names[other]} one ({said_by}): "
                    f"{fixes} and set wiring: to match (hardware/WIRING.md), or use a relay "
                    f"with an {needed.upper()} contact"
                )
        return warnings


def _miswire_problems(config: Config) -> list[str]:
    """A simulated relay's ``miswire`` must name burners on that relay (two to swap)."""
    problems = []
    for relay_id, relay in config.relays.items():
        if not isinstance(relay, SimulatedRelayConfig) or not relay.miswire:
            continue
        on_it = {b.id for s in config.stoves for b in s.burners if b.relay.device == relay_id}
        for name in sorted(set(relay.miswire) - on_it):
            problems.append(f"relays.{relay_id}.miswire: no burner {name!r} on this relay")
        swapped = [n for n, kind in relay.miswire.items() if kind == "swapped"]
        if swapped and len(swapped) != 2:
            problems.append(
                f"relays.{relay_id}.miswire: mark exactly two burners swapped (got {len(swapped)})"
            )
    return problems


def relay_contacts(relay: RelayConfig) -> tuple[frozenset[str] | None, str]:
    """The contacts a relay has ("no", "nc") and who says so: the relay's own
    ``contacts:``, else its preset; None where neither knows."""
    if not isinstance(relay, SimulatedRelayConfig) and relay.contacts is not None:
        return relay.contacts, "its contacts: setting"
    if isinstance(relay, MqttRelayConfig) and relay.preset in PRESETS:
        contacts = PRESETS[relay.preset].contacts
        if contacts is not None:
            return contacts, f"preset {relay.preset}"
    return None, ""


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


MIN_WEB_TOKEN = 16  # characters in the kitchen page's token, at least

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
        WebConfig,
    )
    for name in model.model_fields
}


def _suggest(name: str) -> str:
    # A field of another section (contacts on a simulated relay) is no typo: no hint.
    if name in _FIELD_NAMES:
        return ""
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
