"""Confirming a cut with a thermocouple tap that lags the flame (DESIGN invariant 10),
on the manual clock: the tap's millivolts come from the stove model every second."""

from __future__ import annotations

from stove_ctl.drivers.relay import Wiring
from tests.conftest import Kitchen, run

LEFT = "kitchen/left"
LIT_ABOVE_MV = 12.0  # the README's example threshold


def test_a_relight_after_the_cut_is_not_cut_again_nor_locked(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory(lit_above_mv=LIT_ABOVE_MV)
        k.feed_taps()
        await k.controller.start()
        await k.advance(1.0)
        await k.do("shutoff", "left")
        await k.advance(4.0)  # cut, held 3 s, restored; the tip is still hot
        left = k.burner("left")
        assert not left.flame and left.thermocouple_mv > LIT_ABOVE_MV
        left.press_and_turn()  # someone relights it
        await k.advance(5.0)
        left.release()
        await k.advance(60.0)  # well past confirm_s (30 s)
        assert left.flame and left.valve_open
        kinds = k.kinds(LEFT)
        assert kinds.count("cut_commanded") == 1
        assert "alarm" not in kinds and "fault" not in kinds
        assert "flame_out_confirmed" not in kinds
        relit = next(e for e in k.log(LEFT) if e.kind == "flame_relit")
        assert relit.detail["mv"] > relit.detail["low_mv"]
        status = k.controller.status()["burners"][0]
        assert status["mode"] == "ready" and status["flame"] == "lit"

    run(body())


def test_a_cut_that_does_not_drop_the_valve_is_cut_again_then_locked(kitchen_factory) -> None:
    """A parallel contact of 1 Ohm is no short: the relay confirms the cut, the valve
    stays open and the tap never falls."""

    async def body() -> None:
        k: Kitchen = kitchen_factory(
            wirings={"left": Wiring.NO_PARALLEL, "right": Wiring.NC_SERIES},
            contact_ohm={"left": 1.0},
            lit_above_mv=LIT_ABOVE_MV,
        )
        k.feed_taps()
        await k.controller.start()
        await k.advance(1.0)
        await k.do("shutoff", "left")
        await k.advance(31.0)
        kinds = k.kinds(LEFT)
        assert kinds.count("cut_confirmed") == 2  # cut again at confirm_s
        fault = next(e for e in k.log(LEFT) if e.kind == "fault")
        assert fault.detail["type"] == "FlameNotOut"
        await k.advance(31.0)
        kinds = k.kinds(LEFT)
        assert "alarm" in kinds and "lock" in kinds and "flame_relit" not in kinds
        assert k.controller.status()["burners"][0]["mode"] == "locked"
        assert k.burner("left").flame  # the relay cannot put this one out: a person must

    run(body())


def test_a_cut_seen_falling_is_confirmed_even_above_the_threshold(kitchen_factory) -> None:
    """A threshold set low (or a slow tap): at confirm_s the reading has fallen and
    is still above lit_above_mv. The trend says the cut worked: no re-cut."""

    async def body() -> None:
        k: Kitchen = kitchen_factory(lit_above_mv=2.0, confirm_s=10.0)
        k.feed_taps()
        await k.controller.start()
        await k.advance(1.0)
        await k.do("shutoff", "left")
        await k.advance(11.0)
        assert k.burner("left").thermocouple_mv > 2.0
        kinds = k.kinds(LEFT)
        assert "flame_out_confirmed" in kinds
        assert kinds.count("cut_commanded") == 1 and "fault" not in kinds
        confirmed = next(e for e in k.log(LEFT) if e.kind == "flame_out_confirmed")
        assert confirmed.detail["by"] == "trend"

    run(body())


def test_a_tap_that_sends_nan_or_inf_is_ignored_not_read_as_out() -> None:
    from stove_ctl.clock import ManualClock
    from stove_ctl.core.rules import MqttFlame
    from stove_ctl.drivers.broker import Incoming

    clock = ManualClock()
    tap = MqttFlame(clock, LIT_ABOVE_MV, "ON", "OFF", stale_s=30)
    tap.update(Incoming("t", b"24.5", retain=False))
    for junk in (b"nan", b"NaN", b"inf", b"-inf"):
        tap.update(Incoming("t", junk, retain=False))
        assert tap.flame() is True and tap.reading() == (24.5, clock.monotonic())


def test_a_tap_across_the_terminals_does_not_take_a_poor_short_for_a_good_cut(
    kitchen_factory,
) -> None:
    """A parallel contact of 0.04 Ohm pulls the terminals from 15.5 to 9.6 mV, below
    the threshold, yet leaves the coil enough current to hold the valve. Read during
    the cut, the tap would say "out", then "relit" once restored. Compared with the
    reading before the cut, it never fell: cut again, then locked with an alarm."""

    async def body() -> None:
        k: Kitchen = kitchen_factory(
            wirings={"left": Wiring.NO_PARALLEL, "right": Wiring.NC_SERIES},
            contact_ohm={"left": 0.04},
            lit_above_mv=LIT_ABOVE_MV,
        )
        k.feed_taps(terminals=True)
        await k.controller.start()
        await k.advance(2.0)
        await k.do("shutoff", "left")
        await k.advance(1.0)
        assert k.burner("left").terminal_mv < LIT_ABOVE_MV  # the short pulls it down
        assert k.burner("left").valve_open  # but the valve holds
        await k.advance(62.0)
        kinds = k.kinds(LEFT)
        assert kinds.count("cut_confirmed") == 3  # the cut, the re-cut at 30 s, the lock
        assert "flame_out_confirmed" not in kinds and "flame_relit" not in kinds
        assert kinds.count("alarm") == 1
        assert k.controller.status()["burners"][0]["mode"] == "locked"
        await k.advance(60.0)  # the check is over: nothing more is cut or raised
        assert k.kinds(LEFT) == kinds

    run(body())


def test_a_relight_read_across_the_terminals_is_still_a_relight(kitchen_factory) -> None:
    """A series contact: while it is cut the terminals read the full EMF (no load).
    Those readings are not counted; the ones after the restore fell from the one
    before the cut, then rose with the relight."""

    async def body() -> None:
        k: Kitchen = kitchen_factory(lit_above_mv=LIT_ABOVE_MV)
        k.feed_taps(terminals=True)
        await k.controller.start()
        await k.advance(2.0)
        before = k.burner("left").terminal_mv
        await k.do("shutoff", "left")
        await k.advance(1.0)
        assert k.burner("left").terminal_mv > before  # unloaded while cut
        await k.advance(3.0)  # restored at 3 s
        left = k.burner("left")
        left.press_and_turn()
        await k.advance(5.0)
        left.release()
        await k.advance(60.0)
        assert left.flame
        kinds = k.kinds(LEFT)
        assert kinds.count("cut_commanded") == 1 and "alarm" not in kinds
        assert "flame_relit" in kinds

    run(body())


def test_a_good_cut_shows_going_out_while_the_tap_still_reads_lit(kitchen_factory) -> None:
    """status: a cut burner whose tap still reads "lit" but falls is "going out"
    (going_out true, flame still "lit" for machines); a failed cut never is."""

    async def body() -> None:
        k: Kitchen = kitchen_factory(
            wirings={"left": Wiring.NC_SERIES, "right": Wiring.NO_PARALLEL},
            contact_ohm={"right": 1.0},  # a cut that does not drop the valve
            lit_above_mv=LIT_ABOVE_MV,
        )
        k.feed_taps()
        await k.controller.start()
        await k.advance(1.0)

        def shown() -> dict[str, tuple[str, bool]]:
            burners = k.controller.status()["burners"]
            return {b["id"]: (b["flame"], b["going_out"]) for b in burners}

        assert shown() == {"left": ("lit", False), "right": ("lit", False)}
        await k.do("shutoff", "left")
        await k.do("shutoff", "right")
        await k.advance(6.0)  # cut, held 3 s, restored; the left tip cools, still hot
        assert k.burner("left").thermocouple_mv > LIT_ABOVE_MV
        assert shown() == {"left": ("lit", True), "right": ("lit", False)}
        await k.advance(20.0)  # the left tip is cold now
        assert shown()["left"] == ("out", False)
        assert shown()["right"] == ("lit", False)  # never fell: still lit, as it is
        assert k.burner("right").flame

    run(body())
