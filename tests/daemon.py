"""Run the real daemon as a process, and the real CLI against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from stove_ctl.errors import DaemonNotRunning
from stove_ctl.surfaces import control


def kitchen_config(
    tmp_path: Path, pulse_s: float = 2.0, mqtt: dict[str, Any] | None = None, **relay: Any
) -> Path:
    """A two-burner simulated kitchen, both burners lit, state under tmp_path."""
    data: dict[str, Any] = {
        "state_dir": str(tmp_path / "state"),
        "socket": str(tmp_path / "ctl.sock"),
        "relays": {"board": {"driver": "simulated", "channels": 2, "start_lit": True, **relay}},
        "stoves": [
            {
                "id": "kitchen",
                "burners": [
                    {"id": "left", "relay": {"device": "board", "channel": 1}, "pulse_s": pulse_s},
                    {"id": "right", "relay": {"device": "board", "channel": 2}, "pulse_s": pulse_s},
                ],
            }
        ],
    }
    if mqtt is not None:
        data["mqtt"] = mqtt
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Daemon:
    def __init__(
        self, config: Path, env: dict[str, str] | None = None, prefix: Sequence[str] = ()
    ) -> None:
        """``prefix``: a command the daemon runs under (e.g. ``unshare``)."""
        self.config = config
        self.env = env
        self.prefix = list(prefix)
        data = yaml.safe_load(config.read_text())
        self.socket = Path(data["socket"]) if "socket" in data else self._default_socket()
        self.state_dir = Path(data["state_dir"])
        self.log_path = config.parent / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 15.0) -> Daemon:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "stove_ctl", "run", "-c", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env} if self.env else None,
        )
        log.close()
        wait_for(lambda: self.request({"action": "status"}).get("ok"), timeout_s, self.log)
        return self

    def _default_socket(self) -> Path:
        """The per-user default, as the daemon sees it with this daemon's environment."""
        env = {**os.environ, **(self.env or {})}
        runtime = env.get("XDG_RUNTIME_DIR")
        if runtime:
            return Path(runtime) / "stove-ctl.sock"
        tmp = env.get("TMPDIR") or "/tmp"
        return Path(tmp) / f"stove-ctl-{os.getuid()}" / "stove-ctl.sock"

    def wait_reconciled(self, timeout_s: float = 10.0) -> None:
        """Wait until start-up has read every relay (the circuit of each burner is known)."""

        def known() -> bool:
            burners = self.request({"action": "status"}).get("burners", [])
            return bool(burners) and all(b["circuit"] != "unknown" for b in burners)

        wait_for(known, timeout_s, self.log)

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return control.request(self.socket, payload, timeout_s=30)
        except DaemonNotRunning:
            return {}

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def cli(self, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stove_ctl", *args, "-c", str(self.config)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, **self.env} if self.env else None,
        )

    def status(self, burner: str) -> dict[str, Any]:
        reply = self.request({"action": "status"})
        return next(b for b in reply["burners"] if b["burner"] == f"kitchen/{burner}")

    def events(self) -> list[dict[str, Any]]:
        return self.request({"action": "events", "limit": 1000})["events"]

    def relay_outputs(self) -> dict[str, bool]:
        """The simulated board's outputs as it keeps them, daemon alive or not."""
        path = self.state_dir / "sim-relay-board.json"
        for _ in range(100):  # the board rewrites it in place: read again if caught mid-write
            if not path.exists():
                return {}
            try:
                outputs: dict[str, bool] = json.loads(path.read_text())["on"]
                return outputs
            except ValueError:
                time.sleep(0.01)
        raise AssertionError(f"{path} never holds whole JSON")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)


def wait_for(
    predicate: Callable[[], Any], timeout_s: float, explain: Callable[[], str] = str
) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s\n{explain()}")


def cli_no_config(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stove_ctl", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def miio_config(
    tmp_path: Path,
    host: str,
    token: str,
    pulse_s: float = 2.0,
    name: str = "config.yaml",
    **relay: Any,
) -> Path:
    """Two burners on a simulated yeelink.switch.sw1 (MIoT, off-delay at piid 3)."""
    channel_map = {
        n: {"siid": n + 1, "piid": 1, "off_delay": {"siid": n + 1, "piid": 3, "disarm": -1}}
        for n in (1, 2)
    }
    data = {
        "state_dir": str(tmp_path / "state"),
        "socket": str(tmp_path / "ctl.sock"),
        "relays": {
            "stove-relay": {
                "driver": "miio",
                "host": host,
                "token": token,
                "model": "yeelink.switch.sw1",
                "channels": 2,
                "mapping": channel_map,
                "timeout_s": 1.0,
                "poll_s": 0.3,
                **relay,
            }
        },
        "stoves": [
            {
                "id": "kitchen",
                "burners": [
                    {
                        "id": "left",
                        "relay": {"device": "stove-relay", "channel": 1},
                        "pulse_s": pulse_s,
                    },
                    {
                        "id": "right",
                        "relay": {"device": "stove-relay", "channel": 2},
                        "pulse_s": pulse_s,
                    },
                ],
            }
        ],
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path
