"""Two real Mosquittos on loopback: a central broker, and a site's leaf broker bridged to
it with the bridge configuration that docs/FLEET.md shows (read from there, so the
sample is the configuration the tests and bench/fleet.py run)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from tests.broker import Mosquitto
from tests.mqtt_watch import Watcher

DOC = Path(__file__).resolve().parent.parent / "docs" / "FLEET.md"
SAMPLE_SITE = "site-a"  # the site the sample's topic line names


def sample_bridge() -> list[str]:
    """The fenced block of docs/FLEET.md that starts a bridge (``connection …``)."""
    lines = [line.strip() for line in DOC.read_text().splitlines()]
    fences = [n for n, line in enumerate(lines) if line.startswith("```")]
    for start, end in zip(fences[::2], fences[1::2], strict=False):
        block = lines[start + 1 : end]
        if any(line.startswith("connection ") for line in block):
            return block
    raise AssertionError(f"no bridge sample (a block with `connection`) in {DOC}")


def bridge_config(central_port: int, sites: Sequence[str]) -> list[str]:
    """The sample's active lines (comments dropped), its ``address`` pointed at the
    central broker on loopback, and its site's ``topic`` line once per site in
    ``sites``; every other line as the sample has it."""
    out: list[str] = []
    for line in sample_bridge():
        if not line or line.startswith("#"):
            continue
        key = line.split()[0]
        if key == "address":
            out.append(f"address 127.0.0.1:{central_port}")
        elif key == "topic" and f"/{SAMPLE_SITE}/" in line:
            out += [line.replace(f"/{SAMPLE_SITE}/", f"/{site}/") for site in sites]
        else:
            out.append(line)
    return out


def option(lines: Sequence[str], key: str) -> str:
    values = [line.split(None, 1)[1] for line in lines if line.split()[0] == key]
    if len(values) != 1:
        raise AssertionError(f"expected one {key} line in the bridge sample, got {values}")
    return values[0]


class Bridged:
    """A central Mosquitto and a leaf Mosquitto bridged to it (``topic … both``) for
    the namespaces ``stove_ctl/<site>/#`` of ``sites``. ``start()`` returns once the
    bridge carries messages both ways."""

    def __init__(self, workdir: Path, sites: Sequence[str], options: Sequence[str] = ()) -> None:
        """``options``: extra mosquitto.conf lines for both brokers."""
        self.workdir = workdir
        self.sites = list(sites)
        self.central = Mosquitto(workdir, options=list(options))
        self.leaf: Mosquitto | None = None
        self.options = list(options)
        self.bridge_lines: list[str] = []

    @property
    def leaf_port(self) -> int:
        assert self.leaf is not None
        return self.leaf.port

    def start(self, timeout_s: float = 15.0) -> Bridged:
        self.central.start()
        self.bridge_lines = bridge_config(self.central.port, self.sites)
        # Broker-wide options go before the first `connection`: after it, mosquitto
        # would read them as the bridge's.
        self.leaf = Mosquitto(self.workdir, options=[*self.options, *self.bridge_lines])
        try:
            self.leaf.start()
            self.wait_connected(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def state_topic(self) -> str:
        """Where the leaf announces the bridge on the central broker (retained 1/0)."""
        return f"$SYS/broker/connection/{option(self.bridge_lines, 'remote_clientid')}/state"

    def wait_connected(self, timeout_s: float) -> None:
        """The leaf says the bridge is up (retained ``1`` on the central broker), and a
        message crosses it in each direction (its subscriptions are in place)."""
        deadline = time.monotonic() + timeout_s
        central = Watcher(self.central.port, [self.state_topic(), "stove_ctl/+/_bridge_probe/#"])
        leaf = Watcher(self.leaf_port, ["stove_ctl/+/_bridge_probe/#"])
        try:
            central.wait(self.state_topic(), lambda m: m.payload == b"1", timeout_s)
            for site in self.sites:
                token = uuid.uuid4().hex
                for sender, receiver, way in ((central, leaf, "in"), (leaf, central, "out")):
                    topic = f"stove_ctl/{site}/_bridge_probe/{way}"
                    while not any(m.payload == token.encode() for m in receiver.on(topic)):
                        if time.monotonic() > deadline:
                            raise AssertionError(
                                f"the bridge did not carry {topic} within {timeout_s} s\n"
                                + self.log()
                            )
                        sender.publish(topic, token)
                        time.sleep(0.05)
        finally:
            central.close()
            leaf.close()

    def log(self) -> str:
        parts = []
        for name, broker in (("central", self.central), ("leaf", self.leaf)):
            if broker is not None and broker.log_path.exists():
                parts.append(f"--- {name} mosquitto log\n{broker.log_path.read_text()[-4000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        if self.leaf is not None:
            self.leaf.stop()
        self.central.stop()
