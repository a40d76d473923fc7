"""Controller behaviour against the simulated kitchen, on a manual clock (no sleeps)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stove_ctl.config import TrustConfig
from stove_ctl.core.burner import Shutoff
from stove_ctl.core.commands import Command
from stove_ctl.core.controller import EVENTS_HELD_MAX_S
from stove_ctl.core.state import ShutoffRecord
from stove_ctl.drivers.relay import Wiring
from stove_ctl.errors import CommandError
from stove_ctl.retry import CAP_S
from tests.conftest import Kitchen, run

LEFT = "kitchen/left"


@pytest.mark.parametrize("wiring", list(Wiring))
def test_shutoff_cuts_holds_restores_and_the_flame_stays_out(kitchen_factory, wiring) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory(wirings={"left": wiring, "right": wiring})
        await k.controller.start()
        await k.clock.settle()
        assert k.burner("left").flame
        reply = await k.do("shutoff", "left")
        assert reply["ok"] and reply["burners"][0]["burner"] == LEFT
        await k.advance(0.2)
        assert not k.burner("left").valve_open and not k.burner("left").flame
        assert k.burner("right").flame  # only the named burner
        assert k.controller.status()["burners"][0]["mode"] == "cutting"
        assert not k.burner("left").circuit_intact
        await k.advance(3.0)
        assert k.burner("left").circuit_intact  # restored after pulse_s...
        await k.advance(30)
        assert not k.burner("left").valve_open  # ...and restoring never reopened the valve
        status = k.controller.status()["burners"][0]
        assert status["mode"] == "ready" and status["circuit"] == "intact"
        assert status["flame"] == "out"
        last = status["last_shutoff"]
        assert last["outcome"] == "restored"
        assert last["restored_at"] - last["cut_at"] == pytest.approx(3.0, abs=0.06)
        assert k.kinds(LEFT) == [
            "cut_commanded",
            "cut_confirmed",
            "flame_out_confirmed",  # the closed loop: the flame input saw it go out
            "restore_commanded",
            "restore_confirmed",
        ]

    run(body())


def test_waiting_for_done_returns_cut_and_restore_times(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        task = asyncio.create_task(
            k.controller.execute(Command(action="shutoff", burner="left"), wait="done")
        )
        await k.advance(3.5)
        reply = await task
        burner = reply["burners"][0]
        assert reply["ok"] and burner["outcome"] == "restored"
        assert burner["cut_latency_ms"] is not None and burner["restored_at"] > burner["cut_at"]

    run(body())


def test_concurrent_shutoffs_of_one_burner_coalesce_into_one_pulse(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        first = await k.do("shutoff", "left")
        await k.advance(1.0)
        second = await k.do("shutoff", "kitchen/left", source="mqtt")
        third = await k.do("shutoff", "left", source="timer")
        assert not first["burners"][0]["joined"]
        assert second["burners"][0]["joined"] and third["burners"][0]["joined"]
        await k.advance(5.0)
        assert k.kinds(LEFT).count("cut_commanded") == 1
        assert k.kinds(LEFT).count("restore_confirmed") == 1
        # After the pulse, a new request is a new shutoff.
        await k.do("shutoff", "left")
        await k.advance(4.0)
        assert k.kinds(LEFT).count("cut_commanded") == 2

    run(body())


def test_a_shutoff_during_the_restore_gets_a_pulse_of_its_own(kitchen_factory) -> None:
    """Once a pulse is restoring, someone may relight at once: a request then is not
    folded into the ending pulse (it would be answered ok and never cut)."""

    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        await k.do("shutoff", "left")
        await k.advance(1.0)
        k.board.offline = True  # the restore that follows the hold will need retries
        await k.advance(2.5)
        kinds = k.kinds(LEFT)  # the restore is being retried
        assert kinds[-1] == "fault" and "cut_confirmed" in kinds
        assert "restore_confirmed" not in kinds
        k.board.offline = False
        k.board.set(1, False)  # the device came back restored (its own off-delay)
        k.burner("left").light_and_hold()  # and someone relit at once
        second = await k.do("shutoff", "left", source="mqtt")
        assert not second["burners"][0]["joined"]
        await k.advance(8.0)
        kinds = k.kinds(LEFT)
        assert kinds.count("cut_commanded") == 2
        # The first restore, still being retried, gave way to the second cut: the one
        # restore confirmed is the second pulse's, after its cut.
        assert kinds.count("restore_confirmed") == 1
        last_cut = max(i for i, kind in enumerate(kinds) if kind == "cut_commanded")
        assert kinds.index("restore_confirmed") > last_cut
        assert not k.burner("left").flame and not k.burner("left").valve_open
        assert k.board.get(1) is False

    run(body())


def test_a_shutoff_does_not_wait_behind_a_restore_whose_answers_are_lost(
    kitchen_factory,
) -> None:
    """The restore after a pulse reaches the relay but no answer comes back (a one-way
    link, heavy packet loss): the daemon retries it, the circuit is intact in fact, and
    someone relights. A new shutoff must cut at once, not after that restore is
    confirmed (under 50% packet loss that took 73 s in the fault matrix)."""

    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        await k.do("shutoff", "left")
        await k.advance(0.2)
        assert "cut_confirmed" in k.kinds(LEFT)
        (left,) = [b for b in k.controller.burners() if b.spec.key == LEFT]
        first = left.last_shutoff
        k.board.answers_lost = True  # the restore after the hold is done, unconfirmed
        await k.advance(30.0)  # its retries are at the 4 s cap by now
        kinds = k.kinds(LEFT)
        assert kinds[-1] == "fault" and "restore_confirmed" not in kinds
        assert k.burner("left").circuit_intact  # restored in fact: it can be relit
        k.burner("left").light_and_hold()
        assert k.burner("left").valve_open
        second = await k.do("shutoff", "left", source="mqtt")
        assert second["ok"] and not second["burners"][0]["joined"]
        await k.advance(0.05)
        assert not k.burner("left").circuit_intact  # cut now, not after the retry wait
        k.board.answers_lost = False
        await k.advance(CAP_S * 1.2 + 3.0)  # the cut's read-back, the hold, the restore
        assert not k.burner("left").flame and not k.burner("left").valve_open
        assert k.burner("left").circuit_intact
        assert k.kinds(LEFT).count("restore_confirmed") == 1  # the second's; none lost
        assert first is not None and first.outcome == "superseded"
        assert first.restored_at is None
        assert k.controller.status()["burners"][0]["last_shutoff"]["outcome"] == "restored"

    run(body())


def test_a_shutoff_not_yet_cut_is_joined_whatever_an_old_pulse_left(kitchen_factory) -> None:
    """A shutoff waiting behind a restore that gives way (or whose cut is failing) will
    cut in full: a request then joins it. The end of the pulse before it, long past,
    must not make every such request a pulse of its own (invariant 5)."""

    async def body() -> None:
        k: Kitchen = kitchen_factory()
        (left,) = [b for b in k.controller.burners() if b.spec.key == LEFT]
        loop = asyncio.get_running_loop()
        waiting = Shutoff(
            record=ShutoffRecord(source="cli", command_id=None, requested_at=k.clock.time()),
            cut_confirmed=loop.create_future(),
            done=loop.create_future(),
        )
        now = k.clock.monotonic()
        left.pulse_ends = now - 10.0  # the device-timed pulse before it ended long ago
        assert left.joinable(waiting, now)
        waiting.cut_confirmed.set_result(None)  # once cut, the device's clock decides
        assert not left.joinable(waiting, now)
        left.pulse_ends = now + 3.0
        assert left.joinable(waiting, now)
        waiting.restoring = True
        assert not left.joinable(waiting, now)

    run(body())


def test_all_cuts_every_burner_in_parallel(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        reply = await k.do("shutoff", "all")
        assert [b["burner"] for b in reply["burners"]] == [LEFT, "kitchen/right"]
        await k.advance(0.2)
        assert not k.burner("left").flame and not k.burner("right").flame
        cut_times = [e.ts for e in k.log() if e.kind == "cut_confirmed"]
        assert len(cut_times) == 2 and cut_times[0] == cut_times[1]  # neither waited
        await k.advance(3.0)
        assert k.burner("left").circuit_intact and k.burner("right").circuit_intact

    run(body())


def test_shutoff_without_a_burner_means_all(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        reply = await k.do("shutoff")
        assert len(reply["burners"]) == 2

    run(body())


def test_lock_holds_the_cut_until_unlock_and_survives_a_pulse(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        await k.do("shutoff", "left")
        await k.advance(1.0)
        await k.do("lock", "left")  # locked in the middle of a pulse
        await k.advance(10.0)
        assert not k.burner("left").circuit_intact  # the pulse did not restore
        assert k.controller.status()["burners"][0]["mode"] == "locked"
        assert k.controller.status()["burners"][0]["last_shutoff"]["outcome"] == "locked"
        # Someone tries to cook: it lights while held, and dies on release.
        k.burner("left").press_and_turn()
        await k.advance(10.0)
        k.burner("left").release()
        await k.advance(0.2)
        assert not k.burner("left").flame
        reply = await k.do("unlock", "left")
        assert reply["burners"][0]["unlocked"]
        await k.advance(0.1)
        assert k.burner("left").circuit_intact
        assert not k.burner("left").valve_open  # unlock never supplies gas
        assert k.controller.status()["burners"][0]["mode"] == "ready"

    run(body())


def test_lock_is_persisted_and_reasserted_at_start_up(kitchen_factory, tmp_path: Path) -> None:
    async def first_run() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        await k.do("lock", "right")
        await k.advance(0.1)
        await k.controller.stop()

    async def second_run() -> None:
        k: Kitchen = kitchen_factory()
        k.board.power_cycle()  # the relay lost power while we were down: lock released
        assert k.burner("right").circuit_intact
        await k.controller.start()
        await k.advance(0.1)
        assert not k.burner("right").circuit_intact
        assert k.controller.status()["burners"][1]["mode"] == "locked"
        assert "lock_reasserted" in k.kinds("kitchen/right")

    run(first_run())
    run(second_run())


def test_start_up_holds_a_cut_found_on_an_unlocked_burner_then_restores_it(
    kitchen_factory,
) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        k.board.set(1, True)  # left cut: a daemon died mid-pulse, or XiaoAi cut it just now
        await k.controller.start()
        await k.advance(0.1)
        assert not k.burner("left").circuit_intact  # not undone at once...
        assert not k.burner("left").flame
        await k.advance(3.0)
        assert k.burner("left").circuit_intact  # ...restored after a full pulse
        assert k.kinds(LEFT) == [
            "cut_commanded",
            "cut_confirmed",
            "flame_out_confirmed",
            "restore_commanded",
            "restore_confirmed",
        ]
        assert {e.source for e in k.log(LEFT)} == {"startup"}
        assert k.kinds("kitchen/right") == []  # an intact burner is left alone

    run(body())


def test_unconfirmed_shutoff_is_redone_after_a_restart(kitchen_factory) -> None:
    async def first_run() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        k.board.offline = True
        await k.do("shutoff", "left")
        await k.advance(2.0)
        assert k.controller.status()["burners"][0]["mode"] == "fault"
        stopping = asyncio.create_task(k.controller.stop())
        await k.advance(15.0)
        await stopping  # gave up waiting; the shutoff is still owed

    async def second_run() -> None:
        k: Kitchen = kitchen_factory()
        assert k.burner("left").flame
        await k.controller.start()
        await k.advance(0.2)
        assert not k.burner("left").flame
        await k.advance(3.0)
        assert k.burner("left").circuit_intact
        assert k.controller.status()["burners"][0]["last_shutoff"]["outcome"] == "restored"

    run(first_run())
    run(second_run())


def test_offline_relay_gives_fault_events_retries_with_backoff_and_cuts_on_return(
    kitchen_factory,
) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        await k.clock.settle()
        k.board.offline = True
        asking = asyncio.create_task(
            k.controller.execute(Command(action="shutoff", burner="left"), "confirmed", 2.0)
        )
        await k.advance(2.5)
        reply = await asking
        assert reply["ok"] is False and reply["burners"][0]["outcome"] == "pending"
        assert "offline" in reply["burners"][0]["fault"]
        await k.advance(17.5)
        faults = [e for e in k.log(LEFT) if e.kind == "fault"]
        assert len(faults) >= 4
        assert {e.command_id for e in faults} == {reply["burners"][0]["command_id"]}
        delays = [e.detail["retry_in_s"] for e in faults]
        assert delays[1] > delays[0] and delays[2] > delays[1]  # backing off
        assert max(delays) <= CAP_S * 1.2  # capped (+20 % jitter)
        assert k.controller.status()["burners"][0]["mode"] == "fault"
        assert k.burner("left").flame  # still burning: the relay is gone
        k.board.offline = False
        await k.advance(12.0)
        assert not k.burner("left").flame
        assert "recovered" in k.kinds(LEFT)
        await k.advance(4.0)
        assert k.burner("left").circuit_intact
        assert k.controller.status()["burners"][0]["mode"] == "ready"

    run(body())


def test_stuck_relay_is_a_mismatch_fault_not_a_confirmed_cut(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        k.board.stuck.add(1)
        await k.do("shutoff", "left")
        await k.advance(1.0)
        assert "cut_confirmed" not in k.kinds(LEFT)
        fault = next(e for e in k.log(LEFT) if e.kind == "fault")
        assert fault.detail["type"] == "RelayMismatch"
        assert k.controller.status()["burners"][0]["mode"] == "fault"
        k.board.stuck.clear()
        await k.advance(3.0)
        assert "cut_confirmed" in k.kinds(LEFT)
        assert not k.burner("left").flame

    run(body())


def test_a_commands_events_wait_for_its_cut_but_never_long(kitchen_factory) -> None:
    """The bookkeeping a shutoff sets off (event store, MQTT events and state) waits
    until its cut is confirmed, so it does not compete with the relay command for the
    CPU; a relay that does not answer holds it up EVENTS_HELD_MAX_S at most, and
    nothing is lost or reordered."""

    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        await k.clock.settle()
        heard: list[str] = []
        k.events.subscribe(lambda e: heard.append(e.kind))
        k.board.offline = True
        await k.do("shutoff", "left")
        assert heard == []  # recorded, not yet told
        await k.clock.advance(EVENTS_HELD_MAX_S)
        assert heard == ["command", "fault"]
        k.board.offline = False
        await k.advance(3.0)
        assert "cut_confirmed" in heard
        assert heard == [e.kind for e in k.log()][-len(heard) :]

    run(body())


def test_overlapping_holds_keep_no_event_back_longer_than_one_bound(kitchen_factory) -> None:
    """A stream of shutoffs for a relay that does not answer: each command holds the
    events until its cut or its bound, and the holds overlap. Events still go out
    within one bound of being recorded, in order, not only when the stream stops."""

    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        await k.clock.settle()
        heard: list[tuple[str, float]] = []  # (kind, manual time heard)
        k.events.subscribe(lambda e: heard.append((e.kind, k.clock.monotonic())))
        k.board.offline = True
        sent: list[float] = []
        for i in range(25):  # one every 0.02 s for 0.5 s, alternating burners
            sent.append(k.clock.monotonic())
            await k.do("shutoff", "left" if i % 2 == 0 else "right")
            await k.clock.advance(0.02)
        commands = [t for kind, t in heard if kind == "command"]
        assert len(commands) >= 20  # most went out while the stream went on
        for at_sent, at_heard in zip(sent, commands, strict=False):
            assert at_heard - at_sent <= EVENTS_HELD_MAX_S + 1e-6
        await k.clock.advance(EVENTS_HELD_MAX_S)
        assert [kind for kind, _ in heard] == [e.kind for e in k.log()][-len(heard) :]

    run(body())


def test_unknown_and_ambiguous_burners_are_refused_and_change_nothing(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        await k.clock.settle()
        before = k.board.snapshot()
        for name, code in (("middle", "unknown_burner"), ("kitchen/oven", "unknown_burner")):
            with pytest.raises(CommandError) as err:
                await k.do("shutoff", name)
            assert err.value.code == code and "kitchen/left" in err.value.message
        with pytest.raises(CommandError) as err:
            await k.do("lock")
        assert err.value.code == "missing_burner"
        await k.advance(1.0)
        assert k.board.snapshot() == before
        assert not [e for e in k.log() if e.kind.startswith("cut")]
        assert k.kinds().count("rejected") == 3

    run(body())


def test_unlock_needs_an_allowed_and_fresh_source(kitchen_factory) -> None:
    async def body() -> None:
        trust = TrustConfig(unlock_sources=["cli"], max_command_age_s=30)
        k: Kitchen = kitchen_factory(trust=trust)
        await k.controller.start()
        await k.do("lock", "left")
        await k.advance(0.1)
        now = k.clock.time()
        refused = [
            ({"source": "mqtt"}, "not_allowed"),
            ({"source": "voice"}, "not_allowed"),
            ({"retained": True}, "stale"),
            ({"ts": now - 31}, "stale"),
            ({"ts": now + 3600}, "stale"),
        ]
        for extra, code in refused:
            with pytest.raises(CommandError) as err:
                await k.do("unlock", "left", **extra)
            assert err.value.code == code
        await k.advance(1.0)
        assert not k.burner("left").circuit_intact
        assert k.controller.status()["burners"][0]["mode"] == "locked"
        # Reducing gas availability is accepted from anyone, even late or retained.
        await k.do("lock", "right", source="mqtt", retained=True, ts=now - 3600)
        await k.advance(0.1)
        assert not k.burner("right").circuit_intact
        reply = await k.do("unlock", "left", ts=now)
        assert reply["burners"][0]["unlocked"]

    run(body())


def test_shutoffs_work_with_a_broken_event_store_and_state_dir(
    kitchen_factory, tmp_path: Path
) -> None:
    async def body() -> None:
        broken = tmp_path / "missing" / "deeper"
        k: Kitchen = kitchen_factory(state_dir=broken, events_path=broken / "events.db")
        await k.controller.start()
        await k.do("lock", "right")
        await k.do("shutoff", "left")
        await k.advance(0.2)
        assert not k.burner("left").flame and not k.burner("right").flame
        await k.advance(3.0)
        assert k.burner("left").circuit_intact
        status = k.controller.status()
        assert status["event_store"] != "ok" and status["state_store"] != "ok"
        # Events are still there to read, from memory.
        assert "cut_confirmed" in k.kinds(LEFT)

    run(body())


def test_stop_waits_for_a_pulse_to_restore(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        await k.do("shutoff", "left")
        await k.advance(0.5)
        stopping = asyncio.create_task(k.controller.stop())
        await k.advance(3.0)
        await stopping
        assert k.burner("left").circuit_intact

    run(body())


def test_start_up_restore_never_cuts_a_pulse_short(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        k.board.set(1, True)  # found cut at start-up...
        k.board.offline = True  # ...and the relay does not answer yet
        await k.controller.start()
        await k.clock.settle()  # start-up is now retrying its restore
        await k.do("shutoff", "left")  # a shutoff arrives meanwhile
        await k.advance(1.0)
        k.board.offline = False
        await k.advance(11.0)  # both retry loops come round
        cut_at = next(e.ts for e in k.log(LEFT) if e.kind == "cut_confirmed")
        restores = [e.ts for e in k.log(LEFT) if e.kind == "restore_confirmed"]
        assert len(restores) == 1 and restores[0] - cut_at == pytest.approx(3.0, abs=0.06)

    run(body())


def test_lock_window_end_releases_only_its_own_lock(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()
        await k.controller.start()
        await k.do("lock", "left", source="timer", id="window:night")
        await k.do("lock", "right", source="timer", id="window:night")
        await k.advance(0.1)
        # A gas alarm (or a person) re-locks the right burner during the window.
        await k.do("unlock", "right", id="person")
        await k.do("lock", "right", source="rule", id="gas-alarm")
        await k.advance(0.1)
        assert await k.controller.release_lock("kitchen/left", owner="window:night")
        assert not await k.controller.release_lock("kitchen/right", owner="window:night")
        await k.advance(0.1)
        assert k.burner("left").circuit_intact
        assert not k.burner("right").circuit_intact
        assert k.controller.status()["burners"][1]["lock"]["command_id"] == "gas-alarm"

    run(body())


def test_parse_at() -> None:
    import datetime as dt

    from stove_ctl.core.timers import parse_at

    tz = dt.UTC
    now = dt.datetime(2026, 11, 24, 17, 0, tzinfo=tz)
    assert parse_at("18:30", now) == dt.datetime(2026, 11, 24, 18, 30, tzinfo=tz)
    assert parse_at("16:30", now) == dt.datetime(2026, 11, 25, 16, 30, tzinfo=tz)  # tomorrow
    assert parse_at("2026-11-24T20:00", now) == dt.datetime(2026, 11, 24, 20, 0, tzinfo=tz)
    for bad, message in (
        ("25:00", "cannot read"),
        ("2026-11-24T10:00", "in the past"),
        ("2026-12-24T10:00", "more than 24 hours"),
        ("tea time", "cannot read"),
    ):
        with pytest.raises(CommandError, match=message):
            parse_at(bad, now)


def test_actions_with_no_service_behind_them_are_refused_cleanly(kitchen_factory) -> None:
    async def body() -> None:
        k: Kitchen = kitchen_factory()  # a controller with no timer service or rules
        await k.controller.start()
        for action, extra in (("timers", {}), ("timer", {"in": 60}), ("snooze", {"in": 60})):
            with pytest.raises(CommandError) as err:
                await k.do(action, "left", **extra)
            assert err.value.code == "unknown_action"
        await k.advance(0.5)
        assert k.burner("left").flame

    run(body())
