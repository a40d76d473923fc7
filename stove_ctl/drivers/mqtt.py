"""The ``mqtt`` driver: relays whose firmware speaks MQTT, described by a preset.

A set is confirmed only by the device's own state report arriving *after* the
command, never by our own publish. Where the firmware can be asked, a state query
brings one: at once for a read, an unknown state or a repeat; after a change only if
the device has not reported it within QUERY_AFTER_S. Device availability (its last
will) is respected: a device that says it is offline fails at once, and the
controller retries with backoff.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stove_ctl.drivers.broker import BrokerLink, Incoming
from stove_ctl.drivers.mqtt_presets import Preset, StateSource
from stove_ctl.errors import RelayMismatch, RelayRejected, RelayUnreachable

log = logging.getLogger(__name__)

# After a command that changes the relay's state: how long to wait for the device's
# own report before asking for one.
QUERY_AFTER_S = 0.25


@dataclass
class _Channel:
    state: bool | None = None
    version: int = 0
    # The state changed by a report nobody here asked for (a button, another client,
    # or a forgery): a fresh read asks the device before believing it.
    doubt: bool = False
    # _await_report's futures, each woken (True) by the next report
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)


def _wake(waiter: asyncio.Future[bool], reported: bool) -> None:
    if not waiter.done():
        waiter.set_result(reported)


@functools.lru_cache(maxsize=256)
def _uses_req(template: str) -> bool:
    """Does ``template`` format ``{req}`` (a new request id for every message)?"""
    return any(
        field is not None and field.split(".", 1)[0].split("[", 1)[0] == "req"
        for _, field, _, _ in string.Formatter().parse(template)
    )


def _path(payload: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(payload, dict) or key not in payload:
            return None
        payload = payload[key]
    return payload


class MqttRelay:
    external_source = "mqtt"

    def __init__(
        self,
        name: str,
        link: BrokerLink,
        preset: Preset,
        device: str,
        channels: int = 1,
        variables: dict[int, dict[str, str]] | None = None,
        timeout_s: float = 2.0,
        device_pulse: bool = True,
        poll_s: float | None = 1.0,
    ) -> None:
        self.name = name
        self.link = link
        self.preset = preset
        self.device = device
        self.timeout_s = timeout_s
        self.device_pulse = device_pulse and preset.pulse is not None
        self.poll_s = poll_s
        self.src = f"{link.settings.client_id}-{name}"
        self._req = itertools.count(1)
        self._channels = {n: _Channel() for n in range(1, channels + 1)}
        self._vars = {
            n: {
                "device": device,
                "n": str(n),
                "i": str(n - 1),
                "idx": "" if channels == 1 else str(n),
                "ep": "",
                "name": f"relay_{n}",
                "src": self.src,
                **preset.defaults,
                **(variables or {}).get(n, {}),
            }
            for n in range(1, channels + 1)
        }
        self.available: bool | None = None
        self._subscribed = False
        # A relay command's topics and payloads, formatted once: (template, channel,
        # hold) -> text, for templates without {req} (which must be new every time).
        self._formatted: dict[tuple[str, int, str], str] = {}

    # -- wiring to the broker ----------------------------------------------------

    def _fmt(self, template: str, channel: int, **extra: str) -> str:
        return template.format(**self._vars[channel], req=str(next(self._req)), **extra)

    def _fmt_command(self, template: str, channel: int, hold: str) -> str:
        """``_fmt`` for a relay command, from the cache where the text cannot change:
        a cut formats its messages before they are written, on the shutoff's path."""
        key = (template, channel, hold)
        text = self._formatted.get(key)
        if text is None:
            text = self._fmt(template, channel, hold=hold)
            if not _uses_req(template):
                self._formatted[key] = text
        return text

    def attach(self) -> None:
        """Subscribe to the device's state and availability topics."""
        if self._subscribed:
            return
        self._subscribed = True
        for channel in self._channels:
            for source in self.preset.states:
                topic = self._fmt(source.topic, channel)
                self.link.subscribe(topic, self._state_handler(channel, source))
        if self.preset.availability is not None:
            topic = self._fmt(self.preset.availability.topic, 1)
            self.link.subscribe(topic, self._on_availability)
        self.link.on_connect(self._query_all)

    def _query_all(self) -> None:
        for channel in self._channels:
            self._query(channel)

    def _query(self, channel: int) -> None:
        if self.preset.query is not None:
            topic, payload = self.preset.query
            self.link.publish(self._fmt(topic, channel), self._fmt(payload, channel))

    def _state_handler(self, channel: int, source: StateSource) -> Any:
        def handle(message: Incoming) -> None:
            value = self._decode(channel, source, message.payload)
            if value is None:
                return
            state = self._channels[channel]
            if state.state is not None and value != state.state:
                state.doubt = True
            state.state = value
            state.version += 1
            waiters, state.waiters = state.waiters, []
            for waiter in waiters:
                _wake(waiter, True)

        return handle

    def _decode(self, channel: int, source: StateSource, payload: bytes) -> bool | None:
        try:
            text = payload.decode()
        except UnicodeDecodeError:
            log.warning("relay %s: state payload is not text; ignored", self.name)
            return None
        raw: Any = text
        if source.json_path is not None:
            try:
                data = json.loads(text)
            except (ValueError, RecursionError):
                log.warning("relay %s: state payload is not JSON; ignored", self.name)
                return None
            if source.match is not None:
                path, template = source.match
                if str(_path(data, path)) != self._fmt(template, channel):
                    return None
            raw = _path(data, self._fmt(source.json_path, channel))
            if raw is None:
                return None  # a message about something else (another key, another reply)
        if raw == source.on:
            return True
        if raw == source.off:
            return False
        log.warning("relay %s: unknown state %r; ignored", self.name, raw)
        return None

    def _on_availability(self, message: Incoming) -> None:
        spec = self.preset.availability
        assert spec is not None
        text = message.payload.decode(errors="replace").strip()
        value: Any = text
        if spec.json_path is not None:
            try:
                value = _path(json.loads(text), spec.json_path)
            except (ValueError, RecursionError):
                value = text  # older firmwares publish the bare word
        if value in spec.online:
            self.available = True
        elif value in spec.offline:
            self.available = False
        else:
            log.warning("relay %s: unknown availability %r; ignored", self.name, str(value)[:40])
            return
        if not self.available:
            for channel in self._channels.values():
                channel.state = None

    # -- the relay interface ------------------------------------------------------

    def can_pulse(self, channel: int) -> bool:
        return self.device_pulse

    async def set(self, channel: int, on: bool) -> None:
        messages = []
        if on and self.device_pulse and self.preset.pulse is not None:
            messages += list(self.preset.pulse.disarm)
        template = self.preset.payload_on if on else self.preset.payload_off
        messages.append((self.preset.set_topic, template))
        await self._command(channel, on, messages, hold="0")

    async def pulse(self, channel: int, on: bool, hold_s: float) -> None:
        pulse = self.preset.pulse
        if pulse is None or not on:
            raise RelayRejected(f"relay {self.name!r} ({self.preset.name}) has no device pulse")
        await self._command(channel, True, pulse.messages, hold=pulse.encode(hold_s))

    async def read(self, channel: int, fresh: bool = False) -> bool:
        """The last reported state; ``fresh``: the same, unless it changed since the device
        last answered us: then the device is asked (a preset without a query cannot be)."""
        state = self._channel(channel)
        self._check_available()
        if state.state is not None and not (fresh and state.doubt and self.preset.query):
            return state.state
        await self._await_report(channel, state.version, None)
        assert state.state is not None
        return state.state

    async def ask(self, channel: int) -> bool:
        """Ask the device for the channel's state and wait (up to ``timeout_s``) for its
        answer: a report that arrives after the question, not one known before it.
        Only reads: the preset's state query is the one message sent. A preset without
        a query (ESPHome, generic) cannot be asked: a state the broker has retained for
        it, or its next report, is the answer (``stove-ctl doctor``)."""
        state = self._channel(channel)
        self._check_available()
        if self.preset.query is None and state.state is not None:
            return state.state
        await self._await_report(channel, state.version, None)
        assert state.state is not None
        return state.state

    def topics(self, channel: int) -> tuple[tuple[str, str] | None, list[str], str | None]:
        """The channel's topics, as formatted for this device: the state query (topic,
        payload; None where the firmware cannot be asked), the state topics, and the
        availability topic (None where the preset has none)."""
        self._channel(channel)
        query = None
        if self.preset.query is not None:
            topic, payload = self.preset.query
            query = (self._fmt(topic, channel), self._fmt(payload, channel))
        states = [self._fmt(source.topic, channel) for source in self.preset.states]
        spec = self.preset.availability
        return query, states, self._fmt(spec.topic, 1) if spec is not None else None

    async def close(self) -> None:
        return None

    # -- helpers -----------------------------------------------------------------

    def _channel(self, channel: int) -> _Channel:
        try:
            return self._channels[channel]
        except KeyError:
            raise RelayRejected(f"relay {self.name!r} has no channel {channel}") from None

    def _check_available(self) -> None:
        if not self.link.connected:
            raise RelayUnreachable(f"relay {self.name!r}: not connected to the broker")
        if self.available is False:
            raise RelayUnreachable(f"relay {self.name!r}: the device reports itself offline")

    async def _command(
        self, channel: int, on: bool, messages: Sequence[tuple[str, str]], hold: str
    ) -> None:
        state = self._channel(channel)
        self._check_available()
        since = state.version
        self.link.publish_all(
            [
                (self._fmt_command(topic, channel, hold), self._fmt_command(payload, channel, hold))
                for topic, payload in messages
            ]
        )
        await self._await_report(channel, since, on)

    async def _await_report(self, channel: int, since: int, want: bool | None) -> None:
        """Wait for a state report newer than ``since`` (equal to ``want``, if given),
        asking for one where the firmware can be asked.

        After a command that changes the state we know of, every firmware reports
        the change by itself: the query is sent only if no report has come within
        QUERY_AFTER_S. It would be a second message to the broker and the device right
        behind the relay command, while that command is still on its way. A plain read,
        an unknown state, or a command that changes nothing (a firmware may stay
        silent: Shelly does) asks at once."""
        state = self._channels[channel]
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + self.timeout_s
        change = want is not None and state.state is not None and state.state != want
        ask_at = now + min(QUERY_AFTER_S, self.timeout_s / 2) if change else now
        asked = False
        seen_other = False
        while True:
            if state.version > since and state.state is not None:
                if want is None or state.state == want:
                    state.doubt = False  # the device's answer to us
                    return
                seen_other = True
            now = loop.time()
            if not asked and now >= ask_at:
                self._query(channel)
                asked = True
            until = deadline if asked else ask_at
            if now >= deadline:
                break
            # A future and a timer, not wait_for (a task per wait): this runs right
            # after the relay command is written, when every bit of CPU we take is
            # taken from the broker forwarding it.
            waiter: asyncio.Future[bool] = loop.create_future()
            state.waiters.append(waiter)
            timer = loop.call_at(until, _wake, waiter, False)
            try:
                reported = await waiter
            finally:
                timer.cancel()
                if waiter in state.waiters:
                    state.waiters.remove(waiter)
            if not reported and asked:
                break
        if seen_other:
            raise RelayMismatch(
                f"relay {self.name!r} channel {channel} reports "
                f"{'on' if state.state else 'off'} after being set {'on' if want else 'off'}"
            )
        if self.available is False:
            raise RelayUnreachable(f"relay {self.name!r}: the device reports itself offline")
        raise RelayUnreachable(
            f"relay {self.name!r} ({self.preset.name} {self.device}): no state report "
            f"within {self.timeout_s:g} s"
        )
