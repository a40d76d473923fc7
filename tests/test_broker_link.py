"""The daemon's broker connection, against a real Mosquitto on loopback."""

from __future__ import annotations

import asyncio
import socket

import pytest

from stove_ctl.broker import BrokerLink, LinkSettings
from tests.conftest import run

pytestmark = pytest.mark.hil


def test_packets_leave_at_once_tcp_nodelay(broker) -> None:
    """Nagle's algorithm would hold a packet written while the one before is still
    unacknowledged (a Tasmota pulse is two messages back to back) until the broker's
    delayed ACK, up to 40 ms: the link turns it off on every socket it opens."""

    async def body() -> None:
        link = BrokerLink(LinkSettings(host="127.0.0.1", port=broker.port, client_id="nd"))
        link.start(asyncio.get_running_loop())
        try:
            assert await link.wait_connected(10)
            sock = link.raw_client().socket()
            assert sock is not None
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            await asyncio.to_thread(link.stop)

    run(body())
