"""The MQTT interface (DESIGN section 4): commands in, results, state and events out,
Home Assistant discovery. A translator only: every command goes through the
controller's command model, like the CLI's.

One broker connection for the whole daemon, whatever the number of stoves (a building
of 500 stoves is one connection, not 500 open files). Its last will marks the daemon's
``<base_topic>/availability`` offline; each stove's ``…/availability`` says whether the
daemon serves that stove. A stove is available when both say ``online``: Home
Assistant's entities list both topics (``availability_mode: all``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from stove_ctl.clock import Clock
from stove_ctl.config import MqttConfig, StoveConfig
from stove_ctl.core.commands import parse_command, read_json
from stove_ctl.core.controller import Controller
from stove_ctl.core.events import Event, EventLog
from stove_ctl.drivers.broker import BrokerLink, Incoming, LinkSettings
from stove_ctl.errors import CommandError
from stove_ctl.surfaces import discovery
from stove_ctl.surfaces.command_ids import CommandIds, fingerprint
from stove_ctl.surfaces.control import run_text

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 4096
STATE_CHECK_S = 1.0
DISCOVERY_FILE = "discovery.json"  # in state_dir: the discovery topics published last
NO_TIMER = json.dumps(discovery.timer_state(None, 0.0))


def availability_topic(cfg: MqttConfig) -> str:
    """The daemon's own availability: ``online``, and ``offline`` as its last will."""
    return f"{cfg.base_topic}/availability"


def link_settings(cfg: MqttConfig, client_id: str, will_topic: str | None) -> LinkSettings:
    tls = cfg.tls
    return LinkSettings(
        host=cfg.host,
        port=cfg.port,
        client_id=client_id,
        username=cfg.username,
        password=cfg.password.get_secret_value() if cfg.password else None,
        ca_file=str(tls.ca_file) if tls and tls.ca_file else None,
        cert_file=str(tls.cert_file) if tls and tls.cert_file else None,
        key_file=str(tls.key_file) if tls and tls.key_file else None,
        protocol=cfg.protocol,
        will_topic=will_topic,
    )


