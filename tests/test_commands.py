"""The shared command model refuses bad input with a clear reason."""

from __future__ import annotations

import pytest

from stove_ctl.core.commands import Command, parse_command
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
            "unknown action 'explode' (known: shutoff, timer, cancel, extend, timers, lock, unlock, status, snooze)",
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


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"action": "timer", "burner": "left"},
            "a timer needs exactly one of 'in' (a delay) or 'at' (a time)",
        ),
        ({"action": "timer", "burner": "left", "in": 60, "at": "18:30"}, "exactly one of"),
        ({"action": "timer", "burner": "left", "in": 0}, "in: a delay must be more than 0"),
        ({"action": "timer", "burner": "left", "in": -60}, "in: a delay must be more than 0"),
        ({"action": "timer", "burner": "left", "in": "10 years"}, "unknown unit 'years'"),
        ({"action": "timer", "burner": "left", "in": 315360000}, "more than 24 hours"),
        ({"action": "timer", "burner": "left", "in": "soon"}, "cannot read 'soon' as a duration"),
        ({"action": "timer", "burner": "left", "in": True}, "a duration is a number of seconds"),
        # A number as text, with no unit, is a person's: minutes or seconds? Refused.
        (
            {"action": "timer", "burner": "left", "in": "15"},
            "15 what? say 15m for minutes or 15s for seconds",
        ),
        ({"action": "extend", "timer": "t-1", "in": " 10 "}, "10 what? say 10m for minutes"),
        ({"action": "snooze", "burner": "left", "in": "2.5"}, "2.5 what? say 2.5m for minutes"),
        ({"action": "extend", "timer": "t-1"}, "extend needs 'in'"),
        ({"action": "snooze", "burner": "left"}, "snooze needs 'in'"),
        ({"action": "cancel"}, "say which timer (its id) or which burner to cancel"),
    ],
)
def test_bad_timer_commands(data: dict, message: str) -> None:
    with pytest.raises(CommandError) as err:
        parse_command(data, source="mqtt")
    assert err.value.code == "bad_command" and message in err.value.message


def test_command_ids_run_a_command_once_and_never_answer_another() -> None:
    import asyncio

    from stove_ctl.surfaces.command_ids import CommandIds, fingerprint

    async def go() -> None:
        ids = CommandIds(remembered=2)
        runs: list[str] = []
        gate = asyncio.Event()

        async def shutoff() -> dict:
            runs.append("shutoff")
            await gate.wait()
            return {"ok": True, "action": "shutoff"}

        same = fingerprint("cmd", {"id": "1", "action": "shutoff"})
        first = asyncio.ensure_future(ids.once("1", same, shutoff))
        await asyncio.sleep(0)
        # Redelivered while the first is still running: it waits for that answer.
        again = asyncio.ensure_future(ids.once("1", same, shutoff))
        other = await ids.once("1", fingerprint("cmd", {"id": "1", "action": "lock"}), shutoff)
        assert other["code"] == "duplicate_id" and other["ok"] is False
        gate.set()
        assert await first == await again == {"ok": True, "action": "shutoff"}
        assert runs == ["shutoff"]

        async def refused() -> dict:
            return {"ok": False, "code": "stale", "error": "old"}

        async def lock() -> dict:
            return {"ok": True, "action": "lock"}

        # A refusal changed nothing and keeps no id: the id may carry a new command.
        assert (await ids.once("2", "a", refused))["code"] == "stale"
        assert len(ids) == 1
        assert await ids.once("2", "b", lock) == {"ok": True, "action": "lock"}
        # No id: nothing remembered. Past the limit, the oldest id is forgotten.
        assert await ids.once(None, "c", lock) == {"ok": True, "action": "lock"}
        await ids.once("3", "d", lock)
        assert len(ids) == 2
        assert (await ids.once("1", "e", lock))["ok"] is True  # "1" was forgotten

    asyncio.run(go())


@pytest.mark.parametrize(
    ("value", "seconds"), [(15, 15.0), (90.5, 90.5), ("15s", 15.0), ("15m", 900.0)]
)
def test_a_json_number_is_seconds_and_text_says_its_unit(value: object, seconds: float) -> None:
    cmd = parse_command({"action": "timer", "burner": "left", "in": value}, source="mqtt")
    assert cmd.in_s == seconds
