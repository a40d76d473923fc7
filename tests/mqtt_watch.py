"""A plain paho client for tests: records every message, publishes, waits."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class Watcher:
    def __init__(
        self, port: int, topics: list[str] | None = None, v5: bool = True, **auth: Any
    ) -> None:
        self.messages: list[paho.MQTTMessage] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        )
        if "username" in auth:
            self.client.username_pw_set(auth["username"], auth.get("password"))
        if "tls_context" in auth:
            self.client.tls_set_context(auth["tls_context"])
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: self._ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("test client could not connect")
        for topic in topics or ["#"]:
            self.client.subscribe(topic, qos=1)
        time.sleep(0.1)

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def on(self, topic: str) -> list[paho.MQTTMessage]:
        with self._lock:
            return [m for m in self.messages if paho.topic_matches_sub(topic, m.topic)]

    def json(self, topic: str) -> list[Any]:
        return [json.loads(m.payload) for m in self.on(topic)]

    def wait(
        self,
        topic: str,
        predicate: Callable[[paho.MQTTMessage], bool] = lambda m: True,
        timeout_s: float = 10,
    ) -> paho.MQTTMessage:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in self.on(topic):
                if predicate(message):
                    return message
            time.sleep(0.02)
        seen = [(m.topic, m.payload[:200]) for m in self.messages[-20:]]
        raise AssertionError(f"no message on {topic} within {timeout_s} s; last: {seen}")

    def wait_json(self, topic: str, predicate: Callable[[Any], bool], timeout_s: float = 10) -> Any:
        def match(m: paho.MQTTMessage) -> bool:
            try:
                return bool(predicate(json.loads(m.payload)))
            except (ValueError, KeyError, TypeError):
                return False

        return json.loads(self.wait(topic, match, timeout_s).payload)

    def publish(
        self, topic: str, payload: str | bytes | dict, retain: bool = False, **props: Any
    ) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        properties = None
        if props:
            properties = Properties(PacketTypes.PUBLISH)
            for name, value in props.items():
                setattr(properties, name, value)
        self.client.publish(
            topic, payload, qos=1, retain=retain, properties=properties
        ).wait_for_publish(5)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