class _StoveChannel:
    """One stove's topics, on the daemon's broker connection."""

    def __init__(self, api: MqttApi, stove: StoveConfig) -> None:
        self.api = api
        self.stove = stove
        self.base = f"{api.config.base_topic}/{stove.id}"
        self.link = api.link
        self.last_key: Any = None  # the controller's fingerprint of the state last built
        self.last_state: str | None = None
        self.last_timers: dict[str, str] = {}
        self.next_cuts: dict[str, str | None] = {}
        self.state_due = False
        self.ids = CommandIds()  # ids are this stove's own (invariant 5)

    def topic(self, leaf: str) -> str:
        return f"{self.base}/{leaf}"

    def subscribe(self) -> None:
        self.link.subscribe(self.topic("cmd"), self._on_command)
        self.link.subscribe(self.topic("cmd/text"), self._on_text)

    def on_connect(self) -> None:
        self.link.publish(self.topic("availability"), "online", retain=True)
        self.last_key = self.last_state = None
        self.last_timers.clear()
        self.publish_state()
        self.publish_discovery()  # with discovery off, only clears what was published

    def ha_online(self) -> None:
        """Home Assistant (re)started: discovery and the state again. Not the timer
        topics: retained, Home Assistant has them as it subscribes (and an older one
        warns about every "nothing due" it is sent)."""
        self.publish_discovery()
        self.last_key = self.last_state = None
        self.publish_state()

    def _on_text(self, message: Incoming) -> None:
        self.track(asyncio.ensure_future(self.api.handle_text(self, message)))

    def _on_command(self, message: Incoming) -> None:
        self.api.handle_command(self, message)

    def track(self, task: asyncio.Task[None]) -> None:
        self.api.tasks.add(task)
        task.add_done_callback(self.api.tasks.discard)

    # -- state -------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        status = self.api.controller.status(self.stove.id)
        burners = {}
        for b in status["burners"]:
            burners[b["id"]] = {
                "name": b["name"],
                "mode": b["mode"],
                "flame": b["flame"],
                "circuit": b["circuit"],
                "locked": b["lock"] is not None,
                "lock": b["lock"],
                "fault": b["fault"],
                "last_shutoff": b["last_shutoff"],
                "next_cut": b.get("next_cut"),
                # Commissioning and the self-test (stove_ctl/core/selftest.py).
                "self_test": b.get("self_test"),
                "self_test_problem": b.get("self_test_problem", False),
                "commissioning": b.get("commissioning"),
                "reminders": b.get("reminders", []),
            }
        # "ok", or in words what is wrong with a store (a saved state or timers lost).
        health = {k: v for k, v in status.items() if k.endswith("_store")}
        return {"stove": self.stove.id, "burners": burners, "health": health}

    def publish_state(self) -> None:
        """The stove's state, if anything in it changed: the controller's fingerprint
        of the stove is cheap to compare, and the state is built only when it moves
        (so the once-a-second check costs O(burners), and nothing is sent idle)."""
        if not self.link.connected:
            return
        key = self.api.controller.fingerprint(self.stove.id)
        if key != self.last_key:
            self.last_key = key
            state = self.state()
            payload = json.dumps(state, ensure_ascii=False, sort_keys=True)
            if payload != self.last_state:
                self.last_state = payload
                self.link.publish(self.topic("state"), payload, retain=True)
            self.next_cuts = {bid: b["next_cut"] for bid, b in state["burners"].items()}
        # Each burner's next cut and minutes left, on a topic of its own that changes
        # only with them (Home Assistant's next-cut sensor and timer number).
        now = self.api.clock.time()
        for burner_id, next_cut in self.next_cuts.items():
            timer = (
                NO_TIMER if next_cut is None else json.dumps(discovery.timer_state(next_cut, now))
            )
            if self.last_timers.get(burner_id) != timer:
                self.last_timers[burner_id] = timer
                self.link.publish(self.topic(f"burners/{burner_id}/timer"), timer, retain=True)

    # -- Home Assistant ----------------------------------------------------------

    def discovery(self) -> dict[str, dict[str, Any]]:
        """Discovery topic -> config payload, for every entity of this stove."""
        if not self.api.config.discovery:
            return {}
        return discovery.configs(self.api.config, self.stove, self.topic)

    def publish_discovery(self) -> None:
        for topic, payload in self.discovery().items():
            self.link.publish(topic, json.dumps(payload, ensure_ascii=False), retain=True)
        # Entities that no longer exist (a burner renamed or removed): an empty retained
        # config removes each from Home Assistant, if it is listening (so: every time).
        for topic in sorted(self.api.removed_for(self)):
            self.link.publish(topic, "", retain=True)


