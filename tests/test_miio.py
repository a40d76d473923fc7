"""The miIO simulator speaks the real protocol; our driver handles it and its faults.

Real UDP on loopback, real time (bounded by short timeouts): marked ``hil``.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from miio import Device, DeviceException, MiotDevice
from miio.exceptions import DeviceError

from hardware.miio_sim import Prop
from stove_ctl.drivers.miio import MiioChannelMap, MiioProtocol, MiioRelay, MiotProperty
from stove_ctl.errors import (
    RelayAuthError,
    RelayBadReply,
    RelayRejected,
    RelayUnreachable,
)
from tests.conftest import run
from tests.miio_kitchen import TOKEN, MiioKitchen, miio_kitchen, next_host

pytestmark = pytest.mark.hil


@pytest.fixture
def kitchen():
    k = miio_kitchen()
    yield k
    k.sim.stop()


def relay_for(
    k: MiioKitchen, token: str = TOKEN, timeout_s: float = 0.6, legacy=False
) -> MiioRelay:
    channels = {
        1: MiioChannelMap(MiotProperty(2, 1), MiotProperty(2, 3), off_delay_disarm=-1),
        2: MiioChannelMap(MiotProperty(3, 1), None),
    }
    protocol = MiioProtocol(k.host, bytes.fromhex(token), timeout_s=timeout_s)
    return MiioRelay("r", protocol, channels, legacy=legacy)


# -- python-miio's own client, unchanged ---------------------------------------


def test_python_miio_device_and_miot_device_work_unchanged(kitchen: MiioKitchen) -> None:
    device = Device(kitchen.host, TOKEN, timeout=2)
    info = device.info()
    assert info.model == "yeelink.switch.sw1"
    assert info.network_interface["localIp"] == kitchen.host

    miot = MiotDevice(kitchen.host, TOKEN, timeout=2, mapping={})
    assert miot.set_property_by(2, 1, True) == [{"did": "set-2-1", "siid": 2, "piid": 1, "code": 0}]
    assert kitchen.board.get(1) is True
    time.sleep(0.1)
    assert not kitchen.burner("left").flame  # the relay cut the thermocouple circuit
    assert miot.get_property_by(2, 1)[0]["value"] is True
    assert miot.get_property_by(3, 1)[0]["value"] is False
    assert miot.get_property_by(9, 1)[0]["code"] == -4003
    bad_value = miot.send("set_properties", [{"did": "x", "siid": 2, "piid": 1, "value": "on"}])
    assert bad_value[0]["code"] == -4005


def test_python_miio_legacy_get_prop_and_set_power() -> None:
    k = miio_kitchen(legacy=True)
    try:
        device = Device(k.host, TOKEN, timeout=2)
        assert device.send("get_prop", ["power"]) == ["off"]
        assert device.send("set_power", ["on"]) == ["ok"]
        assert device.send("get_prop", ["power"]) == ["on"]
        with pytest.raises(DeviceError):
            device.send("set_power", ["maybe"])
    finally:
        k.sim.stop()


def test_python_miio_sees_wrong_token_as_no_reply_and_error_codes_as_errors(
    kitchen: MiioKitchen,
) -> None:
    wrong = Device(kitchen.host, "ff" * 16, timeout=0.3)
    with pytest.raises(DeviceException, match="No response"):
        wrong.send("miIO.info", retry_count=0)
    kitchen.sim.error_next = 1
    kitchen.sim.error_code = -5001
    with pytest.raises(DeviceError):
        Device(kitchen.host, TOKEN, timeout=2).send("miIO.info", retry_count=0)


def test_off_delay_switches_back_by_itself_and_zero_cancels(kitchen: MiioKitchen) -> None:
    miot = MiotDevice(kitchen.host, TOKEN, timeout=2, mapping={})
    miot.send(
        "set_properties",
        [
            {"did": "d", "siid": 2, "piid": 3, "value": 1},
            {"did": "o", "siid": 2, "piid": 1, "value": True},
        ],
    )
    assert kitchen.board.get(1) is True
    deadline = time.monotonic() + 3
    while kitchen.board.get(1) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert kitchen.board.get(1) is False
    miot.send(
        "set_properties",
        [
            {"did": "d", "siid": 2, "piid": 3, "value": 1},
            {"did": "o", "siid": 2, "piid": 1, "value": True},
        ],
    )
    miot.set_property_by(2, 3, -1)
    time.sleep(1.3)
    assert kitchen.board.get(1) is True


def test_power_cycle_returns_to_power_on_state(kitchen: MiioKitchen) -> None:
    miot = MiotDevice(kitchen.host, TOKEN, timeout=2, mapping={})
    miot.set_property_by(3, 1, True)
    kitchen.sim.power_cycle()
    assert miot.get_property_by(3, 1)[0]["value"] is False


# -- our driver ---------------------------------------------------------------------


def test_driver_sets_reads_and_pulses(kitchen: MiioKitchen) -> None:
    async def body() -> None:
        relay = relay_for(kitchen)
        try:
            await relay.set(2, True)
            assert await relay.read(2) is True and kitchen.board.get(2) is True
            await relay.set(2, False)
            assert await relay.read(2) is False
            assert relay.can_pulse(1) and not relay.can_pulse(2)
            await relay.pulse(1, True, 0.4)  # rounded up to the device's 1 s
            assert kitchen.board.get(1) is True
            await asyncio.sleep(1.3)
            assert await relay.read(1) is False
            info = await relay.info()
            assert info["model"] == "yeelink.switch.sw1"
        finally:
            await relay.close()

    run(body())


def test_driver_set_disarms_a_running_countdown(kitchen: MiioKitchen) -> None:
    async def body() -> None:
        relay = relay_for(kitchen)
        try:
            await relay.pulse(1, True, 1)
            await relay.set(1, True)  # a lock arrives mid-pulse: it must hold
            await asyncio.sleep(1.4)
            assert kitchen.board.get(1) is True
        finally:
            await relay.close()

    run(body())


def test_driver_legacy_mode() -> None:
    k = miio_kitchen(legacy=True)

    async def body() -> None:
        relay = relay_for(k, legacy=True)
        try:
            await relay.set(1, True)
            assert await relay.read(1) is True
            assert k.board.get(1) is True
        finally:
            await relay.close()

    try:
        run(body())
    finally:
        k.sim.stop()


def test_random_start_ids_differ() -> None:
    ids = {MiioProtocol("127.0.0.1", bytes(16))._id for _ in range(20)}
    assert len(ids) > 10


@pytest.mark.parametrize(
    ("fault", "error", "text"),
    [
        ({"offline": True}, RelayUnreachable, "no answer from"),
        ({"error_next": 5, "error_code": -5001}, RelayRejected, "code -5001"),
        ({"garbage_next": 5}, RelayBadReply, "not JSON"),
        ({"token": "ff" * 16}, RelayAuthError, "token is most likely wrong"),
    ],
)
def test_driver_faults_are_typed(kitchen: MiioKitchen, fault, error, text) -> None:
    for name, value in fault.items():
        setattr(kitchen.sim, name, bytes.fromhex(value) if name == "token" else value)

    async def body() -> None:
        relay = relay_for(kitchen, timeout_s=0.6)
        try:
            with pytest.raises(error, match=text):
                await relay.read(1)
        finally:
            await relay.close()

    run(body())


def test_driver_rejects_per_item_codes(kitchen: MiioKitchen) -> None:
    async def body() -> None:
        channels = {1: MiioChannelMap(MiotProperty(9, 9), None)}
        relay = MiioRelay("r", MiioProtocol(kitchen.host, bytes.fromhex(TOKEN)), channels)
        try:
            with pytest.raises(RelayRejected, match="code -4003") as err:
                await relay.set(1, True)
            assert err.value.code == -4003
        finally:
            await relay.close()

    run(body())


def test_driver_ignores_wrong_ids_and_survives_loss(kitchen: MiioKitchen) -> None:
    kitchen.sim.wrong_id_next = 1
    kitchen.sim.drop_next = 1

    async def body() -> None:
        relay = relay_for(kitchen, timeout_s=1.5)
        try:
            assert await relay.read(1) is False
        finally:
            await relay.close()

    run(body())


def test_driver_nothing_listening_is_unreachable() -> None:
    async def body() -> None:
        relay = MiioRelay(
            "r",
            MiioProtocol(next_host(), bytes.fromhex(TOKEN), timeout_s=0.5),
            {1: MiioChannelMap(MiotProperty(2, 1))},
        )
        try:
            with pytest.raises(RelayUnreachable):
                await relay.read(1)
        finally:
            await relay.close()

    run(body())


def test_sim_off_delay_prop_validation(kitchen: MiioKitchen) -> None:
    miot = MiotDevice(kitchen.host, TOKEN, timeout=2, mapping={})
    assert miot.set_property_by(2, 3, -2)[0]["code"] == -4005
    assert miot.set_property_by(2, 3, 50000)[0]["code"] == -4005
    assert kitchen.sim.off_delay_s[1] == -1
    assert Prop(2, 3) in kitchen.sim.off_delay_props.values()
    with pytest.raises(DeviceError):
        miot.send("get_prop", ["power"])  # a MIoT device refuses legacy calls


def test_driver_retries_a_reply_that_comes_too_late(kitchen: MiioKitchen) -> None:
    async def body() -> None:
        relay = relay_for(kitchen, timeout_s=0.6)
        try:
            assert await relay.read(2) is False  # handshake done
            kitchen.sim.delay_next = 1
            kitchen.sim.delay_s = 0.5  # longer than one try (0.6 s / 3)
            assert await relay.read(2) is False
        finally:
            await relay.close()

    run(body())
    ids = [r["id"] for r in kitchen.sim.requests]
    assert len(ids) == 3 and len(set(ids)) == 3  # the late one was retried with a new id


def test_subnet_check_explains_other_subnets() -> None:
    from ipaddress import IPv4Address, IPv4Network

    from stove_ctl.doctor import subnet_problem

    nets = [IPv4Network("127.0.0.0/8"), IPv4Network("192.168.1.0/24")]
    assert subnet_problem(IPv4Address("192.168.1.50"), nets) is None
    assert subnet_problem(IPv4Address("127.0.0.9"), nets) is None
    problem = subnet_problem(IPv4Address("192.168.2.50"), nets)
    assert problem is not None
    assert "192.168.2.50 is not on any subnet of this machine (192.168.1.0/24)" in problem
