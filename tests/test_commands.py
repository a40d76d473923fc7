"""The shared command model refuses bad input with a clear reason."""

from __future__ import annotations

import pytest

from stove_ctl.commands import Command, parse_command
from stove_ctl.errors import CommandError


def test_valid_command_gets_an_id_and_the_given_source() -> None:
    cmd = parse_command({"action": "shutoff", "burner": "left"}, source="mqtt")
    assert cmd == Command(id=cmd.id, action="shutoff", burner="left", source="mqtt")
    assert len(cmd.id) == 12


def test_source_cannot_be_claimed_by_the_sender() -> None:
    cmd = parse_command({"action": "unlock", "burner": "left", "source": "cli"}, source="mqtt")
    assert cmd.source == "mqtt"


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        ("shutoff", "bad_command", "a command must be a JSON object"),
        ([], "bad_command", "a command must be a JSON object"),
        ({}, "unknown_action", "unknown action None"),
        (
            {"action": "explode"},
            "unknown_action",
            "unknown action 'explode' (known: shutoff, lock, unlock, status)",
        ),
        ({"action": 7}, "unknown_action", "unknown action 7"),
        (
            {"action": "shutoff", "burner": ""},
            "bad_command",
            "burner: String should have at least 1 character",
        ),
        (
            {"action": "shutoff", "burner": "x" * 200},
            "bad_command",
            "burner: String should have at most 70 characters",
        ),
        (
            {"action": "shutoff", "burner": 3},
            "bad_command",
            "burner: Input should be a valid string",
        ),
        (
            {"action": "shutoff", "id": "i" * 65},
            "bad_command",
            "id: String should have at most 64 characters",
        ),
        (
            {"action": "shutoff", "ts": "yesterday"},
            "bad_command",
            "ts: Input should be a valid number",
        ),
        ({"action": "shutoff", "colour": "red"}, "bad_command", "unknown field 'colour'"),
    ],
)
def test_bad_commands_are_refused(data: object, code: str, message: str) -> None:
    with pytest.raises(CommandError) as err:
        parse_command(data, source="mqtt")
    assert err.value.code == code
    assert message in err.value.message
