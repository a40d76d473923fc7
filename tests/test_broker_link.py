"""The daemon's broker connection, against a real Mosquitto on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.client import DISCONNECT, PUBACK, PUBLISH
from paho.mqtt.enums import CallbackAPIVersion

from stove_ctl.broker import MAX_JOINED, BrokerLink, LinkSettings, _coalesce
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


def _refuse_first_send(client: paho.Client) -> list[bytes]:
    """The socket is full for the first send (nothing written, BlockingIOError), then
    takes everything. Returns the bytes of every send tried."""
    attempts: list[bytes] = []
    send = client._sock_send

    def full_once(data: bytes) -> int:
        attempts.append(bytes(data))
        if len(attempts) == 1:
            raise BlockingIOError
        return int(send(data))

    client._sock_send = full_once  # type: ignore[method-assign]
    return attempts


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
    when ``publish_all`` returns on the loop, in the order given."""

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
            sends = _count_sends(client)
            link.publish_all([("t/all/PulseTime1", "5"), ("t/all/POWER", "ON"), ("t/all/x", "")])
            assert not client.want_write()  # nothing left for a later turn of the loop
            assert len(writes) == 1
            # One send for all three: the broker is not woken before POWER is written.
            assert len(sends) == 1
            assert sends[0].count(b"t/all/") == 3
            await asyncio.wait_for(both.wait(), 5)
            assert got == [("t/all/PulseTime1", b"5"), ("t/all/POWER", b"ON"), ("t/all/x", b"")]

    run(body())


def test_no_garbage_collection_between_a_message_and_what_its_handler_writes(broker) -> None:
    """Automatic collection is off while a message's handlers run (a shutoff's relay
    command is written from inside them: another link's socket, or miIO's UDP), and
    back on after each message, also when a handler raises."""

    async def body() -> None:
        link = BrokerLink(LinkSettings(host="127.0.0.1", port=broker.port, client_id="gc"))
        seen: list[bool] = []
        done = asyncio.Event()

        def handler(message) -> None:
            seen.append(gc.isenabled())
            done.set()
            if message.payload == b"raise":
                raise RuntimeError("handler failed")

        link.subscribe("t/gc", handler)
        async with _running(link, settle_s=0.1):
            for payload in ("ok", "raise"):
                done.clear()
                link.publish("t/gc", payload)
                await asyncio.wait_for(done.wait(), 5)
                await asyncio.sleep(0.01)
                assert gc.isenabled()
            assert seen == [False, False]
            assert link.connected

    assert gc.isenabled()
    run(body())
    assert gc.isenabled()


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


def _count_sends(client: Any) -> list[bytes]:
    """Record what each of paho's socket sends carries (paho's own client, spied on)."""
    sends: list[bytes] = []
    send = client._sock_send

    def spied(data: bytes) -> int:
        sends.append(bytes(data))
        return int(send(data))

    client._sock_send = spied
    return sends


def test_a_handlers_messages_leave_in_one_send_up_to_a_qos0_one(broker) -> None:
    """What a handler publishes is written after paho's read, with the PUBACK for the
    message handled: each run of packets leaves in one send, but a QoS 0 message is
    written on its own (paho reports it published once written), and everything
    arrives, in order; QoS 1 messages are reported published when their PUBACK comes."""

    async def body() -> None:
        link = BrokerLink(LinkSettings(host="127.0.0.1", port=broker.port, client_id="co"))
        got: list[tuple[str, bytes]] = []
        infos: list[Any] = []
        published_on_write: list[bool] = []
        four = asyncio.Event()

        def handler(message) -> None:
            client = link._client
            infos.append(client.publish("t/co/out/alpha", "1", qos=1))
            infos.append(client.publish("t/co/out/beta", "2", qos=1))
            infos.append(client.publish("t/co/out/gamma", "3", qos=0))
            infos.append(client.publish("t/co/out/delta", "4", qos=1))

        def out(message) -> None:
            got.append((message.topic, message.payload))
            if len(got) == 4:
                four.set()

        link.subscribe("t/co/in", handler)
        link.subscribe("t/co/out/#", out)
        async with _running(link, settle_s=0.1):  # the subscriptions are in place
            client = link._client
            sends = _count_sends(client)
            on_write = client._packet_write

            def watched() -> Any:
                rc = on_write()
                published_on_write.append(bool(infos) and infos[2].is_published())
                return rc

            client._packet_write = watched  # type: ignore[method-assign]
            link.publish("t/co/in", "go")  # comes back to the handler
            await asyncio.wait_for(four.wait(), 5)
            assert got == [
                ("t/co/out/alpha", b"1"),
                ("t/co/out/beta", b"2"),
                ("t/co/out/gamma", b"3"),
                ("t/co/out/delta", b"4"),
            ]
            # The handler's write: a+b in one send, c alone, then d and the PUBACK.
            handler_sends = [d for d in sends if b"t/co/out/" in d or d[:1] == b"\x40"]
            names = (b"alpha", b"beta", b"gamma", b"delta")
            carried = [[t for t in names if t in d] for d in handler_sends]
            assert [c for c in carried if c] == [[b"alpha", b"beta"], [b"gamma"], [b"delta"]]
            d_send = next(d for d in handler_sends if b"delta" in d)
            assert d_send[-4:-2] == b"\x40\x02"  # the PUBACK rides with d
            assert True in published_on_write  # c reported published when written
            for _ in range(100):
                if all(info.is_published() for info in infos):
                    break
                await asyncio.sleep(0.01)
            assert all(info.is_published() for info in infos)

    run(body())


