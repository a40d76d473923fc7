"""The stove model behaves like the reference figures in DESIGN.md section 1."""

from __future__ import annotations

import pytest

from hardware import RelayOffline, SimRelay, SteppableClock, Stove, Wiring

ALL_WIRINGS = list(Wiring)


def cut_state(wiring: Wiring) -> bool:
    """Relay output (energised) that cuts the circuit in this wiring mode."""
    return wiring is not Wiring.NO_SERIES


def make_burner(wiring: Wiring, contact_ohm: float | None = None):
    clock = SteppableClock()
    stove = Stove(clock)
    if contact_ohm is None:
        burner = stove.add_burner("b", wiring)
    else:
        burner = stove.add_burner("b", wiring, contact_resistance_ohm=contact_ohm)
    burner.contact.set(not cut_state(wiring))  # circuit intact
    return clock, burner


def light(clock: SteppableClock, burner, hold_s: float) -> None:
    burner.press_and_turn()
    clock.step(hold_s)
    burner.release()
    clock.step(0.5)


def seconds_until(clock: SteppableClock, predicate, limit_s: float, step_s: float = 0.01) -> float:
    start = clock.monotonic()
    while not predicate():
        if clock.monotonic() - start > limit_s:
            raise AssertionError(f"condition not met within {limit_s} s")
        clock.step(step_s)
    return clock.monotonic() - start


@pytest.mark.parametrize("wiring", ALL_WIRINGS)
def test_cold_burner_needs_three_to_five_seconds_to_hold(wiring: Wiring) -> None:
    clock, burner = make_burner(wiring)
    burner.press_and_turn()
    assert burner.flame and burner.valve_open
    held_after = seconds_until(clock, lambda: burner.coil_current_a >= 0.100, limit_s=10)
    assert 3.0 <= held_after <= 5.0


@pytest.mark.parametrize("wiring", ALL_WIRINGS)
def test_cut_closes_the_valve_within_0_2_s(wiring: Wiring) -> None:
    clock, burner = make_burner(wiring)
    light(clock, burner, hold_s=8)
    clock.step(60)
    assert burner.flame and burner.valve_open
    cut_at = clock.monotonic()
    burner.contact.set(cut_state(wiring))
    clock.step(0.2)
    assert not burner.valve_open
    assert not burner.flame
    closed_at = burner.last("valve_closed")
    assert closed_at is not None and closed_at - cut_at <= 0.1


@pytest.mark.parametrize("wiring", ALL_WIRINGS)
def test_restore_never_reopens_the_valve(wiring: Wiring) -> None:
    clock, burner = make_burner(wiring)
    light(clock, burner, hold_s=8)
    burner.contact.set(cut_state(wiring))
    clock.step(3)
    burner.contact.set(not cut_state(wiring))
    for _ in range(120):
        clock.step(0.5)
        assert not burner.valve_open
        assert not burner.flame
    assert burner.circuit_intact


@pytest.mark.parametrize("wiring", ALL_WIRINGS)
def test_relight_after_restore_needs_the_knob_held(wiring: Wiring) -> None:
    clock, burner = make_burner(wiring)
    light(clock, burner, hold_s=8)
    burner.contact.set(cut_state(wiring))
    clock.step(3)
    burner.contact.set(not cut_state(wiring))
    burner.turn_off()
    clock.step(120)  # the thermocouple cools right down

    light(clock, burner, hold_s=1.0)  # released too early
    assert not burner.valve_open and not burner.flame

    burner.turn_off()
    clock.step(120)
    light(clock, burner, hold_s=6.0)
    clock.step(30)
    assert burner.valve_open and burner.flame


@pytest.mark.parametrize("wiring", ALL_WIRINGS)
def test_held_cut_keeps_the_burner_from_staying_lit(wiring: Wiring) -> None:
    clock, burner = make_burner(wiring)
    burner.contact.set(cut_state(wiring))  # locked
    burner.press_and_turn()
    clock.step(15)
    assert burner.flame  # held open by hand, the burner burns...
    released_at = clock.monotonic()
    burner.release()
    clock.step(0.2)
    assert not burner.valve_open and not burner.flame  # ...and goes out on release
    closed_at = burner.last("valve_closed")
    assert closed_at is not None and closed_at - released_at <= 0.1


@pytest.mark.parametrize("wiring", ALL_WIRINGS)
def test_natural_flame_out_closes_the_valve_in_10_to_20_s(wiring: Wiring) -> None:
    clock, burner = make_burner(wiring)
    light(clock, burner, hold_s=8)
    clock.step(300)
    burner.blow_out()
    assert burner.valve_open  # gas still flows, unburnt, until the thermocouple cools
    took = seconds_until(clock, lambda: not burner.valve_open, limit_s=60, step_s=0.05)
    assert 10.0 <= took <= 20.0


@pytest.mark.parametrize("wiring", [Wiring.NC_SERIES, Wiring.NO_SERIES])
def test_bad_series_contact_stops_the_burner_holding(wiring: Wiring) -> None:
    clock, burner = make_burner(wiring, contact_ohm=0.25)
    light(clock, burner, hold_s=30)
    assert not burner.valve_open and not burner.flame


@pytest.mark.parametrize("wiring", [Wiring.NC_SERIES, Wiring.NO_SERIES])
def test_contact_at_datasheet_limit_still_holds(wiring: Wiring) -> None:
    clock, burner = make_burner(wiring, contact_ohm=0.100)
    light(clock, burner, hold_s=30)
    clock.step(60)
    assert burner.valve_open and burner.flame


def test_bad_parallel_contact_no_longer_shorts_the_thermocouple() -> None:
    clock, burner = make_burner(Wiring.NO_PARALLEL, contact_ohm=1.0)
    light(clock, burner, hold_s=8)
    burner.contact.set(True)
    clock.step(1)
    assert burner.valve_open  # a 1 Ohm "short" is no short: this is why contacts matter


def test_long_idle_periods_integrate_quickly_and_stay_put() -> None:
    clock, burner = make_burner(Wiring.NC_SERIES)
    light(clock, burner, hold_s=8)
    clock.step(24 * 3600)
    assert burner.flame and burner.valve_open
    assert burner.thermocouple_mv == pytest.approx(25.0, abs=0.01)


def test_relay_board_drives_contacts_and_power_cycles_to_its_power_on_state(tmp_path) -> None:
    clock = SteppableClock()
    stove = Stove(clock)
    burner = stove.add_burner("left", Wiring.NC_SERIES)
    board = SimRelay(channels=2, state_file=tmp_path / "relay.json")
    board.attach(1, burner.contact)
    seen: list[tuple[int, bool]] = []
    board.on_change(lambda ch, on: seen.append((ch, on)))
    board.set(1, True)
    assert burner.contact.energized and not burner.circuit_intact
    assert seen == [(1, True)]
    again = SimRelay(channels=2, state_file=tmp_path / "relay.json")
    assert again.get(1) is True  # outputs survive whoever drove the board
    board.power_cycle()
    assert board.get(1) is False and burner.circuit_intact
    assert SimRelay(channels=2, state_file=tmp_path / "relay.json").get(1) is False


def test_relay_board_faults() -> None:
    board = SimRelay(channels=1)
    board.stuck.add(1)
    board.set(1, True)
    assert board.get(1) is False
    board.offline = True
    with pytest.raises(RelayOffline):
        board.get(1)
    with pytest.raises(ValueError):
        SimRelay(channels=1).set(2, True)