class MqttApi:
    def __init__(
        self,
        controller: Controller,
        events: EventLog,
        config: MqttConfig,
        stoves: list[StoveConfig],
        clock: Clock,
        state_dir: Path | None = None,
    ) -> None:
        self.controller = controller
        self.events = events
        self.config = config
        self.clock = clock
        self.availability = availability_topic(config)
        self.link = BrokerLink(link_settings(config, config.client_id, self.availability))
        self.channels = {s.id: _StoveChannel(self, s) for s in stoves}
        self.published = discovery.Published(state_dir / DISCOVERY_FILE) if state_dir else None
        self.current = {t for c in self.channels.values() for t in c.discovery()}
        self.removed: set[str] = set()  # discovery topics of entities that are gone
        self.tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Any = None
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.published is not None:
            before, removed = self.published.load()
            if before is None:  # first run: what an earlier stove-ctl may have left
                before = discovery.legacy(self.config, [c.stove for c in self.channels.values()])
            self.removed = (removed | before) - self.current
            self.published.save(self.current, self.removed)
        for channel in self.channels.values():
            channel.subscribe()
        if self.config.discovery:
            self.link.subscribe(f"{self.config.discovery_prefix}/status", self._on_ha_status)
        self.link.on_connect(self._on_connect)
        self.link.start(asyncio.get_running_loop())
        self._unsubscribe = self.events.subscribe(self._on_event)
        self._ticker = asyncio.ensure_future(self._tick())

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.link.connected:
            for channel in self.channels.values():
                self.link.publish(channel.topic("availability"), "offline", retain=True)
        await self.link.stop(last_words=(self.availability, "offline"))

    def _on_connect(self) -> None:
        self.link.publish(self.availability, "online", retain=True)
        for channel in self.channels.values():
            channel.on_connect()

    def _on_ha_status(self, message: Incoming) -> None:
        if message.payload.strip() == b"online":  # Home Assistant (re)started
            for channel in self.channels.values():
                channel.ha_online()

    def removed_for(self, channel: _StoveChannel) -> set[str]:
        """The removed entities' discovery topics ``channel`` clears: its own stove's,
        and (the first channel) those of stoves no longer configured."""
        node = f"/{discovery.node_id(self.config, channel.stove.id)}/"
        mine = {t for t in self.removed if node in t}
        if channel is next(iter(self.channels.values())):
            nodes = [f"/{discovery.node_id(self.config, s)}/" for s in self.channels]
            mine |= {t for t in self.removed if not any(n in t for n in nodes)}
        return mine

    async def _tick(self) -> None:
        """Flame changes are not events: look for state changes once a second."""
        while True:
            await self.clock.sleep(STATE_CHECK_S)
            for channel in self.channels.values():
                channel.publish_state()

    def _on_event(self, event: Event) -> None:
        payload = json.dumps(event.model_dump(), ensure_ascii=False)
        stoves = _stoves_of(event)
        # By stove id: a burner's event costs O(1), not O(stoves) (a building's off all
        # is five events a burner).
        channels = (
            self.channels.values()
            if stoves is None
            else [self.channels[s] for s in stoves if s in self.channels]
        )
        for channel in channels:
            if channel.link.connected:
                channel.link.publish(channel.topic("events"), payload, qos=0)
            self._state_soon(channel)

    def _state_soon(self, channel: _StoveChannel) -> None:
        """Publish the state once after a burst of events, not once per event (a flood
        of bad commands is a burst of ``rejected`` events)."""
        if channel.state_due:
            return
        channel.state_due = True

        def publish() -> None:
            channel.state_due = False
            channel.publish_state()

        try:
            asyncio.get_running_loop().call_soon(publish)
        except RuntimeError:  # not on the loop (shutting down): publish now
            publish()

    async def handle_text(self, channel: _StoveChannel, message: Incoming) -> None:
        """``…/cmd/text``: plain UTF-8, or JSON ``{"id": …, "text": …, "ts": …}``."""
        reply = await self._text(channel, message)
        channel.link.publish(
            message.response_topic or channel.topic("result"),
            json.dumps(reply, ensure_ascii=False),
            correlation_data=message.correlation_data,
        )

    async def _text(self, channel: _StoveChannel, message: Incoming) -> dict[str, Any]:
        if len(message.payload) > MAX_PAYLOAD_BYTES:
            return _error(None, "too_large", f"text larger than {MAX_PAYLOAD_BYTES} bytes")
        try:
            text = message.payload.decode("utf-8")
        except UnicodeDecodeError:
            return _error(None, "bad_command", "text must be UTF-8 (or JSON with 'text')")
        data: Any = {"text": text}
        if text.lstrip().startswith("{"):
            try:
                data = read_json(message.payload, "text")
            except CommandError:
                data = None
            if not isinstance(data, dict) or not isinstance(data.get("text"), str):
                return _error(None, "bad_command", "text must be UTF-8 (or JSON with 'text')")
        given_id = data.get("id") if isinstance(data.get("id"), str) else None
        unknown = sorted(set(data) - {"id", "text", "ts"})
        if unknown:
            return _error(given_id, "bad_command", f"unknown field {unknown[0]!r}")
        extra: dict[str, Any] = {
            "retained": message.retain,  # the broker says so, not the sender
            "stove": channel.stove.id,
            "remote": True,
        }
        for field in ("id", "ts"):
            if field in data:
                extra[field] = data[field]

        async def work() -> dict[str, Any]:
            reply = await run_text(self.controller, data["text"], **extra)
            reply.setdefault("id", given_id)
            return reply

        return await channel.ids.once(given_id, fingerprint("text", data), work)

    def handle_command(self, channel: _StoveChannel, message: Incoming) -> None:
        """``…/cmd``. A payload that is no command is answered here and now; a command
        runs as a task. In a flood, paho hands over thousands of messages in one read:
        bad ones then cost no task each, and memory stays flat."""
        reply = self._run(channel, message)
        if isinstance(reply, dict):
            self._reply(channel, message, reply)
            return

        async def later() -> None:
            self._reply(channel, message, await reply)

        channel.track(asyncio.ensure_future(later()))

    def _reply(self, channel: _StoveChannel, message: Incoming, reply: dict[str, Any]) -> None:
        channel.link.publish(
            message.response_topic or channel.topic("result"),
            json.dumps(reply, ensure_ascii=False),
            correlation_data=message.correlation_data,
        )

    def _run(
        self, channel: _StoveChannel, message: Incoming
    ) -> dict[str, Any] | Coroutine[Any, Any, dict[str, Any]]:
        """The reply to a bad payload, or the work that answers a command."""
        if len(message.payload) > MAX_PAYLOAD_BYTES:
            return _error(None, "too_large", f"command larger than {MAX_PAYLOAD_BYTES} bytes")
        try:
            data = read_json(message.payload, "command")
        except CommandError as exc:
            return _error(None, exc.code, exc.message)
        if not isinstance(data, dict):
            return _error(None, "bad_command", "a command must be a JSON object")
        given_id = data.get("id") if isinstance(data.get("id"), str) else None
        same = fingerprint("cmd", data)
        # Set by the daemon, whatever the sender wrote: what the broker says, and the
        # stove whose topic this is.
        command_data = {**data, "retained": message.retain, "stove": channel.stove.id}
        command_data["remote"] = True
        if command_data.get("burner") is None:
            command_data["burner"] = "all"  # all of this stove's burners
        try:
            # A refused command takes no id (command_ids), so it is refused before one.
            command = parse_command(command_data, source="mqtt")
        except CommandError as exc:
            return _error(given_id, exc.code, exc.message)

        async def work() -> dict[str, Any]:
            try:
                result = await self.controller.execute(
                    command, wait="confirmed", timeout_s=self.config.command_timeout_s
                )
            except CommandError as exc:
                return _error(given_id, exc.code, exc.message)
            return {"id": command.id, **result}

        return channel.ids.once(given_id, same, work)


def _stoves_of(event: Event) -> set[str] | None:
    """The stoves an event is about, whose ``…/events`` topics get it: one stove's
    events never reach another's topics. None: the whole daemon's (start, stop, a
    store lost), for every stove."""
    if event.burner:
        return {event.burner.split("/", 1)[0]}
    stove = event.detail.get("stove")
    if isinstance(stove, str):
        return {stove}
    burners = event.detail.get("burners")
    if isinstance(burners, list) and burners and all(isinstance(b, str) for b in burners):
        return {b.split("/", 1)[0] for b in burners}
    return None


def _error(command_id: str | None, code: str, message: str) -> dict[str, Any]:
    return {"id": command_id, "ok": False, "code": code, "error": message}
