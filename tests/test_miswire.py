"""The simulated installation mistakes (hardware/miswire.py) do what a real one does."""

from __future__ import annotations

import pytest

import hardware
from hardware.miswire import connect


def rig(
    miswire: dict[str, str], wiring: str = "nc_series"
) -> tuple[hardware.SteppableClock, hardware.Stove, hardware.SimRelay]:
    clock = hardware.SteppableClock()
    stove = hardware.Stove(clock)
    board = hardware.SimRelay(channels=2)
    burners = {n: (stove.add_burner(n, wiring), c) for c, n in ((1, "left"), (2, "right"))}
    connect(board, burners, miswire)
    return clock, stove, board


def light(clock: hardware.SteppableClock, burner: hardware.Burner) -> None:
    """A person lights it: knob pressed 5 s, then let go, and 2 s more."""
    burner.press_and_turn()
    clock.step(5.0)
    burner.release()
    clock.step(2.0)


def cut(clock: hardware.SteppableClock, board: hardware.SimRelay, channel: int, on: bool) -> None:
    board.set(channel, on)
    clock.step(1.0)
    board.set(channel, not on)
    clock.step(1.0)


def test_correct_wiring_lights_and_the_cut_puts_out_only_its_burner() -> None:
    clock, stove, board = rig({})
    for burner in stove.burners.values():
        light(clock, burner)
    cut(clock, board, 1, True)
    assert not stove.burners["left"].flame and stove.burners["right"].flame


def test_a_contact_outside_the_circuit_cuts_nothing() -> None:
    clock, stove, board = rig({"left": "outside_circuit"})
    light(clock, stove.burners["left"])
    cut(clock, board, 1, True)
    assert stove.burners["left"].flame


@pytest.mark.parametrize("wiring", ["nc_series", "no_parallel"])
def test_an_inverted_contact_does_not_let_the_burner_stay_lit(wiring: str) -> None:
    clock, stove, _board = rig({"left": "inverted"}, wiring)
    light(clock, stove.burners["left"])
    assert not stove.burners["left"].flame
    assert stove.burners["left"].valve_open is False


def test_a_high_resistance_short_across_the_terminals_does_not_drop_the_valve() -> None:
    clock, stove, board = rig({"left": "high_resistance"}, "no_parallel")
    light(clock, stove.burners["left"])
    cut(clock, board, 1, True)
    assert stove.burners["left"].flame


def test_a_high_resistance_series_contact_cannot_hold() -> None:
    clock, stove, _board = rig({"left": "high_resistance"})
    light(clock, stove.burners["left"])
    assert not stove.burners["left"].flame


def test_swapped_channels_put_out_the_other_burner() -> None:
    clock, stove, board = rig({"left": "swapped", "right": "swapped"})
    for burner in stove.burners.values():
        light(clock, burner)
    cut(clock, board, 1, True)
    assert stove.burners["left"].flame and not stove.burners["right"].flame


def test_bad_miswire_is_refused() -> None:
    with pytest.raises(ValueError, match="exactly two"):
        rig({"left": "swapped"})
    with pytest.raises(ValueError, match="no such burner"):
        rig({"middle": "inverted"})
    with pytest.raises(ValueError):
        rig({"left": "loose"})


def test_python_m_hardware_refuses_a_bad_miswire_in_one_line(capsys) -> None:
    from hardware.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["--miswire", "left=loose"])
    assert exited.value.code == 2
    assert "unknown mistake 'loose'" in capsys.readouterr().err
    assert main(["--miswire", "left=swapped", "--no-stdin"]) == 2  # before any network
    assert "mark exactly two burners" in capsys.readouterr().err
    assert main(["--shelly", "--miswire", "left=swapped", "--miswire", "right=swapped"]) == 2


def test_a_simulated_relay_in_the_config_is_miswired_as_told(tmp_path) -> None:
    from stove_ctl.clock import ManualClock
    from stove_ctl.config import parse_config
    from stove_ctl.factory import build

    miswire = {"left": "swapped", "right": "swapped"}
    config = parse_config(
        {
            "state_dir": str(tmp_path),
            "relays": {"b": {"driver": "simulated", "channels": 2, "miswire": miswire}},
            "stoves": [
                {
                    "id": "k",
                    "burners": [
                        {"id": "left", "relay": {"device": "b", "channel": 1}},
                        {"id": "right", "relay": {"device": "b", "channel": 2}},
                    ],
                }
            ],
        }
    )
    runtime = build(config, ManualClock())
    try:
        stove = runtime.sim_stoves["k"]
        runtime.sim_boards["b"].set(1, True)
        assert stove.burners["right"].contact.energized
        assert not stove.burners["left"].contact.energized
    finally:
        runtime.events.close()
