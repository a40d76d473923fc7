"""The command model every surface (CLI, MQTT, voice) translates into."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stove_ctl.config import Source
from stove_ctl.errors import CommandError

ACTIONS = ("shutoff", "lock", "unlock", "status")
Action = Literal["shutoff", "lock", "unlock", "status"]

# Actions that make gas available again: they need an allowed, fresh source
# (DESIGN invariant 7). Everything else only ever reduces gas availability.
RESTORE_ACTIONS = frozenset({"unlock"})
# Actions that need a burner (or "all"); a shutoff with none means every burner.
NEEDS_BURNER = frozenset({"lock", "unlock"})

MAX_ID_LENGTH = 64


def new_command_id() -> str:
    return uuid.uuid4().hex[:12]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=new_command_id, min_length=1, max_length=MAX_ID_LENGTH)
    action: Action
    burner: str | None = Field(None, min_length=1, max_length=70)
    source: Source = "cli"
    ts: float | None = Field(None, description="When the sender issued it (Unix time).")
    retained: bool = Field(False, description="Delivered as a retained MQTT message.")


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
        raise CommandError("bad_command", f"{field}: {first['msg']}") from None
