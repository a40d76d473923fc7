"""The command model every surface (CLI, MQTT, voice) translates into."""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from stove_ctl.config import Source, TrustConfig
from stove_ctl.errors import CommandError

ACTIONS = (
    "shutoff",
    "timer",
    "cancel",
    "extend",
    "timers",
    "lock",
    "unlock",
    "status",
    "snooze",
)
Action = Literal[
    "shutoff", "timer", "cancel", "extend", "timers", "lock", "unlock", "status", "snooze"
]

# Actions that make gas available again (or later): they need an allowed, fresh
# source (DESIGN invariant 7). Everything else only ever reduces gas availability.
RESTORE_ACTIONS = frozenset({"unlock", "cancel", "extend", "snooze"})
# Actions that need a burner (or "all"); a shutoff with none means every burner.
NEEDS_BURNER = frozenset({"lock", "unlock", "timer"})

MAX_ID_LENGTH = 64
MAX_DELAY_S = 24 * 3600.0
TIMERS_SHOWN = 100  # timers in a reply unless it asks for more ("limit")
MAX_TIMERS_SHOWN = 1000  # at most, whatever it asks: a reply stays a few hundred KB
_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")


def parse_duration(value: Any) -> float:
    """Seconds from ``900`` (a number: seconds), ``"15m"``, ``"1h30m"``, ``"1.5h"``,
    ``"90 s"``. A number written as text with no unit (``"15"``) is refused: a person
    wrote it, and may have meant minutes.

    Raises ValueError with a plain-words reason: zero, negative, over a day, garbage.
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 15m")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer with hundreds of digits
            seconds = math.inf if value > 0 else -math.inf
    elif isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            # A number with no unit, from a person ("timer left 15"): 15 seconds or 15
            # minutes? Refused with the hint. A JSON number (a machine's) is seconds.
            if float(text) > 0:
                raise ValueError(f"{text} what? say {text}m for minutes or {text}s for seconds")
            seconds = float(text)
        else:
            if text.startswith("-"):
                raise ValueError(f"a delay cannot be negative ({value!r})")
            parts = _DURATION.findall(text)
            if not parts or _DURATION.sub("", text).strip():
                raise ValueError(f"cannot read {value!r} as a duration (say 15m, 1h30m or 90s)")
            seconds = 0.0
            for number, unit in parts:
                if unit not in _UNITS:
                    raise ValueError(f"unknown unit {unit!r} in {value!r} (use s, m or h)")
                seconds += float(number) * _UNITS[unit]
    else:
        raise ValueError("a duration is a number of seconds or text like 15m")
    if seconds != seconds or seconds <= 0:
        raise ValueError(f"a delay must be more than 0 (got {value!r})")
    if seconds > MAX_DELAY_S:
        raise ValueError(f"a delay of more than 24 hours is not accepted (got {value!r})")
    return seconds


def new_command_id() -> str:
    return uuid.uuid4().hex[:12]


class Command(BaseModel):
    id: str = Field(default_factory=new_command_id, min_length=1, max_length=MAX_ID_LENGTH)
    action: Action
    burner: str | None = Field(None, min_length=1, max_length=70)
    source: Source = "cli"
    # Finite: a NaN ts would pass every freshness comparison (invariant 7).
    ts: float | None = Field(
        None, allow_inf_nan=False, description="When the sender issued it (Unix time)."
    )
    retained: bool = Field(False, description="Delivered as a retained MQTT message.")
    in_s: float | None = Field(None, alias="in", description="Delay, for timer/extend/snooze.")
    at: str | None = Field(None, max_length=40, description="Clock time (18:30) or ISO time.")
    timer: str | None = Field(None, min_length=1, max_length=MAX_ID_LENGTH)
    limit: int | None = Field(
        None, ge=1, le=MAX_TIMERS_SHOWN, strict=True, description="timers: list this many."
    )
    # Set by the surface a command came in on, never taken from its sender: a stove's
    # MQTT topics reach only that stove's burners, and a restore-direction command
    # that crossed the network needs a fresh ts whatever form it took (invariant 7).
    stove: str | None = Field(None, description="Confined to this stove's burners.")
    remote: bool = Field(False, description="Came over the network (MQTT).")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("in_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _needs(self) -> Command:
        if self.action == "timer" and (self.in_s is None) == (self.at is None):
            raise ValueError("a timer needs exactly one of 'in' (a delay) or 'at' (a time)")
        if self.action in ("extend", "snooze") and self.in_s is None:
            raise ValueError(f"{self.action} needs 'in' (how much longer)")
        if self.action == "cancel" and self.timer is None and self.burner is None:
            raise ValueError("say which timer (its id) or which burner to cancel")
        if self.limit is not None and self.action != "timers":
            raise ValueError("'limit' is for 'timers' only")
        return self


def read_json(payload: bytes, what: str = "command") -> Any:
    """JSON from a sender, strictly: UTF-8 text (RFC 8259; ``json.loads`` would also
    take UTF-16 and let a UTF-8-encoded lone surrogate through), and no string holding
    half of a surrogate pair (``"\\ud800"``), which is not Unicode text and could be
    neither stored nor published again. Raises CommandError ``bad_json``."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("bad_json", f"{what} is not valid JSON: it is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # nesting too deep is not JSON to us
        raise CommandError("bad_json", f"{what} is not valid JSON") from None
    if "\\u" in text:  # only an escape can make half a surrogate pair in UTF-8 text
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            why = "a string in it is not Unicode text (half of a \\u surrogate pair)"
            raise CommandError("bad_json", f"{what} is not valid JSON: {why}") from None
        except RecursionError:  # as deep as json.loads goes: the checks after refuse it
            pass
    return data