def _packet(command: int, data: bytes, qos: int = 1, pos: int = 0) -> dict[str, Any]:
    return {
        "command": command,
        "mid": 1,
        "qos": qos,
        "pos": pos,
        "to_process": len(data) - pos,
        "packet": data,
        "info": None,
    }


def test_coalesce_joins_runs_and_leaves_what_paho_acts_on_alone() -> None:
    """paho's own queue, filled by hand (no socket): a packet partly written, a QoS 0
    PUBLISH and a DISCONNECT stay as they are; the runs between them are joined; the
    bytes still to send, in order, do not change."""
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    part = _packet(PUBLISH | 2, b"\x32\x04AAAA", pos=2)
    queued = [
        part,
        _packet(PUBACK, b"\x40\x02\x00\x01"),
        _packet(PUBLISH | 2, b"\x32\x02BB"),
        _packet(PUBLISH, b"\x30\x02CC", qos=0),
        _packet(PUBACK, b"\x40\x02\x00\x02"),
        _packet(DISCONNECT, b"\xe0\x00", qos=0),
        _packet(PUBACK, b"\x40\x02\x00\x03"),
    ]
    before = b"".join(p["packet"][p["pos"] :] for p in queued)
    client._out_packet.extend(queued)
    _coalesce(client)
    out = list(client._out_packet)
    assert len(out) == 6
    assert out[0] is part and out[2] is queued[3] and out[4] is queued[5]
    assert out[1]["packet"] == b"\x40\x02\x00\x01\x32\x02BB"
    assert out[3] is queued[4] and out[5] is queued[6]  # a run of one is left as it is
    assert b"".join(p["packet"][p["pos"] :] for p in out) == before


def test_coalesce_joins_no_more_than_max_joined_and_not_behind_a_stuck_head() -> None:
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    big = [_packet(PUBACK, bytes(MAX_JOINED // 2)) for _ in range(5)]
    client._out_packet.extend(big)
    _coalesce(client)
    sizes = [len(p["packet"]) for p in client._out_packet]
    assert sizes == [MAX_JOINED, MAX_JOINED, MAX_JOINED // 2]
    # The head the last write left behind is retried as it was, nothing joined to it.
    client._out_packet.clear()
    small = [_packet(PUBACK, b"\x40\x02\x00\x01") for _ in range(3)]
    client._out_packet.extend(small)
    _coalesce(client, stuck=small[0])
    assert list(client._out_packet) == small


def test_a_write_the_socket_refused_is_retried_with_the_same_bytes(broker) -> None:
    """Over TLS a write that could not go ("want write") must be retried with the same
    buffer: what a full socket left behind is not joined with what is queued after it,
    and everything still arrives, in order."""

    async def body() -> None:
        link = BrokerLink(LinkSettings(host="127.0.0.1", port=broker.port, client_id="eg"))
        got, four = _payloads(link, "t/eg/#", 4)
        async with _running(link, settle_s=0.1):
            client = link._client
            attempts = _refuse_first_send(client)
            link.publish_all([("t/eg/1", "a"), ("t/eg/2", "b")])
            link.publish_all([("t/eg/3", "c"), ("t/eg/4", "d")])
            assert attempts[0].count(b"t/eg/") == 2  # the pulse was joined...
            assert attempts[1] == attempts[0]  # ...and retried as it was
            assert all(b"t/eg/1" not in a for a in attempts[2:])
            await asyncio.wait_for(four.wait(), 5)
            assert got == [b"a", b"b", b"c", b"d"]

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


def test_a_publish_the_socket_refuses_whole_is_written_later_by_the_loop(broker) -> None:
    """When the socket takes nothing (full), the publish is left to the loop's writer,
    and arrives with nothing else published after it to push it out."""

    async def body() -> None:
        link = BrokerLink(LinkSettings(host="127.0.0.1", port=broker.port, client_id="rf"))
        got, both = _payloads(link, "t/rf/#", 2)
        async with _running(link, settle_s=0.1):
            client = link._client
            attempts = _refuse_first_send(client)
            link.publish_all([("t/rf/PulseTime1", "5"), ("t/rf/POWER", "ON")])
            assert len(attempts) == 1  # refused, and nothing else sent
            assert client.want_write()  # still queued when publish_all returns
            await asyncio.wait_for(both.wait(), 5)
            assert got == [b"5", b"ON"]
            assert not client.want_write()

    run(body())
