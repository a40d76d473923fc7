"""Simulated MQTT devices, each behaving like its real firmware on the wire.

Relays (their channels switch a :class:`hardware.SimRelay`, whose contacts sit in the
stove model's thermocouple circuits):

- :class:`TasmotaRelay` — ``cmnd/<t>/POWER<n>`` (ON/OFF/TOGGLE, empty = query),
  ``PulseTime<n>`` (stored; ends every later ON; setting it restarts or, with 0,
  cancels a pulse under way), replies on ``stat/<t>/RESULT`` and
  ``stat/<t>/POWER<n>``, retained ``tele/<t>/LWT`` Online/Offline (last will).
- :class:`Zigbee2MqttRelay` — ``zigbee2mqtt/<name>/set`` ``{"state": "ON", "on_time": s}``
  (``state_l1`` … for endpoints), ``/get``, state JSON on ``zigbee2mqtt/<name>``,
  retained availability ``{"state": "online"}``.
- :class:`ShellyGen2Relay` — RPC on ``<prefix>/rpc`` (``Switch.Set`` with
  ``toggle_after``, ``Switch.GetStatus``), replies to ``<src>/rpc``, status on
  ``<prefix>/status/switch:<id>``, retained ``<prefix>/online`` true/false (last will).
- :class:`EsphomeRelay` — ``<prefix>/switch/<id>/command`` ON/OFF, retained
  ``…/state``, ``<prefix>/status`` online/offline (last will).

Sensors wired to the stove model: :class:`FlameSensor` (thermocouple millivolts, as an
ESPHome sensor), :class:`BinarySensor` (motion, gas alarm; ESPHome binary_sensor).

Fault controls on every device: ``go_offline()`` (drops the connection: the broker
publishes its last will), ``come_back()``, ``power_cycle()``, and the board's ``stuck``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from hardware.relay import SimRelay
from hardware.stove import Burner


class Device:
    """A device's MQTT session (v3.1.1, like most firmwares) with a last will."""

    will: tuple[str, str] | None = None
    birth: tuple[str, str] | None = None

    def __init__(self, port: int, host: str = "127.0.0.1", client_id: str = "") -> None:
        self.host = host
        self.port = port
        self.client_id = client_id or f"sim-{id(self):x}"
        self._client: paho.Client | None = None
        self._timers: list[threading.Timer] = []
        self._lock = threading.RLock()
        self.received: list[tuple[str, bytes]] = []

    def subscriptions(self) -> list[str]:
        return []

    def handle(self, topic: str, payload: bytes) -> None:
        return None

    def on_connected(self) -> None:
        return None

    def start(self) -> Device:
        connected = threading.Event()
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv311,
        )
        if self.will is not None:
            client.will_set(self.will[0], self.will[1], qos=1, retain=True)

        def on_connect(c: paho.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
            for topic in self.subscriptions():
                c.subscribe(topic, 1)
            if self.birth is not None:
                c.publish(self.birth[0], self.birth[1], qos=1, retain=True)
            self.on_connected()
            connected.set()

        def on_message(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:
            with self._lock:
                self.received.append((m.topic, bytes(m.payload)))
                self.handle(m.topic, bytes(m.payload))

        client.on_connect = on_connect
        client.on_message = on_message
        self._client = client  # before connecting: on_connect may publish at once
        try:
            client.connect(self.host, self.port, keepalive=5)
        except OSError:
            self._client = None
            raise
        client.loop_start()
        if not connected.wait(10):
            raise RuntimeError(f"{type(self).__name__} could not reach the broker")
        time.sleep(0.05)  # let the subscriptions land
        return self

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        if self._client is not None:
            self._client.publish(topic, payload, qos=1, retain=retain)

    def after(self, seconds: float, action: Callable[[], None]) -> threading.Timer:
        def run() -> None:
            with self._lock:
                action()

        timer = threading.Timer(seconds, run)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()
        return timer

    def go_offline(self) -> None:
        """Lose the network without saying goodbye: the broker sends the last will."""
        if self._client is not None:
            self._client.loop_stop()
            sock = self._client.socket()
            if sock is not None:
                sock.close()
            self._client = None

    def come_back(self) -> None:
        self.start()

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None


class RelayDevice(Device):
    def __init__(self, board: SimRelay, port: int, **kw: Any) -> None:
        super().__init__(port, **kw)
        self.board = board
        self._auto_off: dict[int, threading.Timer] = {}

    # Whether the firmware reports a command that changes nothing (Shelly does not).
    reports_repeats = True

    def _switch(self, channel: int, on: bool, auto_off_s: float | None = None) -> None:
        changed = self.board.get(channel) != on
        timer = self._auto_off.pop(channel, None)
        if timer is not None:
            timer.cancel()
        self.board.set(channel, on)
        if on and auto_off_s and channel not in self.board.stuck:
            self._auto_off[channel] = self.after(auto_off_s, lambda: self._auto(channel))
        if changed or self.reports_repeats:
            self.report(channel)

    def _auto(self, channel: int) -> None:
        self._auto_off.pop(channel, None)
        self.board.set(channel, False)
        self.report(channel)

    def report(self, channel: int) -> None:
        raise NotImplementedError

    def power_cycle(self) -> None:
        """Power lost and back: outputs to their power-on state, timers and session gone."""
        for timer in self._auto_off.values():
            timer.cancel()
        self._auto_off.clear()
        self.go_offline()
        self.board.power_cycle()
        self.come_back()


class TasmotaRelay(RelayDevice):
    def __init__(self, board: SimRelay, port: int, topic: str = "tasmota_stove", **kw: Any):
        super().__init__(board, port, client_id=f"DVES_{topic}", **kw)
        self.topic = topic
        self.will = (f"tele/{topic}/LWT", "Offline")
        self.birth = (f"tele/{topic}/LWT", "Online")
        self.pulse_time = {n: 0 for n in range(1, board.channels + 1)}

    def _idx(self, channel: int) -> str:
        return "" if self.board.channels == 1 else str(channel)

    def subscriptions(self) -> list[str]:
        return [f"cmnd/{self.topic}/#"]

    def on_connected(self) -> None:
        for channel in range(1, self.board.channels + 1):
            self.report(channel)

    def report(self, channel: int) -> None:
        word = "ON" if self.board.get(channel) else "OFF"
        key = f"POWER{self._idx(channel)}"
        self.publish(f"stat/{self.topic}/RESULT", json.dumps({key: word}))
        self.publish(f"stat/{self.topic}/{key}", word)

    @staticmethod
    def pulse_seconds(value: int) -> float:
        return value / 10 if value <= 111 else float(value - 100)

    def _restart_pulse(self, channel: int) -> None:
        """Setting PulseTime also restarts the running timer (Tasmota's SetPulseTimer):
        0 cancels a pulse under way, N ends the channel N from now, whatever its state."""
        timer = self._auto_off.pop(channel, None)
        if timer is not None:
            timer.cancel()
        value = self.pulse_time[channel]
        if value and channel not in self.board.stuck:
            seconds = self.pulse_seconds(value)
            self._auto_off[channel] = self.after(seconds, lambda: self._auto(channel))

    def handle(self, topic: str, payload: bytes) -> None:
        command = topic.rsplit("/", 1)[-1].upper()
        text = payload.decode(errors="replace").strip().upper()
        if command.startswith("POWER"):
            channel = int(command[5:] or 1)
            if channel not in self.pulse_time:
                return
            if text in ("", "STATE"):
                self.report(channel)
            elif text in ("ON", "1", "OFF", "0", "TOGGLE", "2"):
                on = text in ("ON", "1") or (
                    text in ("TOGGLE", "2") and not self.board.get(channel)
                )
                pulse = self.pulse_seconds(self.pulse_time[channel])
                self._switch(channel, on, pulse if on and self.pulse_time[channel] else None)
        elif command.startswith("PULSETIME"):
            channel = int(command[9:] or 1)
            if channel not in self.pulse_time:
                return
            if text:
                try:
                    value = int(text)
                except ValueError:
                    return
                self.pulse_time[channel] = max(0, min(64900, value))
                self._restart_pulse(channel)
            value = self.pulse_time[channel]
            self.publish(
                f"stat/{self.topic}/RESULT",
                json.dumps({f"PulseTime{channel}": {"Set": value, "Remaining": 0}}),
            )


class Zigbee2MqttRelay(RelayDevice):
    def __init__(
        self,
        board: SimRelay,
        port: int,
        name: str = "stove_relay",
        endpoints: dict[int, str] | None = None,
        **kw: Any,
    ):
        super().__init__(board, port, **kw)
        self.name = name
        self.endpoints = endpoints or {1: ""}
        self.base = f"zigbee2mqtt/{name}"
        # Zigbee2MQTT (the bridge) publishes availability for the device; a device
        # that drops off the mesh is reported offline, retained.
        self.birth = (f"{self.base}/availability", json.dumps({"state": "online"}))
        self.will = (f"{self.base}/availability", json.dumps({"state": "offline"}))

    def subscriptions(self) -> list[str]:
        return [f"{self.base}/set", f"{self.base}/get"]

    def on_connected(self) -> None:
        self.report(1)

    def report(self, channel: int) -> None:
        state: dict[str, Any] = {"linkquality": 120}
        for n, suffix in self.endpoints.items():
            state[f"state{suffix}"] = "ON" if self.board.get(n) else "OFF"
        self.publish(self.base, json.dumps(state))

    def handle(self, topic: str, payload: bytes) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            return  # Zigbee2MQTT logs "invalid JSON" and does nothing
        if not isinstance(data, dict):
            return
        if topic.endswith("/get"):
            self.report(1)
            return
        for n, suffix in self.endpoints.items():
            value = data.get(f"state{suffix}")
            if isinstance(value, str) and value.upper() in ("ON", "OFF", "TOGGLE"):
                on = value.upper() == "ON" or (value.upper() == "TOGGLE" and not self.board.get(n))
                on_time = data.get("on_time")
                auto = float(on_time) if isinstance(on_time, int | float) and on_time > 0 else None
                self._switch(n, on, auto)


class ShellyGen2Relay(RelayDevice):
    reports_repeats = False  # Shelly notifies status changes, not repeats

    def __init__(
        self,
        board: SimRelay,
        port: int,
        prefix: str = "shellyplus1-stove",
        status_ntf: bool = False,
        **kw: Any,
    ):
        super().__init__(board, port, **kw)
        self.prefix = prefix
        self.status_ntf = status_ntf  # "generic status update over MQTT", off by default
        self.will = (f"{prefix}/online", "false")
        self.birth = (f"{prefix}/online", "true")

    def subscriptions(self) -> list[str]:
        return [f"{self.prefix}/rpc"]

    def _status(self, switch_id: int) -> dict[str, Any]:
        return {
            "id": switch_id,
            "source": "MQTT",
            "output": self.board.get(switch_id + 1),
            "temperature": {"tC": 41.2, "tF": 106.2},
        }

    def report(self, channel: int) -> None:
        switch = f"switch:{channel - 1}"
        status = self._status(channel - 1)
        notify = {
            "src": self.prefix,
            "dst": f"{self.prefix}/events",
            "method": "NotifyStatus",
            "params": {"ts": time.time(), switch: {"id": channel - 1, "output": status["output"]}},
        }
        self.publish(f"{self.prefix}/events/rpc", json.dumps(notify))
        if self.status_ntf:
            self.publish(f"{self.prefix}/status/{switch}", json.dumps(status))

    def handle(self, topic: str, payload: bytes) -> None:
        try:
            request = json.loads(payload)
        except ValueError:
            return
        if not isinstance(request, dict) or not isinstance(request.get("src"), str):
            return
        reply: dict[str, Any] = {"id": request.get("id"), "src": self.prefix, "dst": request["src"]}
        raw_params = request.get("params")
        params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
        switch_id = params.get("id", 0)
        method = request.get("method")
        if not isinstance(switch_id, int) or not 0 <= switch_id < self.board.channels:
            reply["error"] = {
                "code": -105,
                "message": f"Argument 'id', value {switch_id} not found!",
            }
        elif method == "Switch.GetStatus":
            reply["result"] = self._status(switch_id)
        elif method == "Switch.Set" and isinstance(params.get("on"), bool):
            was_on = self.board.get(switch_id + 1)
            after = params.get("toggle_after")
            auto = float(after) if isinstance(after, int | float) and after > 0 else None
            reply["result"] = {"was_on": was_on}
            self._switch(switch_id + 1, params["on"], auto)
        else:
            reply["error"] = {"code": -103, "message": "Invalid argument"}
        self.publish(f"{request['src']}/rpc", json.dumps(reply))


class EsphomeRelay(RelayDevice):
    def __init__(
        self,
        board: SimRelay,
        port: int,
        prefix: str = "stove-esp",
        names: dict[int, str] | None = None,
        **kw: Any,
    ):
        super().__init__(board, port, **kw)
        self.prefix = prefix
        self.names = names or {n: f"relay_{n}" for n in range(1, board.channels + 1)}
        self.will = (f"{prefix}/status", "offline")
        self.birth = (f"{prefix}/status", "online")

    def subscriptions(self) -> list[str]:
        return [f"{self.prefix}/switch/{name}/command" for name in self.names.values()]

    def on_connected(self) -> None:
        for channel in self.names:
            self.report(channel)

    def report(self, channel: int) -> None:
        word = "ON" if self.board.get(channel) else "OFF"
        self.publish(f"{self.prefix}/switch/{self.names[channel]}/state", word, retain=True)

    def handle(self, topic: str, payload: bytes) -> None:
        for channel, name in self.names.items():
            if topic == f"{self.prefix}/switch/{name}/command":
                text = payload.decode(errors="replace").strip().upper()
                if text in ("ON", "OFF"):
                    self._switch(channel, text == "ON")
                elif text == "TOGGLE":
                    self._switch(channel, not self.board.get(channel))


class FlameSensor(Device):
    """A thermocouple millivolt tap published like an ESPHome sensor, every ``period_s``."""

    def __init__(
        self,
        burner: Burner,
        port: int,
        prefix: str = "stove-esp",
        name: str = "",
        period_s: float = 1.0,
        **kw: Any,
    ):
        super().__init__(port, **kw)
        self.burner = burner
        self.topic = f"{prefix}/sensor/{name or burner.name + '_thermocouple'}/state"
        self.period_s = period_s
        self.will = (f"{prefix}/status", "offline")
        self.birth = (f"{prefix}/status", "online")
        self._running = False

    def on_connected(self) -> None:
        if not self._running:
            self._running = True
            self._tick()

    def _tick(self) -> None:
        if self._client is None:
            self._running = False
            return
        self.publish(self.topic, f"{self.burner.thermocouple_mv:.2f}")
        self.after(self.period_s, self._tick)


class BinarySensor(Device):
    """A motion sensor or a gas/smoke/CO alarm, as an ESPHome binary_sensor (ON/OFF)."""

    def __init__(self, port: int, topic: str, **kw: Any):
        super().__init__(port, **kw)
        self.topic = topic
        self.value = False

    def on_connected(self) -> None:
        self.set(self.value)

    def set(self, value: bool) -> None:
        self.value = value
        self.publish(self.topic, "ON" if value else "OFF", retain=True)
