"""The mqtt driver's state query after a command, against a real Mosquitto and the
simulated firmwares: which messages go on the wire, and when."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import hardware
from hardware.mqtt_devices import ShellyGen2Relay, TasmotaRelay
from stove_ctl.drivers import mqtt as driver
from stove_ctl.drivers.broker import BrokerLink, LinkSettings
from stove_ctl.drivers.mqtt import MqttRelay
from stove_ctl.drivers.mqtt_presets import PRESETS
from tests.conftest import run
from tests.mqtt_watch import Watcher

pytestmark = pytest.mark.hil


class SilentTasmota(TasmotaRelay):
    """Switches on a command but does not report it: only a state query gets an answer."""

    def _switch(self, channel: int, on: bool, auto_off_s: float | None = None) -> None:
        self.board.set(channel, on)


def drive(
    broker: Any,
    preset: str,
    device: str,
    body: Callable[[MqttRelay], Awaitable[None]],
    timeout_s: float = 1.5,
) -> None:
    async def main() -> None:
        link = BrokerLink(LinkSettings(host="127.0.0.1", port=broker.port, client_id="drv"))
        relay = MqttRelay("r", link, PRESETS[preset], device, timeout_s=timeout_s)
        relay.attach()
        link.start(asyncio.get_running_loop())
        try:
            assert await link.wait_connected(10)
            await relay.read(1)  # the state is known, as after the daemon's start-up
            await asyncio.sleep(0.3)  # the start-up queries have reached the watcher too
            await body(relay)
        finally:
            await link.stop()

    run(main())


def sent(watcher: Watcher, topic: str) -> list[tuple[float, bytes]]:
    return [(m.timestamp, m.payload) for m in watcher.on(topic)]


def test_a_command_the_device_reports_is_not_followed_by_a_query(broker) -> None:
    """Tasmota reports every POWER command by itself: the driver confirms on that report
    and sends no state query behind the relay command."""
    board = hardware.SimRelay(channels=1)
    device = TasmotaRelay(board, broker.port, topic="stove").start()
    watcher = Watcher(broker.port, ["cmnd/stove/#"])
    try:

        async def body(relay: MqttRelay) -> None:
            watcher.clear()
            await relay.pulse(1, True, 0.5)  # PulseTime1 + POWER ON, confirmed
            assert board.get(1)
            await asyncio.sleep(driver.QUERY_AFTER_S + 0.3)  # past the query's moment

        drive(broker, "tasmota", "stove", body)
        assert [(m.topic, m.payload) for m in watcher.messages] == [
            ("cmnd/stove/PulseTime1", b"5"),
            ("cmnd/stove/POWER", b"ON"),
        ]
    finally:
        watcher.close()
        device.stop()


def test_a_device_that_does_not_report_is_asked_after_query_after_s(broker) -> None:
    """A firmware that stays silent after a command is still confirmed, by the state
    query, sent once QUERY_AFTER_S has passed without a report (not before)."""
    board = hardware.SimRelay(channels=1)
    device = SilentTasmota(board, broker.port, topic="stove").start()
    watcher = Watcher(broker.port, ["cmnd/stove/#"])
    try:

        async def body(relay: MqttRelay) -> None:
            watcher.clear()
            await relay.set(1, True)  # confirmed only through the query's answer
            assert board.get(1)

        drive(broker, "tasmota", "stove", body)
        commands = [t for t, p in sent(watcher, "cmnd/stove/POWER") if p == b"ON"]
        queries = [t for t, p in sent(watcher, "cmnd/stove/POWER") if p == b""]
        assert len(commands) == 1 and len(queries) == 1
        # One-sided: the query is never sent before its time (the clock is the
        # watcher's own, the same for both messages).
        assert queries[0] - commands[0] >= driver.QUERY_AFTER_S - 0.01
    finally:
        watcher.close()
        device.stop()


def test_a_command_that_changes_nothing_asks_at_once(broker, monkeypatch) -> None:
    """Shelly does not report a Switch.Set that changes nothing: for such a command
    the driver asks at once instead of waiting for a report that will not come."""
    monkeypatch.setattr(driver, "QUERY_AFTER_S", 30.0)  # if it waited, it would be 30 s
    board = hardware.SimRelay(channels=1)
    board.set(1, True)
    device = ShellyGen2Relay(board, broker.port, prefix="shelly").start()
    watcher = Watcher(broker.port, ["shelly/rpc"])
    try:

        async def body(relay: MqttRelay) -> None:
            watcher.clear()
            # Already on: Shelly sends no NotifyStatus. A driver that waited for one
            # would ask only after 30 s; 5 s is a generous bound for the round trip.
            await asyncio.wait_for(relay.set(1, True), 5)

        drive(broker, "shelly_gen2", "shelly", body, timeout_s=60)
        methods = [m["method"] for m in watcher.json("shelly/rpc")]
        assert methods == ["Switch.Set", "Switch.GetStatus"]
    finally:
        watcher.close()
        device.stop()


def test_command_texts_are_formatted_once_but_a_request_id_is_new_every_time(broker) -> None:
    """A cut's topics and payloads are formatted once per channel and hold (they are
    on the shutoff's path), but a template with {req} (Shelly's RPC id) still gets a
    new id on every command, and a different hold gets its own PulseTime."""
    board = hardware.SimRelay(channels=1)
    tasmota = TasmotaRelay(board, broker.port, topic="stove").start()
    watcher = Watcher(broker.port, ["cmnd/stove/#"])
    try:

        async def pulses(relay: MqttRelay) -> None:
            watcher.clear()
            for hold_s in (0.5, 2.0, 0.5):
                await relay.pulse(1, True, hold_s)
                await relay.set(1, False)

        drive(broker, "tasmota", "stove", pulses)
        assert [p for _, p in sent(watcher, "cmnd/stove/PulseTime1")] == [b"5", b"20", b"5"]
    finally:
        watcher.close()
        tasmota.stop()

    shelly_board = hardware.SimRelay(channels=1)
    shelly = ShellyGen2Relay(shelly_board, broker.port, prefix="shelly").start()
    rpc = Watcher(broker.port, ["shelly/rpc"])
    try:

        async def switches(relay: MqttRelay) -> None:
            rpc.clear()
            for on in (True, False, True):
                await relay.set(1, on)

        drive(broker, "shelly_gen2", "shelly", switches)
        sets = [m for m in rpc.json("shelly/rpc") if m["method"] == "Switch.Set"]
        assert [m["params"]["on"] for m in sets] == [True, False, True]
        assert len({m["id"] for m in sets}) == 3
    finally:
        rpc.close()
        shelly.stop()


@pytest.mark.parametrize(
    ("template", "uses"),
    [
        ("{req}", True),
        ('{{"id": {req:>4}}}', True),
        ("{req.real}", True),
        ("cmnd/{device}/POWER{idx}", False),
        ("{{req}}", False),  # an escaped brace: the text 'req', not the field
        ("{request}", False),
        ("", False),
    ],
)
def test_which_templates_use_a_request_id(template: str, uses: bool) -> None:
    assert driver._uses_req(template) is uses
