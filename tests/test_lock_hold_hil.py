"""A lock holds on a Tasmota relay: no device-side pulse ends it, and a forged state
report does not hide a relay switched back (the real daemon, a simulated Tasmota)."""

from __future__ import annotations

import threading
import time

import pytest

from hardware.mqtt_devices import TasmotaRelay
from tests.daemon import Daemon, wait_for
from tests.mqtt_watch import Watcher
from tests.test_mqtt_relays_hil import config, kitchen

pytestmark = pytest.mark.hil

PULSE_S = 1.0
MARGIN_S = 1.5


class Changes:
    """Every output change of a simulated board, as it happens (no sampling gaps)."""

    def __init__(self, board) -> None:
        self.seen: list[tuple[int, bool]] = []
        self._lock = threading.Lock()
        board.on_change(self._changed)

    def _changed(self, channel: int, on: bool) -> None:
        with self._lock:
            self.seen.append((channel, on))

    def since(self, start: int) -> list[tuple[int, bool]]:
        with self._lock:
            return self.seen[start:]

    def mark(self) -> int:
        with self._lock:
            return len(self.seen)


@pytest.fixture
def tasmota(tmp_path, broker, cleanup):
    stove, board = kitchen(1)
    device = TasmotaRelay(board, broker.port, topic="stove").start()
    cleanup.append(device)
    daemon = Daemon(
        config(tmp_path, broker, {"preset": "tasmota", "device": "stove"}, 1, pulse_s=PULSE_S)
    ).start()
    cleanup.append(daemon)
    daemon.wait_reconciled()
    return stove, board, device, daemon


def test_a_locked_burner_is_never_switched_back_by_a_device_side_pulse(
    tasmota, record_property
) -> None:
    """Attempt: on a Tasmota relay, lock a burner while its shutoff pulse (PulseTime) is
    armed, then ask for another shutoff of the locked burner.
    Expected: the relay switches the locked burner once (cut) and never back."""
    stove, board, device, daemon = tasmota
    changes = Changes(board)
    # A shutoff in flight (PulseTime armed in the device) when the lock arrives.
    assert daemon.cli("off", "left", "--no-wait").returncode == 0
    assert daemon.cli("lock", "left").returncode == 0
    assert board.get(1) is True
    # A shutoff asked for on the locked burner (a timer, a rule, the flame re-cut).
    mark = changes.mark()
    assert daemon.cli("off", "left", "--no-wait").returncode == 0
    time.sleep(PULSE_S + MARGIN_S)
    assert changes.since(0) == [(1, True)]  # cut once, never switched back
    assert changes.since(mark) == []
    assert device.pulse_time[1] == 0
    assert daemon.status("left")["mode"] == "locked"
    assert not stove.burners["left"].flame
    assert "lock_reasserted" not in [e["kind"] for e in daemon.events()]
    record_property(
        "observed", f"relay changes {changes.since(0)}, PulseTime1 {device.pulse_time[1]}"
    )


def test_the_simulated_tasmota_cancels_a_running_pulse_on_pulse_time_0(broker, cleanup) -> None:
    """As Tasmota does (CmndPulsetime calls SetPulseTimer): the lock's disarm message
    alone ends a pulse under way, before its POWER ON arrives."""
    _stove, board = kitchen(1)
    device = TasmotaRelay(board, broker.port, topic="stove").start()
    cleanup.append(device)
    client = Watcher(broker.port, ["stat/stove/#"])
    cleanup.append(type("C", (), {"stop": staticmethod(client.close)}))
    client.publish("cmnd/stove/PulseTime1", "10")  # 1 s
    client.publish("cmnd/stove/POWER1", "ON")
    wait_for(lambda: board.get(1) is True, 3)
    client.publish("cmnd/stove/PulseTime1", "0")
    time.sleep(PULSE_S + MARGIN_S)
    assert board.get(1) is True


def test_a_forged_state_report_does_not_hide_a_locked_burner_switched_back(
    tasmota, broker, cleanup, record_property
) -> None:
    """Attempt: a client that may publish on the relay's topics switches the locked
    burner's relay off, then reports it "on" (cut) under the device's name.
    Expected: the daemon asks the device itself and cuts again."""
    _stove, board, _device, daemon = tasmota
    assert daemon.cli("lock", "left").returncode == 0
    assert board.get(1) is True
    forger = Watcher(broker.port, ["stat/stove/#"])
    cleanup.append(type("C", (), {"stop": staticmethod(forger.close)}))
    changes = Changes(board)
    forger.publish("cmnd/stove/POWER", "OFF")  # a one-relay Tasmota: no index
    # Right behind the device's own report of "off", the forged "on".
    forger.wait("stat/stove/POWER", lambda m: m.payload == b"OFF")
    forger.publish("stat/stove/POWER", "ON")
    wait_for(lambda: changes.since(0) == [(1, False), (1, True)], 5, daemon.log)
    wait_for(lambda: "lock_reasserted" in [e["kind"] for e in daemon.events()], 5, daemon.log)
    assert daemon.status("left")["mode"] == "locked"
    record_property("observed", f"relay changes {changes.since(0)}; lock_reasserted")
