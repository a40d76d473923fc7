"""One connection to the MQTT broker (paho-mqtt), run on the asyncio loop.

paho's socket is watched by the event loop itself (paho's external-loop API:
``loop_read`` / ``loop_write`` / ``loop_misc``), not by a paho thread: a command
message is handled, and a relay command published, in the same loop step that read
it, with no hand-over between threads (docs/PERFORMANCE.md, Findings 10). Only the
blocking part of a (re)connect (TCP, TLS handshake) runs in a worker thread. This
wrapper reconnects every 1-4 s while the broker is away, re-subscribes and calls the
``on_connect`` hooks after every (re)connect, starts without a broker (the safety path
never waits for one), and falls back from MQTT v5 to v3.1.1 when a broker refuses v5.
Passwords are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger(__name__)
RECONNECT_MAX_S = 4


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    retain: bool
    response_topic: str | None = None
    correlation_data: bytes | None = None


@dataclass(frozen=True)
class LinkSettings:
    host: str
    port: int = 1883
    client_id: str = "stove-ctl"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    protocol: str = "auto"  # auto (v5, falling back to 3.1.1) | 5 | 3.1.1
    keepalive_s: int = 30
    will_topic: str | None = None
    will_payload: str = "offline"


Handler = Callable[[Incoming], None]


class BrokerLink:
    def __init__(self, settings: LinkSettings) -> None:
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscriptions: dict[str, tuple[int, list[Handler]]] = {}
        self._wildcards = False  # any subscription with + or #
        self._on_connect: list[Callable[[], None]] = []
        self._connected = threading.Event()
        self._gone = threading.Event()  # the socket is closed (set by paho's callbacks)
        self._stopping = False
        self._v5 = settings.protocol in ("auto", "5")
        self._client = self._make_client()
        self._runner: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None  # the connection ended: reconnect
        self._fd: int | None = None  # paho's socket, as registered with the loop
        self._writer = False  # the loop watches that socket for writing too
        self._writer_soon: Any = None  # the socket an _add_writer is scheduled for
        self._direct: paho.Client | None = None  # publishing on the loop, written at once
        self._reading = False  # inside paho's loop_read (and its callback lock)
        self._accepted = False  # the broker accepted the connection (since the last try)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _make_client(self, on_loop: bool = True) -> paho.Client:
        s = self.settings
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=paho.MQTTv5 if self._v5 else paho.MQTTv311,
            # No reconnect inside paho's callbacks (a blocking connect on the loop):
            # ``_run`` reconnects.
            reconnect_on_failure=False,
        )
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.ca_file or s.cert_file:
            context = ssl.create_default_context(cafile=s.ca_file)
            if s.cert_file:
                context.load_cert_chain(s.cert_file, s.key_file)
            client.tls_set_context(context)
        if s.will_topic:
            client.will_set(s.will_topic, s.will_payload, qos=1, retain=True)
        client.on_connect = self._connected_cb
        client.on_disconnect = self._disconnected_cb
        client.on_message = self._message_cb
        client.on_socket_open = self._socket_open if on_loop else _no_delay
        if on_loop:
            client.on_socket_close = self._socket_close
            client.on_socket_register_write = self._want_write
            client.on_socket_unregister_write = self._unwant_write
        return client

    def raw_client(self) -> paho.Client:
        """A paho client configured like this link's, for a one-off synchronous check
        with paho's own loop (doctor)."""
        return self._make_client(on_loop=False)

    # -- life cycle --------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in the background; keeps trying while the broker is away."""
        self._loop = loop
        self._wake = asyncio.Event()
        self._runner = loop.create_task(self._run())

    async def wait_connected(self, timeout_s: float) -> bool:
        return await asyncio.to_thread(self._connected.wait, timeout_s)

    async def stop(self, last_words: tuple[str, str] | None = None) -> None:
        """Publish ``last_words`` (topic, payload; retained) if connected, then
        disconnect and wait (up to 2 s each) for the broker to have both."""
        if last_words is not None and self.connected:
            info = self._client.publish(last_words[0], last_words[1], qos=1, retain=True)
            self._write_now(self._client)
            deadline = asyncio.get_running_loop().time() + 2
            while not info.is_published() and asyncio.get_running_loop().time() < deadline:
                if not self.connected:
                    break
                await asyncio.sleep(0.01)
        self._stopping = True
        if self._client.socket() is not None:
            self._client.disconnect()
            self._write_now(self._client)
            await asyncio.to_thread(self._gone.wait, 2)
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        self._connected.clear()

    async def _run(self) -> None:
        """Connect, and reconnect 1-4 s after every loss, until stopped."""
        assert self._wake is not None
        delay = 1.0
        while not self._stopping:
            client = self._client
            self._gone.clear()
            try:
                s = self.settings
                await asyncio.to_thread(client.connect, s.host, s.port, s.keepalive_s)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                self._gone.set()
                log.debug("cannot reach broker %s:%d: %s", s.host, s.port, exc)
            except Exception:  # keep reconnecting whatever went wrong this time
                self._gone.set()
                log.exception("connecting to broker %s:%d failed", s.host, s.port)
            else:
                misc = asyncio.ensure_future(self._misc(client))
                try:
                    await self._wake.wait()
                finally:
                    misc.cancel()
                self._wake.clear()
                if self._accepted:  # back-off only while the broker refuses or is away
                    self._accepted = False
                    delay = 1.0
                if client is not self._client:
                    continue  # a new client (v3.1.1 fall-back): connect it at once
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _misc(self, client: paho.Client) -> None:
        """Keepalive: pings, and a connection whose broker stopped answering is
        closed (paho re-sends unacknowledged QoS 1 messages after a reconnect)."""
        while True:
            await asyncio.sleep(1)
            if client.loop_misc() != paho.MQTT_ERR_SUCCESS:
                self._lost()
                return

    def _lost(self) -> None:
        self._connected.clear()
        if self._wake is not None:
            self._wake.set()

    # -- paho's socket on the event loop ---------------------------------------------

    def _in_loop(self) -> bool:
        """Is this the loop's thread? (paho calls us from there, except during a
        connect, which runs in a worker thread.)"""
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn`` on the loop: at once if this is the loop's thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if self._in_loop():
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def _socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        _no_delay(client, userdata, sock)
        self._on_loop(self._watch, client, sock)

    def _watch(self, client: paho.Client, sock: Any) -> None:
        current = client.socket()
        if client is not self._client or current is None or current is not sock:
            return  # closed again before the loop got to it
        assert self._loop is not None
        fd = current.fileno()
        self._fd = fd
        self._loop.add_reader(fd, self._readable, client, sock)

    def _readable(self, client: paho.Client, sock: Any) -> None:
        self._reading = True
        try:
            client.loop_read()
            # TLS: records already decrypted wait in the SSL object, not in the
            # socket, and would not wake the loop again.
            pending = getattr(sock, "pending", None)
            while pending is not None and client.socket() is sock and pending() > 0:
                client.loop_read()
        finally:
            self._reading = False
        # What the handlers published, in this same loop step (not inside paho's
        # callback lock: a failed write closes the socket, which takes that lock).
        self._write_now(client)

    def _write_now(self, client: paho.Client) -> None:
        if not self._reading and client.socket() is not None and client.want_write():
            client.loop_write()

    def _socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._on_loop(self._unwatch)
        self._gone.set()

    def _unwatch(self) -> None:
        # By number: paho closes the socket right after this callback.
        fd, self._fd = self._fd, None
        if fd is not None and self._loop is not None:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
            self._writer = False
        if self._client.socket() is None:  # not an old socket closed by a new connect
            self._lost()

    def _want_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # Not at once: a publish on the loop is usually written whole straight after
        # (``_write_now``), and the writer would be added and removed for nothing.
        # One check per loop turn, however many messages were queued in it.
        loop = self._loop
        if self._direct is client and self._in_loop():
            return  # written straight after; _flush asks again if the socket is full
        if loop is None or loop.is_closed() or self._writer_soon is sock:
            return
        self._writer_soon = sock
        if self._in_loop():
            loop.call_soon(self._add_writer, client, sock)
        else:
            loop.call_soon_threadsafe(self._add_writer, client, sock)

    def _add_writer(self, client: paho.Client, sock: Any) -> None:
        self._writer_soon = None  # before the check: what is queued from now on asks again
        if client.socket() is sock and self._fd is not None and client.want_write():
            assert self._loop is not None
            self._loop.add_writer(self._fd, client.loop_write)
            self._writer = True

    def _unwant_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._on_loop(self._remove_writer)

    def _remove_writer(self) -> None:
        # Only if added: paho asks after every write (a relay command's too), and
        # asyncio would look the socket up in its selector each time.
        if self._writer and self._fd is not None and self._loop is not None:
            self._loop.remove_writer(self._fd)
        self._writer = False

    # -- use ---------------------------------------------------------------------

    def subscribe(self, topic: str, handler: Handler, qos: int = 1) -> None:
        """Call ``handler`` (in the asyncio loop) for each message on ``topic``.
        Several handlers may share a topic (e.g. one state topic for every channel)."""
        if topic in self._subscriptions:
            self._subscriptions[topic][1].append(handler)
            return
        self._subscriptions[topic] = (qos, [handler])
        self._wildcards = self._wildcards or "+" in topic or "#" in topic
        if self.connected:
            self._subscribe(self._client, topic, qos)

    def _subscribe(self, client: paho.Client, topic: str, qos: int) -> None:
        if self._v5:
            # Keep the publisher's retain flag on live messages too, so a retained
            # command is known as one (DESIGN invariant 7). v3.1.1 only marks retained
            # messages delivered at subscription time.
            options = SubscribeOptions(qos=qos, retainAsPublished=True)
            client.subscribe(topic, options=options)
        else:
            client.subscribe(topic, qos)

    def on_connect(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` in the asyncio loop after every (re)connect."""
        self._on_connect.append(hook)

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        qos: int = 1,
        retain: bool = False,
        correlation_data: bytes | None = None,
    ) -> None:
        """Queue a message. Dropped (not raised) while disconnected, except qos>0,
        which paho keeps and sends after reconnecting. On the loop's thread the
        message is written to the socket at once (or, from a handler of this link, as
        soon as paho's read returns), not on the loop's next turn."""
        properties = None
        if correlation_data is not None and self._v5:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.CorrelationData = correlation_data
        client = self._client
        direct = self._writes_now()
        self._direct = client if direct else None
        try:
            client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        finally:
            self._flush(client, direct)

    def publish_all(self, messages: Iterable[tuple[str, str]], qos: int = 1) -> None:
        """Queue several messages, in order, and write them together (a Tasmota pulse
        is two): one ``loop_write`` for all of them, not one per message."""
        client = self._client
        direct = self._writes_now()
        self._direct = client if direct else None
        try:
            for topic, payload in messages:
                client.publish(topic, payload, qos=qos)
        finally:
            self._flush(client, direct)

    def _writes_now(self) -> bool:
        """Is what is published now written before the call returns? (On the loop's
        thread, connected, and not inside this link's own read: then it is written as
        soon as that read returns, ``_readable``.)"""
        return (
            not self._reading
            and self._connected.is_set()
            and self._loop is not None
            and self._in_loop()
        )

    def _flush(self, client: paho.Client, direct: bool) -> None:
        self._direct = None
        if direct:
            self._write_now(client)
            if client.want_write():  # the socket took only part: the loop writes the rest
                self._want_write(client, None, client.socket())

    # -- paho callbacks (on the loop) ------------------------------------------------

    def _connected_cb(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("broker %s refused the connection: %s", self.settings.host, reason)
            if self._v5 and self.settings.protocol == "auto" and reason.value in (1, 132):
                log.info("broker does not speak MQTT v5; falling back to v3.1.1")
                self._v5 = False
                self._client = self._make_client()
                client.disconnect()
                self._lost()
            return
        if self._stopping:  # a connect that was under way when stop() came
            client.disconnect()
            return
        self._accepted = True
        log.info(
            "connected to broker %s:%d (MQTT %s)",
            self.settings.host,
            self.settings.port,
            "v5" if self._v5 else "v3.1.1",
        )
        self._connected.set()
        for topic, (qos, _) in self._subscriptions.items():
            self._subscribe(client, topic, qos)
        # After paho's own work on the CONNACK (it re-sends what was in flight when the
        # link dropped: an older retained state must not land after the current one),
        # and outside its callback lock; one failing hook does not stop the others.
        if self._loop is not None:
            for hook in self._on_connect:
                self._loop.call_soon_threadsafe(self._call_hook, hook)

    def _call_hook(self, hook: Callable[[], None]) -> None:
        try:
            hook()
        except Exception:
            log.exception("on-connect hook %r failed", hook)

    def _disconnected_cb(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._connected.is_set() and not self._stopping:
            log.warning("lost the broker (%s); reconnecting", reason)
        self._connected.clear()
        if client is self._client:
            self._on_loop(self._lost)

    def _message_cb(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        props = getattr(message, "properties", None)
        incoming = Incoming(
            topic=message.topic,
            payload=bytes(message.payload),
            retain=bool(message.retain),
            response_topic=getattr(props, "ResponseTopic", None) if props else None,
            correlation_data=getattr(props, "CorrelationData", None) if props else None,
        )
        for handlers in self._matching(message.topic):
            for handler in list(handlers):
                try:
                    handler(incoming)
                except Exception:
                    log.exception("handler for %s failed", message.topic)

    def _matching(self, topic: str) -> list[list[Handler]]:
        """The handler lists of every subscription matching ``topic``, in the order
        subscribed. Without wildcards that is one dictionary lookup (paho's
        ``topic_matches_sub`` builds a matcher per call, per subscription)."""
        if not self._wildcards:
            found = self._subscriptions.get(topic)
            return [found[1]] if found is not None else []
        return [
            handlers
            for pattern, (_, handlers) in list(self._subscriptions.items())
            if paho.topic_matches_sub(pattern, topic)
        ]


def _no_delay(client: paho.Client, userdata: Any, sock: Any) -> None:
    """Every packet leaves at once (TCP_NODELAY). With Nagle on, a packet written while
    the one before is unacknowledged waits for that ACK, which the broker may delay by
    up to 40 ms: a Tasmota pulse is two messages back to back, and a relay command may
    follow an event just published."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
