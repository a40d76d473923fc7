"""The relay self-test and its schedule, on a manual clock (no sleeps)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest

from stove_ctl.config import SelfTestConfig, parse_config
from stove_ctl.core.records import parse_report
from stove_ctl.core.selftest import CONFIRM_S, DAY_S, SelfTest
from tests.conftest import Kitchen, run

LEFT, RIGHT = "kitchen/left", "kitchen/right"
EVERY = SelfTestConfig(every_days=30, at=dt.time(3, 30), pulse_s=0.5)


def make_tester(k: Kitchen, config: SelfTestConfig | None = EVERY) -> SelfTest:
    return SelfTest(k.controller, k.clock, config, k.state_dir, dt.UTC)


def self_tests(k: Kitchen, burner: str) -> list[dict]:
    return [e.detail for e in k.log(burner) if e.kind == "self_test"]


def next_0330(after: float) -> float:
    day = dt.datetime.fromtimestamp(after, dt.UTC).date()
    at = dt.datetime.combine(day, dt.time(3, 30), tzinfo=dt.UTC).timestamp()
    return at if at >= after else at + DAY_S


def test_the_schedule_fires_at_its_time_and_cuts_and_restores_each_channel(
    kitchen_factory,
) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory(lit=False)
        await k.controller.start()
        st = make_tester(k)
        st.start()
        due = next_0330(k.clock.time())
        assert st.next_due(LEFT) == due
        await k.clock.advance(due - k.clock.time() - 1.0)
        assert self_tests(k, LEFT) == []  # not before its time
        switched: list[tuple[int, bool]] = []
        k.board.on_change(lambda channel, on: switched.append((channel, on)))
        await k.advance(5.0)
        for key in (LEFT, RIGHT):
            [result] = self_tests(k, key)
            assert result["result"] == "ok", result
            assert result["checks"]["cut"] == "confirmed"
            assert result["checks"]["restore_read_back"] == "ok"
            assert result["checks"]["flame_input"] == "out"
        assert switched == [(1, True), (1, False), (2, True), (2, False)]
        assert k.board.snapshot() == {1: False, 2: False}  # both restored
        assert not k.burner("left").valve_open  # a restore never opens gas (invariant 1)
        kinds = k.kinds(LEFT)
        assert kinds[:4] == [
            "cut_commanded",
            "cut_confirmed",
            "restore_commanded",
            "restore_confirmed",
        ]
        status = k.controller.status()["burners"][0]
        assert status["self_test"]["result"] == "ok" and status["self_test_problem"] is False
        assert st.next_due(LEFT) == due + 30 * DAY_S  # the next one, every_days later
        await st.stop()

    run(body())


def test_a_lit_or_locked_burner_is_skipped_with_the_reason_and_tried_next_day(
    kitchen_factory,
) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory(lit=True)
        await k.controller.start()
        await k.clock.settle()
        await k.do("lock", "right")
        await k.advance(0.5)
        st = make_tester(k)
        st.start()
        before = k.board.snapshot()
        results = await st.run(k.controller.burners(), "cli")
        assert [(r["result"], r["reason"]) for r in results] == [
            ("skipped", "the burner is lit"),
            ("skipped", "locked"),
        ]
        assert k.board.snapshot() == before  # nothing switched
        assert k.burner("left").flame  # still cooking
        assert "cut_commanded" not in [e.kind for e in k.log(LEFT)]
        status = k.controller.status()["burners"]
        assert status[0]["self_test_skipped"]["reason"] == "the burner is lit"
        assert status[0]["self_test"] is None
        # Skipped now: tried again at the next 03:30 after now.
        assert st.next_due(LEFT) == next_0330(k.clock.time() + 1.0)
        await st.stop()

    run(body())


def test_a_stuck_relay_fails_the_self_test_with_a_fault_and_a_warning(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory(lit=False)
        await k.controller.start()
        await k.clock.settle()
        st = make_tester(k)
        k.board.stuck = {1}  # accepts the command, stays put
        task = asyncio.ensure_future(st.run(k.controller.resolve("left"), "cli"))
        await k.clock.advance(CONFIRM_S + 0.5 + CONFIRM_S + 1)
        [result] = await task
        assert result["result"] == "failed"
        assert "did not confirm the cut" in result["problems"][0]
        kinds = k.kinds(LEFT)
        assert "self_test" in kinds and "warning" in kinds
        faults = [e.detail for e in k.log(LEFT) if e.kind == "fault"]
        assert any(f.get("type") == "SelfTest" for f in faults)
        status = k.controller.status()["burners"][0]
        assert status["self_test_problem"] is True
        assert any("self-test failed" in r for r in status["reminders"])
        # The relay comes good: the cut still asked for is made, then restored.
        k.board.stuck.clear()
        await k.clock.advance(120)
        assert k.board.snapshot()[1] is False
        assert k.controller.status()["burners"][0]["circuit"] == "intact"

    run(body())


def test_a_relay_stuck_cut_fails_the_restore_and_stays_cut(kitchen_factory) -> None:
    """Bad read-back after the cut: the restore is not confirmed. Fail closed: the
    burner stays cut (it cannot be relit) and in fault until the relay answers right."""

    async def body() -> None:
        k: Kitchen = kitchen_factory(lit=False)
        await k.controller.start()
        await k.clock.settle()
        st = make_tester(k)
        task = asyncio.ensure_future(st.run(k.controller.resolve("left"), "cli"))
        await k.clock.advance(0.1)
        assert k.board.snapshot()[1] is True  # cut
        k.board.stuck = {1}
        await k.clock.advance(0.5 + CONFIRM_S + 1)
        [result] = await task
        assert result["result"] == "failed"
        assert result["checks"]["cut"] == "confirmed"
        assert result["checks"]["restore"] == "not confirmed"
        assert "did not confirm the restore" in " ".join(result["problems"])
        assert k.controller.status()["burners"][0]["mode"] == "fault"
        assert not k.burner("left").circuit_intact

    run(body())


def test_an_unreachable_relay_and_a_silent_flame_input_fail(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory(lit=False, lit_above_mv=12.0)  # taps never fed
        await k.controller.start()
        await k.clock.settle()
        st = make_tester(k)
        [result] = await st.run(k.controller.resolve("left"), "cli")
        assert result["result"] == "failed"
        assert "no reading" in result["problems"][0]
        assert k.board.snapshot()[1] is False  # not switched: it may be lit
        k.board.offline = True
        feeding = k.feed_taps()
        await k.clock.advance(1.5)
        task = asyncio.ensure_future(st.run(k.controller.resolve("right"), "cli"))
        await k.clock.advance(2 * CONFIRM_S + 2)
        [result] = await task
        feeding.cancel()
        assert result["result"] == "failed"
        assert "did not confirm the cut" in result["problems"][0]

    run(body())


def test_a_shutoff_during_the_self_test_is_not_cut_short(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory(lit=False, pulse_s=3.0)
        await k.controller.start()
        await k.clock.settle()
        st = make_tester(k)
        task = asyncio.ensure_future(st.run(k.controller.resolve("left"), "cli"))
        await k.clock.advance(0.1)
        await k.do("shutoff", "left")
        await k.clock.advance(1.0)  # past the self-test's 0.5 s pulse
        assert k.board.snapshot()[1] is True  # the shutoff's pulse still holds
        await k.clock.advance(3.0)
        assert k.board.snapshot()[1] is False
        [result] = await task
        assert result["result"] == "ok"
        assert result["checks"]["restore"].startswith("left to a shutoff")

    run(body())


def test_reminders_commissioning_record_and_restart(kitchen_factory, tmp_path: Path) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory(lit=False)
        await k.controller.start()
        await k.clock.settle()
        st = make_tester(k)
        status = k.controller.status()["burners"][0]
        assert status["reminders"] == ["never commissioned: run `stove-ctl commission left`"]
        report = parse_report(
            {
                "action": "commission_record",
                "burner": "left",
                "result": "passed",
                "figures": {"flame_out_s": 0.2, "mv_fall": 4.1},
                "flame_input": "measures",
            }
        )
        [left] = k.controller.resolve("left")
        record = st.record_commissioning(left, report)
        assert record["wiring"] == "nc_series"
        assert record["relay"] == {"device": "board", "channel": 1}
        assert k.controller.status()["burners"][0]["reminders"] == []
        assert "commissioned" in k.kinds(LEFT)
        await k.clock.advance(31 * DAY_S + 60)
        [reminder] = k.controller.status()["burners"][0]["reminders"]
        assert reminder.startswith("not self-tested since commissioning on ")
        # A restart: the records are read back from state_dir.
        again = SelfTest(k.controller, k.clock, EVERY, k.state_dir, dt.UTC)
        assert again.commissioning.get(LEFT)["figures"]["mv_fall"] == 4.1

    run(body())


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="result"):
        parse_report({"action": "commission_record", "burner": "left", "result": "great"})
    with pytest.raises(ValueError, match="unknown field 'x'"):
        parse_report({"action": "commission_record", "burner": "left", "result": "passed", "x": 1})
    base = {
        "relays": {"b": {"driver": "simulated", "channels": 2}},
        "stoves": [{"id": "k", "burners": [{"id": "left", "relay": {"device": "b"}}]}],
    }
    for bad, words in (
        ({"every_days": 0}, "every_days"),
        ({"at": 210}, "quotes"),
        ({"pulse_s": 60}, "pulse_s"),
    ):
        with pytest.raises(Exception, match=words):
            parse_config({**base, "self_test": bad})
    with pytest.raises(Exception, match="no burner 'middle'"):
        relays = {"b": {"driver": "simulated", "channels": 2, "miswire": {"middle": "inverted"}}}
        parse_config({**base, "relays": relays})
    assert parse_config({**base, "self_test": {"at": "04:00"}}).self_test is not None


def test_the_home_assistant_self_test_entity_shows_a_failure(kitchen_factory) -> None:
    """The per-burner self-test binary_sensor (device_class problem): its keys are ones
    Home Assistant accepts, and its templates render the daemon's own MQTT state."""
    from tests import ha_mqtt_keys
    from tests.test_discovery import entity, render, state_of

    config = entity("binary_sensor", "left_self_test")
    assert config["device_class"] == "problem"
    for version in ha_mqtt_keys.VERSIONS:
        accepted = ha_mqtt_keys.ACCEPTED[version]["binary_sensor"]
        assert set(config) <= accepted, (version, set(config) - accepted)
        assert ha_mqtt_keys.REQUIRED[version]["binary_sensor"] <= set(config)

    async def body() -> None:
        k: Kitchen = kitchen_factory(lit=False)
        await k.controller.start()
        await k.clock.settle()
        st = make_tester(k)
        state = state_of(k)
        assert render(config["value_template"], value=state) == "OFF"
        shown = render(config["json_attributes_template"], value=state)
        assert json.loads(shown)["reminders"] == [
            "never commissioned: run `stove-ctl commission left`"
        ]
        k.board.stuck = {1}
        task = asyncio.ensure_future(st.run(k.controller.resolve("left"), "cli"))
        await k.clock.advance(2 * CONFIRM_S + 2)
        await task
        state = state_of(k)
        assert render(config["value_template"], value=state) == "ON"
        attributes = json.loads(render(config["json_attributes_template"], value=state))
        assert attributes["self_test"]["result"] == "failed"
        right = entity("binary_sensor", "right_self_test")
        assert render(right["value_template"], value=state) == "OFF"

    run(body())
