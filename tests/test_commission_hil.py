"""``stove-ctl commission`` through the real daemon and the real CLI, against a simulated
Tasmota relay wired into the stove model correctly and in each wrong way
(hardware/miswire.py). A test "person" reads each question the CLI prints, does what it
asks on the physical stove (lights a burner: knob pressed 4.5 s, then let go) and
answers from what the stove really does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import hardware
from hardware.mqtt_devices import FlameSensor, TasmotaRelay
from tests.broker import Mosquitto
from tests.daemon import Daemon, wait_for
from tests.miio_kitchen import RealTimeClock

pytestmark = pytest.mark.hil

NAMES = ("left", "right")


class Kitchen:
    def __init__(self, broker: Mosquitto, wiring: str, miswire: dict[str, str], flame: bool):
        self.stove = hardware.Stove(RealTimeClock())
        self.board = hardware.SimRelay(channels=2)
        burners = {n: (self.stove.add_burner(n, wiring), c) for c, n in enumerate(NAMES, start=1)}
        hardware.connect(self.board, burners, miswire)
        self.devices: list[Any] = [TasmotaRelay(self.board, broker.port, topic="hob")]
        if flame:
            self.devices += [
                FlameSensor(self.stove.burners[n], broker.port, prefix="sensors", period_s=0.3)
                for n in NAMES
            ]
        for device in self.devices:
            device.start()

    def stop(self) -> None:
        for device in self.devices:
            device.stop()


def config(tmp_path: Path, broker: Mosquitto, wiring: str, flame: bool) -> Path:
    data: dict[str, Any] = {
        "state_dir": str(tmp_path / "state"),
        "socket": str(tmp_path / "ctl.sock"),
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "discovery": False},
        "relays": {"hob": {"driver": "mqtt", "preset": "tasmota", "device": "hob", "channels": 2}},
        "stoves": [
            {
                "id": "kitchen",
                "burners": [
                    {
                        "id": n,
                        "name": f"the {n} burner",
                        "relay": {"device": "hob", "channel": c},
                        "wiring": wiring,
                        "pulse_s": 1,
                    }
                    for c, n in enumerate(NAMES, start=1)
                ],
            }
        ],
    }
    if flame:
        data["inputs"] = {
            "flame": [
                {"burner": n, "topic": f"sensors/sensor/{n}_thermocouple/state", "lit_above_mv": 12}
                for n in NAMES
            ]
        }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Person:
    """Runs ``stove-ctl commission`` and answers its questions from the physical stove."""

    def __init__(self, kitchen: Kitchen, target: str = "left", other: str = "right") -> None:
        self.stove = kitchen.stove
        self.target = self.stove.burners[target]
        self.other = self.stove.burners[other]
        self.output = ""
        self.questions: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def light(self, burner: hardware.Burner) -> None:
        if burner.flame:
            return
        burner.press_and_turn()
        time.sleep(4.5)
        burner.release()
        time.sleep(1.0)

    def answer(self, question: str) -> bool:
        if "Light another burner" in question:
            self.light(self.other)
            return self.other.flame
        if "Did another burner go out" in question:
            return not self.other.flame
        if "Did the flame of" in question:
            return not self.target.flame
        if "ight " in question:  # Light / relight the burner under test
            self.light(self.target)
            return self.target.flame
        raise AssertionError(f"a question the person does not understand: {question!r}")

    def run(self, daemon: Daemon, *args: str, timeout_s: float = 120) -> int:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stove_ctl", "commission", *args, "-c", str(daemon.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert proc.stdin is not None and proc.stdout is not None
        stdout = proc.stdout

        def read() -> None:
            while chunk := os.read(stdout.fileno(), 4096):
                with self._lock:
                    self.output += chunk.decode()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        seen = 0
        deadline = time.monotonic() + timeout_s
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                with self._lock:
                    text = self.output
                at = text.find("[y/n] ", seen)
                if at < 0:
                    time.sleep(0.05)
                    continue
                start = max(text.rfind("\n", 0, at) + 1, seen)  # after the last answer
                question = text[start:at].strip()
                seen = at + 6
                word = "y" if self.answer(question) else "n"
                self.questions.append((question, word))
                proc.stdin.write(f"{word}\n".encode())
                proc.stdin.flush()
            code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
        finally:
            if proc.poll() is None:
                proc.kill()
        reader.join(5)
        return code


def record(daemon: Daemon, burner: str = "kitchen/left") -> dict[str, Any]:
    return json.loads((daemon.state_dir / "commissioning.json").read_text())[burner]


@pytest.fixture
def rig(tmp_path, broker):
    made: list[Any] = []

    def start(
        wiring: str = "nc_series", miswire: dict[str, str] | None = None, flame: bool = True
    ) -> tuple[Kitchen, Daemon]:
        kitchen = Kitchen(broker, wiring, miswire or {}, flame)
        made.append(kitchen)
        daemon = Daemon(config(tmp_path, broker, wiring, flame)).start()
        made.append(daemon)
        daemon.wait_reconciled()
        if flame:
            wait_for(lambda: daemon.status("left")["flame"] == "out", 10, daemon.log)
        return kitchen, daemon

    yield start
    for thing in reversed(made):
        thing.stop()


def test_a_correct_installation_passes_with_the_figures_measured(rig) -> None:
    kitchen, daemon = rig()
    kitchen.stove.burners["right"].light_and_hold()  # someone cooking on the other one
    person = Person(kitchen)
    code = person.run(daemon, "left")
    assert code == 0, person.output
    assert "PASSED: kitchen/left is commissioned." in person.output
    kept = record(daemon)
    assert kept["result"] == "passed" and kept["diagnosis"] == []
    assert kept["wiring"] == "nc_series" and kept["relay"] == {"device": "hob", "channel": 1}
    assert kept["flame_input"] == "measures"
    figures = kept["figures"]
    assert 0 <= figures["flame_out_s"] < 6
    assert figures["mv_fall"] > 1.0  # the thermocouple cooled (it was lit a few seconds only)
    assert kept["answers"] == {"lit": "y", "relit": "y"}
    assert kitchen.stove.burners["left"].flame  # relit, and it holds
    assert kitchen.stove.burners["right"].flame  # the other burner never went out
    status = daemon.request({"action": "status"})["burners"][0]
    assert status["commissioning"]["result"] == "passed"
    assert status["reminders"] == []
    # It survives a restart of the daemon.
    daemon.stop()
    daemon.start()
    assert daemon.status("left")["commissioning"]["result"] == "passed"


def test_a_correct_installation_passes_on_answers_alone_without_a_flame_input(rig) -> None:
    kitchen, daemon = rig(flame=False)
    person = Person(kitchen)
    assert person.run(daemon, "left") == 0, person.output
    asked = [q for q, _ in person.questions]
    assert any("Did the flame of the left burner go out?" in q for q in asked)
    assert any("Did another burner go out?" in q for q in asked)
    kept = record(daemon)
    assert kept["result"] == "passed" and kept["flame_input"] == "none"
    assert kept["answers"] == {
        "lit": "y",
        "other_lit": "y",
        "flame_out": "y",
        "other_out": "n",
        "relit": "y",
    }


def test_a_contact_outside_the_circuit_is_explained(rig) -> None:
    kitchen, daemon = rig(miswire={"left": "outside_circuit"})
    kitchen.stove.burners["right"].light_and_hold()
    person = Person(kitchen)
    assert person.run(daemon, "left") == 1, person.output
    assert "the flame stayed lit: check that the contact is in the thermocouple circuit" in (
        person.output
    )
    kept = record(daemon)
    assert kept["result"] == "failed"
    assert "in the thermocouple circuit" in kept["diagnosis"][0]
    assert kept["figures"]["flame_out_s"] is None


def test_an_inverted_contact_is_found_by_lighting_it_while_cut(rig) -> None:
    kitchen, daemon = rig(miswire={"left": "inverted"}, flame=False)
    person = Person(kitchen)
    assert person.run(daemon, "left") == 1, person.output
    assert "stays lit only while stove-ctl cuts it: the contact is the wrong kind" in (
        person.output
    )
    assert "needs a normally-closed contact" in person.output
    assert record(daemon)["answers"] == {"lit": "n", "lit_while_cut": "y"}
    assert daemon.status("left")["lock"] is None  # the check's lock was ended
    wait_for(lambda: not kitchen.stove.burners["left"].flame, 5)  # and the gas is off


def test_a_high_resistance_series_contact_is_told_from_an_inverted_one(rig) -> None:
    kitchen, daemon = rig(miswire={"left": "high_resistance"}, flame=False)
    person = Person(kitchen)
    assert person.run(daemon, "left") == 1, person.output
    assert "the contact's resistance is too high" in person.output
    assert record(daemon)["answers"] == {"lit": "n", "lit_while_cut": "n"}


def test_a_poor_short_across_the_terminals_is_explained(rig) -> None:
    kitchen, daemon = rig(wiring="no_parallel", miswire={"left": "high_resistance"})
    kitchen.stove.burners["right"].light_and_hold()
    person = Person(kitchen)
    assert person.run(daemon, "left") == 1, person.output
    assert "too poor a short to drop the valve" in person.output
    assert record(daemon)["wiring"] == "no_parallel"


def test_swapped_channels_are_caught_by_the_flame_inputs(rig) -> None:
    kitchen, daemon = rig(miswire={"left": "swapped", "right": "swapped"})
    kitchen.stove.burners["right"].light_and_hold()
    person = Person(kitchen)
    assert person.run(daemon, "left") == 1, person.output
    assert "you lit the left burner, but the cut on channel 1 put out the right burner" in (
        person.output
    )
    assert "channels are swapped" in record(daemon)["diagnosis"][0]


def test_swapped_channels_are_caught_by_asking_without_flame_inputs(rig) -> None:
    kitchen, daemon = rig(miswire={"left": "swapped", "right": "swapped"}, flame=False)
    person = Person(kitchen)
    assert person.run(daemon, "left") == 1, person.output
    assert "you lit the left burner, but the cut on channel 1 put out another burner" in (
        person.output
    )
    assert record(daemon)["answers"]["other_out"] == "y"


def test_calibration_suggests_a_pulse_and_is_refused_without_a_flame_input(rig, tmp_path) -> None:
    kitchen, daemon = rig()
    person = Person(kitchen)
    assert person.run(daemon, "left", "--calibrate") == 0, person.output
    assert "A 0.1 s cut dropped the valve. Suggested pulse_s: 1.5" in person.output
    assert yaml.safe_load(daemon.config.read_text())["stoves"][0]["burners"][0]["pulse_s"] == 1
    assert daemon.status("left")["lock"] is None


def test_calibration_is_refused_without_a_flame_input(rig) -> None:
    kitchen, daemon = rig(flame=False)
    person = Person(kitchen)
    assert person.run(daemon, "left", "--calibrate") == 2
    assert "--calibrate needs a flame input" in person.output
    assert person.questions == []
    assert not (daemon.state_dir / "commissioning.json").exists()
