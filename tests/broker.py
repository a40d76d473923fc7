"""A real Mosquitto, started by the tests on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        raise RuntimeError("mosquitto is not installed: run scripts/test, which installs it")
    return found


class Mosquitto:
    def __init__(
        self,
        workdir: Path,
        password_file: Path | None = None,
        tls: tuple[Path, Path, Path] | None = None,
        require_certificate: bool = False,
        options: list[str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.password_file = password_file
        self.tls = tls  # (ca, server cert, server key)
        self.require_certificate = require_certificate
        self.options = options or []  # extra mosquitto.conf lines
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"mosquitto-{self.port}.log"

    def _config(self) -> Path:
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_type all"]
        if os.geteuid() == 0:
            # Started as root, mosquitto drops to user "mosquitto", who cannot read the
            # test's private directory; stay the user who started it.
            lines.append("user root")
        if self.password_file is not None:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls is not None:
            ca, cert, key = self.tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
            if self.require_certificate:
                lines += ["require_certificate true"]
        lines += self.options
        path = self.workdir / f"mosquitto-{self.port}.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> Mosquitto:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self._config())], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited:\n{self.log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()
