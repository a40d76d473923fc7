"""One connection to the MQTT broker (paho-mqtt), shaped for asyncio.

paho runs its network loop in a thread and reconnects by itself with backoff; this
wrapper hands every message to the asyncio loop, re-subscribes and calls the
``on_connect`` hooks after every (re)connect, starts without a broker (the safety
path never waits for one), and falls back from MQTT v5 to v3.1.1 when a broker refuses
v5. Passwords are never logged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
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
        self._on_connect: list[Callable[[], None]] = []
        self._connected = threading.Event()
        self._stopping = False
        self._inbox: collections.deque[tuple[Handler, Incoming]] = collections.deque()
        self._inbox_lock = threading.Lock()
        self._inbox_due = False
        self._v5 = settings.protocol in ("auto", "5")
        self._client = self._make_client()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _make_client(self) -> paho.Client:
        s = self.settings
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=paho.MQTTv5 if self._v5 else paho.MQTTv311,
        )
        # A pending cut may be waiting on this link (MQTT relays): never more than a few
        # seconds between attempts, however long the broker was gone.
        client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
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
        client.on_socket_open = _no_delay
        return client

    def raw_client(self) -> paho.Client:
        """The configured paho client, for a one-off synchronous check (doctor)."""
        return self._client

    # -- life cycle --------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in the background; keeps trying while the broker is away."""
        self._loop = loop
        self._client.connect_async(
            self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s
        )
        self._client.loop_start()

    async def wait_connected(self, timeout_s: float) -> bool:
        return await asyncio.to_thread(self._connected.wait, timeout_s)

    def stop(self, last_words: tuple[str, str] | None = None) -> None:
        """Publish ``last_words`` (topic, payload; retained) if connected, then go."""
        if last_words is not None and self.connected:
            info = self._client.publish(last_words[0], last_words[1], qos=1, retain=True)
            with contextlib.suppress(ValueError, RuntimeError):
                info.wait_for_publish(timeout=2)
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    # -- use ---------------------------------------------------------------------

    def subscribe(self, topic: str, handler: Handler, qos: int = 1) -> None:
        """Call ``handler`` (in the asyncio loop) for each message on ``topic``.
        Several handlers may share a topic (e.g. one state topic for every channel)."""
        if topic in self._subscriptions:
            self._subscriptions[topic][1].append(handler)
            return
        self._subscriptions[topic] = (qos, [handler])
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
        which paho keeps and sends after reconnecting."""
        properties = None
        if correlation_data is not None and self._v5:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.CorrelationData = correlation_data
        self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    # -- paho callbacks (network thread) -------------------------------------------

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
                client.disconnect()
                self._client = self._make_client()
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(self._restart)
            return
        log.info(
            "connected to broker %s:%d (MQTT %s)",
            self.settings.host,
            self.settings.port,
            "v5" if self._v5 else "v3.1.1",
        )
        self._connected.set()
        for topic, (qos, _) in self._subscriptions.items():
            self._subscribe(client, topic, qos)
        if self._loop is not None:
            for hook in self._on_connect:
                self._loop.call_soon_threadsafe(hook)

    def _restart(self) -> None:
        if self._loop is not None:
            self.start(self._loop)

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

    def _message_cb(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        props = getattr(message, "properties", None)
        incoming = Incoming(
            topic=message.topic,
            payload=bytes(message.payload),
            retain=bool(message.retain),
            response_topic=getattr(props, "ResponseTopic", None) if props else None,
            correlation_data=getattr(props, "CorrelationData", None) if props else None,
        )
        if self._loop is None:
            return
        wanted = [
            handler
            for pattern, (_, handlers) in list(self._subscriptions.items())
            if paho.topic_matches_sub(pattern, message.topic)
            for handler in handlers
        ]
        # One wake-up of the loop per burst, not per message: under a flood the
        # network thread then keeps up with the broker (which drops what a slow
        # client leaves queued), and the loop takes the whole burst in one go.
        with self._inbox_lock:
            self._inbox.extend((handler, incoming) for handler in wanted)
            if self._inbox_due or not self._inbox:
                return
            self._inbox_due = True
        self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._inbox_lock:
            batch = list(self._inbox)
            self._inbox.clear()
            self._inbox_due = False
        for handler, incoming in batch:
            handler(incoming)


def _no_delay(client: paho.Client, userdata: Any, sock: Any) -> None:
    """Every packet leaves at once (TCP_NODELAY). With Nagle on, a packet written while
    the one before is unacknowledged waits for that ACK, which the broker may delay by
    up to 40 ms: a Tasmota pulse is two messages back to back, and a relay command may
    follow an event just published."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