def parse_command(data: Any, source: Source) -> Command:
    """Validate a command from outside. Raises CommandError naming the bad field."""
    if not isinstance(data, dict):
        raise CommandError("bad_command", "a command must be a JSON object")
    try:
        return Command.model_validate({**data, "source": source})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "command"
        if first["type"] == "extra_forbidden":
            raise CommandError("bad_command", f"unknown field {field!r}") from None
        if field == "action":
            actions = ", ".join(ACTIONS)
            raise CommandError(
                "unknown_action", f"unknown action {data.get('action')!r} (known: {actions})"
            ) from None
        message = str(first["msg"]).removeprefix("Value error, ")
        if field in ("command", "") or not first["loc"]:
            raise CommandError("bad_command", message) from None
        raise CommandError("bad_command", f"{field}: {message}") from None


def check_trust(cmd: Command, trust: TrustConfig, now: float) -> None:
    """Raise CommandError unless ``cmd`` may run: a restore-direction action must come
    from an allowed source, not from a retained message, and (over MQTT) carry a
    ``ts`` within ``max_command_age_s`` of ``now``."""
    if cmd.action not in RESTORE_ACTIONS:
        return
    if cmd.source not in trust.allowed(cmd.action):
        allowed = ", ".join(trust.allowed(cmd.action))
        raise CommandError(
            "not_allowed",
            f"{cmd.action} is not accepted from {cmd.source} (allowed: {allowed})",
        )
    if cmd.retained:
        raise CommandError("stale", f"{cmd.action} from a retained message is ignored")
    if cmd.ts is None and (cmd.source == "mqtt" or cmd.remote):
        raise CommandError(
            "stale",
            f"{cmd.action} over MQTT must carry ts (when it was sent)"
            + (', as in {"text": ..., "ts": ...}' if cmd.source == "voice" else ""),
        )
    if cmd.ts is not None:
        age = now - cmd.ts
        if abs(age) > trust.max_command_age_s:
            when = f"{age:.0f} s old" if age > 0 else f"dated {-age:.0f} s in the future"
            raise CommandError(
                "stale",
                f"{cmd.action} is {when}; at most "
                f"{trust.max_command_age_s:g} s either way is accepted",
            )
