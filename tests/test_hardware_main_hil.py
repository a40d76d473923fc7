"""``python -m hardware``, the simulated kitchen, as a user runs it: in the background,
with each kind of relay, and with the real daemon on the config it prints."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from tests.broker import Mosquitto
from tests.daemon import Daemon, wait_for
from tests.miio_kitchen import next_host
from tests.mqtt_watch import Watcher

pytestmark = pytest.mark.hil

ROOT = Path(__file__).resolve().parent.parent
END_OF_CONFIG = "# end of config"


class Kitchen:
    """``python -m hardware`` in a process of its own; its output is kept line by line."""

    def __init__(
        self, broker: Mosquitto, *args: str, stdin: int | IO[bytes] | None = subprocess.DEVNULL
    ):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hardware", "--port", str(broker.port), *args],
            cwd=ROOT,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def config(self, timeout_s: float = 15) -> str:
        """The config it printed, up to its end marker."""
        wait_for(lambda: END_OF_CONFIG in self.lines, timeout_s, self.output)
        return "\n".join(self.lines[: self.lines.index(END_OF_CONFIG) + 1]) + "\n"

    def signal(self, signum: int, timeout_s: float = 15) -> int:
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=5)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def test_runs_in_the_background_until_sigterm(broker, cleanup) -> None:
    kitchen = Kitchen(broker)  # stdin is /dev/null: not a terminal, and at its end at once
    cleanup.append(kitchen)
    kitchen.config()
    assert any("stdin is not a terminal" in line for line in kitchen.lines), kitchen.output()
    time.sleep(1.5)  # it used to stop here, when stdin ended
    assert kitchen.proc.poll() is None, kitchen.output()

    # Still serving: its Tasmota relay answers a state query on the broker.
    watcher = Watcher(broker.port, ["stat/stove/#"])
    cleanup.append(type("C", (), {"stop": staticmethod(watcher.close)}))
    watcher.publish("cmnd/stove/POWER1", "")
    assert watcher.wait("stat/stove/POWER1").payload == b"OFF"

    assert kitchen.signal(signal.SIGTERM) == 0, kitchen.output()
    assert "SIGTERM: stopping" in kitchen.output()
    assert "Traceback" not in kitchen.output()


def test_no_stdin_ignores_what_is_typed_and_sigint_ends_it(broker, cleanup) -> None:
    host = next_host()
    kitchen = Kitchen(broker, "--miio", host, "--no-stdin", stdin=subprocess.PIPE)
    cleanup.append(kitchen)
    kitchen.config()
    assert any("--no-stdin: running until SIGTERM or SIGINT" in ln for ln in kitchen.lines)
    assert kitchen.proc.stdin is not None
    kitchen.proc.stdin.write("quit\n")  # not read: --no-stdin
    kitchen.proc.stdin.flush()
    time.sleep(1.0)
    assert kitchen.proc.poll() is None, kitchen.output()

    # Still serving: its Mi Home relay answers python-miio's own client.
    from miio import MiotDevice

    from hardware.__main__ import TOKEN

    relay = MiotDevice(host, TOKEN, timeout=2, mapping={})
    reply = relay.get_property_by(2, 1)
    assert reply[0]["code"] == 0 and reply[0]["value"] is False

    assert kitchen.signal(signal.SIGINT) == 0, kitchen.output()
    assert "SIGINT: stopping" in kitchen.output()
    assert "Traceback" not in kitchen.output()


def test_commands_piped_in_are_read_then_it_keeps_running(broker, cleanup) -> None:
    watcher = Watcher(broker.port, ["kitchen-sensors/binary_sensor/gas_alarm/state"])
    cleanup.append(type("C", (), {"stop": staticmethod(watcher.close)}))
    kitchen = Kitchen(broker, "--esphome", stdin=subprocess.PIPE)
    cleanup.append(kitchen)
    kitchen.config()
    assert kitchen.proc.stdin is not None
    kitchen.proc.stdin.write("gas on\n")
    kitchen.proc.stdin.close()  # the end of its input is not the end of the kitchen
    watcher.wait("kitchen-sensors/binary_sensor/gas_alarm/state", lambda m: m.payload == b"ON", 10)
    time.sleep(1.0)
    assert kitchen.proc.poll() is None, kitchen.output()
    assert kitchen.signal(signal.SIGTERM) == 0, kitchen.output()


def daemon_config(tmp_path: Path, printed: str) -> Path:
    """The printed config as a file, with this test's state directory and socket."""
    path = tmp_path / "kitchen.yaml"
    path.write_text(printed + f"state_dir: {tmp_path / 'state'}\nsocket: {tmp_path / 'ctl.sock'}\n")
    path.chmod(0o600)  # the Mi Home config holds the relay's token
    return path


KINDS = {
    "tasmota": ((), 1),
    "shelly": (("--shelly",), 2),
    "z2m": (("--z2m",), 1),
    "esphome": (("--esphome",), 1),
    "miio": (("--miio",), 1),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_printed_config_runs_the_daemon_with_flame_inputs(tmp_path, broker, cleanup, kind) -> None:
    args, relays = KINDS[kind]
    if kind == "miio":
        args = (*args, next_host())
    kitchen = Kitchen(broker, *args)
    cleanup.append(kitchen)
    path = daemon_config(tmp_path, kitchen.config())
    assert "inputs:" in path.read_text()

    check = subprocess.run(
        [sys.executable, "-m", "stove_ctl", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    assert f"ok (1 stove(s), 2 burner(s), {relays} relay(s))" in check.stdout
    assert check.stderr == ""  # no warning either: the wiring suits the relay

    daemon = Daemon(path).start()
    cleanup.append(daemon)
    daemon.wait_reconciled()
    wait_for(
        lambda: daemon.status("left")["flame"] == daemon.status("right")["flame"] == "lit",
        10,
        daemon.log,
    )

    off = daemon.cli("off", "left")
    assert off.returncode == 0, off.stdout + off.stderr
    assert "kitchen/left: shut off" in off.stdout
    if kind in ("tasmota", "shelly"):  # the flame input is the same for every relay
        # The thermocouple cools below lit_above_mv (12 mV of 25) ~13 s after the cut.
        wait_for(lambda: daemon.status("left")["flame"] == "out", 30, daemon.log)
        assert daemon.status("right")["flame"] == "lit"
    assert daemon.stop() == 0
    assert kitchen.signal(signal.SIGTERM) == 0, kitchen.output()
