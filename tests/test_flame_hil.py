"""A relight is not a failed cut (DESIGN invariant 10), through the real daemon: a
simulated Tasmota relay and thermocouple taps publishing the stove model's EMF."""

from __future__ import annotations

import time

import pytest
import yaml

from tests.daemon import Daemon, wait_for
from tests.test_rules_hil import config, rig  # noqa: F401 - rig is a fixture

pytestmark = pytest.mark.hil

CONFIRM_S = 8.0
LIT_ABOVE_MV = 12.0  # the README's example: the tip stays above it ~13 s after the flame


def test_a_burner_relit_after_the_cut_is_not_cut_again(
    tmp_path,
    broker,
    rig,  # noqa: F811 - the fixture imported above
    record_property,
) -> None:
    """Attempt: "off left" by mistake, and relight it 3 s after the cut while the
    thermocouple tap (12 mV threshold) still reads "lit".
    Expected: a relight, not a failed cut: no second cut, no alarm, no lock."""
    stove, _board, _motion, _gas = rig
    path = config(tmp_path, broker, confirm_s=CONFIRM_S)
    data = yaml.safe_load(path.read_text())
    for sensor in data["inputs"]["flame"]:
        sensor["lit_above_mv"] = LIT_ABOVE_MV
    path.write_text(yaml.safe_dump(data))
    daemon = Daemon(path).start()
    try:
        wait_for(lambda: daemon.status("left")["flame"] == "lit", 5, daemon.log)
        cut_at = time.monotonic()
        assert daemon.cli("off", "left").returncode == 0  # cut, held 1 s, restored
        left = stove.burners["left"]
        assert not left.flame
        time.sleep(max(0.0, cut_at + 3.0 - time.monotonic()))
        assert left.thermocouple_mv > LIT_ABOVE_MV  # the tap still says "lit"
        left.press_and_turn()  # someone relights it
        time.sleep(4.0)
        left.release()
        time.sleep(max(0.0, cut_at + CONFIRM_S + 2.0 - time.monotonic()))  # past confirm_s
        assert left.flame and left.valve_open
        kinds = [e["kind"] for e in daemon.events() if e["burner"] == "kitchen/left"]
        assert kinds.count("cut_commanded") == 1
        assert "alarm" not in kinds and "fault" not in kinds
        assert "flame_relit" in kinds
        assert "cutting again" not in daemon.log()
        assert "relit after the cut" in daemon.log()
        assert daemon.status("left")["mode"] == "ready"
        record_property(
            "observed", f"cuts {kinds.count('cut_commanded')}, flame_relit, burner still lit"
        )
    finally:
        daemon.stop()
