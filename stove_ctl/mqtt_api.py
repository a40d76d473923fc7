"""The MQTT interface (DESIGN section 4): commands in, results, state and events out,
Home Assistant discovery. A translator only: every command goes through the
controller's command model, like the CLI's.

Each stove has its own broker connection, so that its last will can mark exactly its
``…/availability`` topic offline.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from typing import Any

from stove_ctl import __version__
from stove_ctl.broker import BrokerLink, Incoming, LinkSettings
from stove_ctl.clock import Clock
from stove_ctl.commands import parse_command
from stove_ctl.config import MqttConfig, StoveConfig
from stove_ctl.control import run_text
from stove_ctl.controller import Controller
from stove_ctl.eager import start as eager_start
from stove_ctl.errors import CommandError
from stove_ctl.events import Event, EventLog

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 4096
REMEMBERED_COMMANDS = 1000
STATE_CHECK_S = 1.0


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
    """One stove's topics and its broker connection."""

    def __init__(self, api: MqttApi, stove: StoveConfig) -> None:
        self.api = api
        self.stove = stove
        self.base = f"{api.config.base_topic}/{stove.id}"
        self.link = BrokerLink(
            link_settings(
                api.config, f"{api.config.client_id}-{stove.id}", self.topic("availability")
            )
        )
        self.last_state: str | None = None
        self.state_due = False

    def topic(self, leaf: str) -> str:
        return f"{self.base}/{leaf}"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.link.subscribe(self.topic("cmd"), self._on_command)
        self.link.subscribe(self.topic("cmd/text"), self._on_text)
        if self.api.config.discovery:
            self.link.subscribe(f"{self.api.config.discovery_prefix}/status", self._on_ha_status)
        self.link.on_connect(self._on_connect)
        self.link.start(loop)

    async def stop(self) -> None:
        await self.link.stop(last_words=(self.topic("availability"), "offline"))

    def _on_connect(self) -> None:
        self.link.publish(self.topic("availability"), "online", retain=True)
        self.last_state = None
        self.publish_state()
        if self.api.config.discovery:
            self.publish_discovery()

    def _on_ha_status(self, message: Incoming) -> None:
        if message.payload.strip() == b"online":  # Home Assistant (re)started
            self.publish_discovery()
            self.last_state = None
            self.publish_state()

    def _on_text(self, message: Incoming) -> None:
        self._track(eager_start(self.api.handle_text(self, message)))

    def _on_command(self, message: Incoming) -> None:
        # Started at once: a shutoff's relay command leaves in this same step of the
        # loop that read the message, not a turn later (stove_ctl/eager.py).
        self._track(eager_start(self.api.handle_command(self, message)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self.api.tasks.add(task)
        task.add_done_callback(self.api.tasks.discard)

    # -- state -------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        status = self.api.controller.status()
        burners = {}
        for b in status["burners"]:
            if b["stove"] != self.stove.id:
                continue
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
            }
        return {"stove": self.stove.id, "burners": burners}

    def publish_state(self) -> None:
        payload = json.dumps(self.state(), ensure_ascii=False, sort_keys=True)
        if payload != self.last_state and self.link.connected:
            self.last_state = payload
            self.link.publish(self.topic("state"), payload, retain=True)

    # -- Home Assistant ----------------------------------------------------------

    def discovery(self) -> dict[str, dict[str, Any]]:
        """Discovery topic -> config payload, for every entity of this stove."""
        prefix = self.api.config.discovery_prefix
        node = f"stove_ctl_{self.stove.id}"
        device = {
            "identifiers": [node],
            "name": self.stove.name or f"Stove {self.stove.id}",
            "manufacturer": "stove-ctl",
            "model": "Gas stove shutoff controller",
            "sw_version": __version__,
        }
        origin = {"name": "stove-ctl", "sw_version": __version__}
        common = {
            "availability_topic": self.topic("availability"),
            "device": device,
            "origin": origin,
        }
        state = self.topic("state")
        out: dict[str, dict[str, Any]] = {}
        for burner in self.stove.burners:
            name = burner.name or burner.id
            where = f"value_json.burners['{burner.id}']"
            uid = f"{node}_{burner.id}"
            out[f"{prefix}/button/{node}/{burner.id}_shutoff/config"] = {
                **common,
                "name": f"Shut off {name}",
                "unique_id": f"{uid}_shutoff",
                "command_topic": self.topic("cmd"),
                "payload_press": json.dumps({"action": "shutoff", "burner": burner.id}),
                "icon": "mdi:fire-off",
            }
            out[f"{prefix}/switch/{node}/{burner.id}_lock/config"] = {
                **common,
                "name": f"{name} lock",
                "unique_id": f"{uid}_lock",
                "command_topic": self.topic("cmd"),
                # Unlock is a restore-direction action: it carries the time it was sent,
                # and is refused unless mqtt is in trust.unlock_sources.
                "command_template": (
                    "{\"action\": \"{{ 'lock' if value == 'ON' else 'unlock' }}\", "
                    f'"burner": "{burner.id}", "ts": {{{{ now().timestamp() }}}}}}'
                ),
                "state_topic": state,
                "value_template": f"{{{{ 'ON' if {where}.locked else 'OFF' }}}}",
                "icon": "mdi:lock",
            }
            out[f"{prefix}/binary_sensor/{node}/{burner.id}_flame/config"] = {
                **common,
                "name": f"{name} flame",
                "unique_id": f"{uid}_flame",
                "state_topic": state,
                "value_template": (
                    f"{{% set f = {where}.flame %}}"
                    "{{ 'ON' if f == 'lit' else ('OFF' if f == 'out' else 'None') }}"
                ),
                "device_class": "heat",
                "icon": "mdi:fire",
            }
            out[f"{prefix}/sensor/{node}/{burner.id}_next_cut/config"] = {
                **common,
                "name": f"{name} next cut",
                "unique_id": f"{uid}_next_cut",
                "state_topic": state,
                "value_template": f"{{{{ {where}.next_cut or 'None' }}}}",
                "device_class": "timestamp",
                "icon": "mdi:timer-outline",
            }
        return out

    def publish_discovery(self) -> None:
        for topic, payload in self.discovery().items():
            self.link.publish(topic, json.dumps(payload, ensure_ascii=False), retain=True)


class MqttApi:
    def __init__(
        self,
        controller: Controller,
        events: EventLog,
        config: MqttConfig,
        stoves: list[StoveConfig],
        clock: Clock,
    ) -> None:
        self.controller = controller
        self.events = events
        self.config = config
        self.clock = clock
        self.channels = {s.id: _StoveChannel(self, s) for s in stoves}
        self.tasks: set[asyncio.Task[Any]] = set()
        self._results: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._unsubscribe: Any = None
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for channel in self.channels.values():
            channel.start(loop)
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
        await asyncio.gather(*(c.stop() for c in self.channels.values()))

    async def _tick(self) -> None:
        """Flame changes are not events: look for state changes once a second."""
        while True:
            await self.clock.sleep(STATE_CHECK_S)
            for channel in self.channels.values():
                channel.publish_state()

    def _on_event(self, event: Event) -> None:
        payload = json.dumps(event.model_dump(), ensure_ascii=False)
        stove = event.burner.split("/", 1)[0] if event.burner else None
        for stove_id, channel in self.channels.items():
            if stove is None or stove == stove_id:
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
        """``…/cmd/text``: plain UTF-8, or JSON ``{"id": …, "text": …}``."""
        reply_to = message.response_topic or channel.topic("result")
        command_id: str | None = None
        if len(message.payload) > MAX_PAYLOAD_BYTES:
            reply = _error(None, "too_large", f"text larger than {MAX_PAYLOAD_BYTES} bytes")
        else:
            try:
                text: Any = message.payload.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if isinstance(text, str) and text.lstrip().startswith("{"):
                try:
                    data = json.loads(text)
                except (ValueError, RecursionError):  # nesting too deep is not JSON to us
                    data = None
                if isinstance(data, dict) and not _unpaired_surrogate(text, data):
                    text = data.get("text")
                    command_id = data.get("id") if isinstance(data.get("id"), str) else None
                else:
                    text = None
            extra: dict[str, Any] = {"retained": message.retain}
            if command_id is not None:
                extra["id"] = command_id
            if text is None:
                reply = _error(None, "bad_command", "text must be UTF-8 (or JSON with 'text')")
            else:
                reply = await run_text(self.controller, text, **extra)
                reply.setdefault("id", command_id)
        payload = json.dumps(reply, ensure_ascii=False)
        channel.link.publish(reply_to, payload, correlation_data=message.correlation_data)

    async def handle_command(self, channel: _StoveChannel, message: Incoming) -> None:
        reply_to = message.response_topic or channel.topic("result")
        reply = await self._run(channel, message)
        channel.link.publish(
            reply_to,
            json.dumps(reply, ensure_ascii=False),
            correlation_data=message.correlation_data,
        )

    async def _run(self, channel: _StoveChannel, message: Incoming) -> dict[str, Any]:
        if len(message.payload) > MAX_PAYLOAD_BYTES:
            return _error(None, "too_large", f"command larger than {MAX_PAYLOAD_BYTES} bytes")
        try:
            # Strictly UTF-8 (RFC 8259): json.loads would take bytes as UTF-16 or -32
            # too, and lets a UTF-8-encoded lone surrogate through as text that
            # cannot be written to the event store or published again.
            text = message.payload.decode("utf-8")
        except UnicodeDecodeError:
            return _error(None, "bad_json", "command is not valid JSON: it is not UTF-8 text")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return _error(None, "bad_json", "command is not valid JSON")
        if _unpaired_surrogate(text, data):
            why = "a string in it is not Unicode text (half of a \\u surrogate pair)"
            return _error(None, "bad_json", f"command is not valid JSON: {why}")
        if not isinstance(data, dict):
            return _error(None, "bad_command", "a command must be a JSON object")
        given_id = data.get("id") if isinstance(data.get("id"), str) else None
        if given_id is not None and given_id in self._results:
            return self._results[given_id]  # a redelivery: answer it, do it once
        burner = data.get("burner")
        if burner is None or burner == "all":
            data["burner"] = channel.stove.id
        elif isinstance(burner, str) and "/" not in burner:
            data["burner"] = f"{channel.stove.id}/{burner}"
        data["retained"] = message.retain  # the broker says so, not the sender
        try:
            command = parse_command(data, source="mqtt")
            result = await self.controller.execute(
                command, wait="confirmed", timeout_s=self.config.command_timeout_s
            )
        except CommandError as exc:
            return _error(given_id, exc.code, exc.message)
        reply = {"id": command.id, **result}
        self._results[command.id] = reply
        while len(self._results) > REMEMBERED_COMMANDS:
            self._results.popitem(last=False)
        return reply


def _unpaired_surrogate(text: str, data: Any) -> bool:
    """Does ``data``, parsed from ``text``, hold a string with half of a surrogate pair
    (``"\\ud800"``)? Such a string is not Unicode text: it can be neither published (a
    reply echoes the id) nor stored (SQLite), both being UTF-8."""
    if "\\u" not in text:  # only an escape can make one: ``text`` is valid UTF-8
        return False
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except RecursionError:  # nested as deep as json.loads goes: left to the checks after
        return False
    return False


def _error(command_id: str | None, code: str, message: str) -> dict[str, Any]:
    return {"id": command_id, "ok": False, "code": code, "error": message}
