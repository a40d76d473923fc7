"""The daemon's broker connection, against a real Mosquitto on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from stove_ctl.drivers.broker import BrokerLink, LinkSettings
from tests.conftest import run

pytestmark = pytest.mark.hil


@contextlib.asynccontextmanager
async def _running(link: BrokerLink, settle_s: float = 0.0) -> AsyncIterator[BrokerLink]:
    """The link connected (and, after ``settle_s``, its subscriptions acknowledged),
    stopped on the way out whatever happened."""
    link.start(asyncio.get_running_loop())
    try:
        assert await link.wait_connected(10)
        if settle_s:
            await asyncio.sleep(settle_s)
        yield link
    finally:
        await link.stop()


def _payloads(link: BrokerLink, topic: str, n: int) -> tuple[list[bytes], asyncio.Event]:
    """Subscribe ``link`` to ``topic``: the payloads received, and an event set at ``n``."""
    got: list[bytes] = []
    done = asyncio.Event()

    def out(message) -> None:
        got.append(message.payload)
        if len(got) == n:
            done.set()

    link.subscribe(topic, out)
    return got, done


@contextlib.contextmanager
def _stalled(broker) -> Iterator[None]:
    """The broker stops reading (SIGSTOP) until the block ends: a link's socket fills."""
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        broker.proc.send_signal(signal.SIGCONT)


def test_packets_leave_at_once_tcp_nodelay(broker) -> None:
    """Nagle's algorithm would hold a packet written while the one before is still
    unacknowledged (a Tasmota pulse is two messages back to back) until the broker's
    delayed ACK, up to 40 ms: the link turns it off on every socket it opens."""

    async def body() -> None:
        link = BrokerLink(LinkSettings(host="127.0.0.1", port=broker.port, client_id="nd"))
        async with _running(link):
            sock = link._client.socket()  # the live connection
            assert sock is not None
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0

    run(body())


def test_a_write_failing_inside_a_handler_does_not_hang_the_loop(broker) -> None:
    """paho calls handlers inside its callback lock, and a write that fails closes the
    socket under that same lock: a handler's publish must not be written from inside
    paho's read, or the event loop (every shutoff timer with it) stops for good."""
    outcome: dict[str, object] = {}

    async def body() -> None:
        link = BrokerLink(LinkSettings(host="127.0.0.1", port=broker.port, client_id="dl"))
        handled = asyncio.Event()

        def handler(message: object) -> None:
            sock = link._client.socket()
            assert sock is not None
            sock.shutdown(socket.SHUT_WR)  # the next write fails (EPIPE)
            link.publish("t/reply", "x", qos=0)
            handled.set()

        link.subscribe("t/in", handler)
        async with _running(link):
            link.publish("t/in", "go")  # the broker sends it back to our subscription
            await asyncio.wait_for(handled.wait(), 10)
            await asyncio.sleep(0.05)
            outcome["lost"] = not link.connected
            outcome["back"] = await link.wait_connected(10)

    def in_thread() -> None:
        try:
            run(body())
            outcome["done"] = True
        except Exception as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=in_thread, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the event loop is stuck"
    assert "error" not in outcome, outcome.get("error")
    assert outcome == {"lost": True, "back": True, "done": True}


def test_a_failing_on_connect_hook_spares_the_others_and_the_link(broker, caplog) -> None:
    async def body() -> None:
        link = BrokerLink(LinkSettings(host="127.0.0.1", port=broker.port, client_id="hk"))
        calls: list[str] = []

        def bad() -> None:
            calls.append("bad")
            raise RuntimeError("hook failed")

        link.on_connect(bad)
        link.on_connect(lambda: calls.append("good"))
        echoed = asyncio.Event()
        link.subscribe("t/echo", lambda message: echoed.set())
        async with _running(link):
            for _ in range(200):
                if len(calls) == 2:
                    break
                await asyncio.sleep(0.01)
            assert calls == ["bad", "good"]
            link.publish("t/echo", "x")
            await asyncio.wait_for(echoed.wait(), 5)  # the link still delivers

    run(body())
    assert any("on-connect hook" in r.getMessage() for r in caplog.records)


def test_publish_all_writes_every_message_at_once_in_order(broker) -> None:
    """A Tasmota pulse is two messages (PulseTime, then POWER): both are on the wire
    when ``publish_all`` returns on the loop, in the order given, in one write pass."""

    async def body() -> None:
        link = BrokerLink(LinkSettings(host="127.0.0.1", port=broker.port, client_id="pa"))
        got: list[tuple[str, bytes]] = []
        both = asyncio.Event()

        def handler(message) -> None:
            got.append((message.topic, message.payload))
            if len(got) == 3:
                both.set()

        link.subscribe("t/all/#", handler)
        async with _running(link, settle_s=0.1):  # the subscription is in place
            writes: list[int] = []
            client = link._client
            loop_write = client.loop_write

            def counted() -> object:
                writes.append(1)
                return loop_write()

            client.loop_write = counted  # type: ignore[method-assign]
            link.publish_all([("t/all/PulseTime1", "5"), ("t/all/POWER", "ON"), ("t/all/x", "")])
            assert not client.want_write()  # nothing left for a later turn of the loop
            assert len(writes) == 1
            await asyncio.wait_for(both.wait(), 5)
            assert got == [("t/all/PulseTime1", b"5"), ("t/all/POWER", b"ON"), ("t/all/x", b"")]

    run(body())


