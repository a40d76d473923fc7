"""Safety rules and the closed loop, on the simulated kitchen and a manual clock."""

from __future__ import annotations

import pytest

from stove_ctl.config import RulesConfig, TrustConfig
from stove_ctl.core.rules import RuleEngine
from stove_ctl.drivers.relay import Wiring
from stove_ctl.errors import CommandError
from tests.conftest import Kitchen, run

LEFT, RIGHT = "kitchen/left", "kitchen/right"


def engine_for(k: Kitchen, **rules: object) -> RuleEngine:
    engine = RuleEngine(k.controller, k.events, k.clock, RulesConfig(**rules))
    engine.start()
    return engine


def test_flame_that_stays_lit_after_a_cut_is_cut_again_then_locked_with_an_alarm(
    kitchen_factory,
) -> None:
    async def body() -> None:
        # A worn parallel contact: the relay switches, but its "short" does not drop the valve.
        k: Kitchen = kitchen_factory(
            wirings={"left": Wiring.NO_PARALLEL, "right": Wiring.NC_SERIES},
            contact_ohm={"left": 1.0},
            confirm_s=10,
        )
        await k.controller.start()
        await k.do("shutoff", "left")
        await k.advance(1.0)
        assert "cut_confirmed" in k.kinds(LEFT)  # the relay did what it was told...
        assert k.burner("left").flame  # ...and the flame did not care
        await k.advance(10.0)
        fault = [e for e in k.log(LEFT) if e.kind == "fault"]
        assert fault and fault[0].detail["type"] == "FlameNotOut"
        assert k.kinds(LEFT).count("cut_commanded") == 2  # cut again
        await k.advance(10.5)
        assert "alarm" in k.kinds(LEFT)
        assert "flame_out_confirmed" not in k.kinds(LEFT)
        status = k.controller.status()["burners"][0]
        assert status["mode"] == "locked" and status["lock"]["command_id"] == "flame-not-out"

    run(body())


def test_flame_seen_out_is_confirmed_as_its_own_event(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        await k.do("shutoff", "right")
        await k.advance(1.0)
        kinds = k.kinds(RIGHT)
        assert (
            kinds.index("cut_commanded")
            < kinds.index("cut_confirmed")
            < kinds.index("flame_out_confirmed")
        )

    run(body())


def test_unattended_cooking_warns_then_cuts_and_motion_resets_it(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        engine = engine_for(k, unattended_min=1, warning_lead_s=20)
        await k.advance(30.0, step=0.5)
        engine.motion()  # someone walks past at 30 s
        await k.advance(40.0, step=0.5)  # 70 s: no cut yet (motion at 30 s + 60 s = 90 s)
        assert k.burner("left").flame and "warning" in k.kinds()
        warnings = [e for e in k.log() if e.kind == "warning"]
        assert {w.detail["rule"] for w in warnings} == {"unattended"}
        assert 19 <= warnings[0].detail["cut_in_s"] <= 21
        await k.advance(21.0, step=0.5)  # past 90 s
        assert not k.burner("left").flame and not k.burner("right").flame
        cut = next(e for e in k.log(LEFT) if e.kind == "cut_confirmed")
        assert cut.source == "rule" and cut.command_id == "rule:unattended"
        assert "flame_out_confirmed" in k.kinds(LEFT)
        await engine.stop()

    run(body())


def test_max_flame_on_time_with_a_capped_snooze(kitchen_factory) -> None:
    async def body() -> None:
        trust = TrustConfig(snooze_sources=["cli", "voice"])
        k: Kitchen = kitchen_factory(trust=trust)
        await k.controller.start()
        engine = engine_for(k, max_flame_on_min=2, warning_lead_s=30, snooze_max_min=1.5)
        await k.advance(100.0, step=0.5)
        assert "warning" in k.kinds(LEFT)
        reply = await k.do("snooze", "left", source="voice", **{"in": 60})
        assert reply["burners"][0]["snoozed_s"] == 60
        reply = await k.do("snooze", "left", source="voice", **{"in": 60})
        assert reply["burners"][0]["snoozed_s"] == 30  # capped at 90 s in all
        with pytest.raises(CommandError) as err:
            await k.do("snooze", "left", source="voice", **{"in": 60})
        assert err.value.code == "not_allowed"
        with pytest.raises(CommandError) as err:
            await k.do("snooze", "right", source="mqtt", ts=k.clock.time(), **{"in": 60})
        assert err.value.code == "not_allowed"  # mqtt is not in snooze_sources here
        await k.advance(100.0, step=0.5)  # 200 s: right (not snoozed) cut at 120 s, left lit
        assert not k.burner("right").flame and k.burner("left").flame
        await k.advance(15.0, step=0.5)  # 215 s > 120 + 90
        assert not k.burner("left").flame
        await engine.stop()

    run(body())


def test_gas_alarm_cuts_every_burner_and_locks_until_a_person_unlocks(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        engine = engine_for(k)
        await engine.alarm("kitchen-gas", "gas", True)
        await k.advance(0.5)
        assert not k.burner("left").flame and not k.burner("right").flame
        assert [b["mode"] for b in k.controller.status()["burners"]] == ["locked", "locked"]
        alarm = next(e for e in k.log() if e.kind == "alarm")
        assert alarm.detail == {"input": "kitchen-gas", "kind": "gas", "active": True}
        await engine.alarm("kitchen-gas", "gas", False)  # the alarm clears: locks stay
        await k.advance(5.0)
        assert not k.burner("left").circuit_intact
        with pytest.raises(CommandError):
            await k.do("unlock", "all", source="mqtt", ts=k.clock.time())
        reply = await k.do("unlock", "all")  # the CLI (a person at the house) may
        assert all(b["unlocked"] for b in reply["burners"])
        await engine.stop()

    run(body())


def test_everyone_away_cuts_every_burner(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        engine = engine_for(k)
        await engine.presence(away=False)
        await k.advance(1.0)
        assert k.burner("left").flame
        await engine.presence(away=True)
        await k.advance(0.5)
        assert not k.burner("left").flame and not k.burner("right").flame
        assert next(e for e in k.log(LEFT) if e.kind == "cut_confirmed").command_id == "rule:away"
        await engine.stop()

    run(body())