def test_messages_reach_exact_and_wildcard_subscriptions(broker) -> None:
    """Exact topics are looked up, not matched one by one; with a wildcard subscription
    present, each message still reaches the subscriptions it matches and no other."""
    seen: list[tuple[str, str]] = []

    async def body() -> None:
        link = BrokerLink(LinkSettings(host="127.0.0.1", port=broker.port, client_id="wc"))
        got = asyncio.Event()

        def handler(name: str):
            def handle(message: Any) -> None:
                seen.append((name, message.topic))
                if message.topic == "t/end":
                    got.set()

            return handle

        link.subscribe("t/a", handler("exact a"))
        link.subscribe("t/b", handler("exact b"))
        async with _running(link):
            link.subscribe("w/+", handler("wildcard"))  # after connecting, as a rule may
            link.subscribe("t/end", handler("end"))
            await asyncio.sleep(0.2)  # the SUBSCRIBEs are acknowledged
            for topic in ("t/a", "w/c", "x/a", "w/c/d", "t/b", "t/end"):
                link.publish(topic, "1")
            await asyncio.wait_for(got.wait(), 10)

    run(body())
    assert seen == [
        ("exact a", "t/a"),
        ("wildcard", "w/c"),
        ("exact b", "t/b"),
        ("end", "t/end"),
    ]


def test_an_exact_subscription_gets_only_its_own_topic(broker) -> None:
    """No wildcard anywhere: one dictionary lookup per message, the same deliveries."""
    seen: list[str] = []

    async def body() -> None:
        link = BrokerLink(LinkSettings(host="127.0.0.1", port=broker.port, client_id="ex"))
        got = asyncio.Event()

        def handle(message: Any) -> None:
            seen.append(message.topic)
            if message.topic == "t/end":
                got.set()

        link.subscribe("t/a", handle)
        link.subscribe("t/end", handle)
        async with _running(link, settle_s=0.2):
            for topic in ("t/b", "t/a", "t/a/b", "t/end"):
                link.publish(topic, "1")
            await asyncio.wait_for(got.wait(), 10)

    run(body())
    assert seen == ["t/a", "t/end"]


def test_what_a_handler_publishes_is_written_in_the_same_loop_step(broker) -> None:
    """What a handler publishes is written right after paho's read returns, before the
    loop's next turn (a shutoff's relay command is published from a handler), and
    everything arrives, in order; QoS 1 messages are reported published when their
    PUBACK comes."""

    async def body() -> None:
        link = BrokerLink(LinkSettings(host="127.0.0.1", port=broker.port, client_id="co"))
        got: list[tuple[str, bytes]] = []
        infos: list[Any] = []
        next_turn: list[bool] = []
        four = asyncio.Event()

        def handler(message) -> None:
            client = link._client
            infos.append(client.publish("t/co/out/alpha", "1", qos=1))
            infos.append(client.publish("t/co/out/beta", "2", qos=1))
            infos.append(client.publish("t/co/out/gamma", "3", qos=0))
            infos.append(client.publish("t/co/out/delta", "4", qos=1))
            # QoS 0 counts as published once written: by the loop's next turn it is.
            asyncio.get_running_loop().call_soon(
                lambda: next_turn.append(infos[2].is_published() and not client.want_write())
            )

        def out(message) -> None:
            got.append((message.topic, message.payload))
            if len(got) == 4:
                four.set()

        link.subscribe("t/co/in", handler)
        link.subscribe("t/co/out/#", out)
        async with _running(link, settle_s=0.1):  # the subscriptions are in place
            link.publish("t/co/in", "go")  # comes back to the handler
            await asyncio.wait_for(four.wait(), 5)
            assert next_turn == [True]
            assert got == [
                ("t/co/out/alpha", b"1"),
                ("t/co/out/beta", b"2"),
                ("t/co/out/gamma", b"3"),
                ("t/co/out/delta", b"4"),
            ]
            for _ in range(100):
                if all(info.is_published() for info in infos):
                    break
                await asyncio.sleep(0.01)
            assert all(info.is_published() for info in infos)

    run(body())


def test_a_publish_written_at_once_asks_the_loop_for_no_writer(broker) -> None:
    """A publish on the loop is written before it returns: nothing is scheduled for a
    later turn of the loop (the writer check would run right behind a relay command)."""

    async def body() -> None:
        link = BrokerLink(LinkSettings(host="127.0.0.1", port=broker.port, client_id="nw"))
        async with _running(link, settle_s=0.1):
            client = link._client
            asked: list[object] = []
            add_writer = link._add_writer
            link._add_writer = lambda *a: (asked.append(a), add_writer(*a))  # type: ignore[method-assign]
            link.publish_all([("t/nw/PulseTime1", "5"), ("t/nw/POWER", "ON")])
            link.publish("t/nw/other", "x")
            assert not client.want_write()
            assert link._writer_soon is None
            await asyncio.sleep(0.05)  # a few turns of the loop
            assert asked == []

    run(body())


def test_what_a_full_socket_cannot_take_is_written_later_by_the_loop(broker) -> None:
    """The broker stops reading and the socket fills: what a publish could not write
    is left to the loop's writer, and arrives once the broker reads again, with
    nothing else published after it to push it out."""

    async def body() -> None:
        link = BrokerLink(LinkSettings(host="127.0.0.1", port=broker.port, client_id="rf"))
        big = "x" * 65536
        got: list[int] = []
        link.subscribe("t/rf/#", lambda message: got.append(len(message.payload)), qos=0)
        async with _running(link, settle_s=0.1):  # the subscription is in place
            client = link._client
            sent = 0
            with _stalled(broker):
                while not client.want_write() and sent < 2000:
                    link.publish(f"t/rf/{sent}", big, qos=0)  # QoS 1 stops at 20 in flight
                    sent += 1
                assert client.want_write()  # the socket is full: queued, not written
                assert 0 < sent < 2000
            for _ in range(200):
                if len(got) == sent:
                    break
                await asyncio.sleep(0.05)
            assert got == [65536] * sent
            assert not client.want_write()

    run(body())
