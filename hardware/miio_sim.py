"""A simulated Mi Home (miIO / MIoT) relay on UDP loopback.

It speaks the real LAN protocol, so python-miio's own ``Device`` / ``MiotDevice``
talk to it unchanged: the 32-byte hello handshake, packets of header + MD5 checksum
+ AES-128-CBC payload keyed from the token, and JSON-RPC inside (``miIO.info``, MIoT
``get_properties`` / ``set_properties`` with per-item ``code``, legacy ``get_prop`` /
``set_power``). Each channel switches a channel of a :class:`hardware.SimRelay`, whose
contacts sit in the stove model's thermocouple circuits.

Behaviour copied from real devices: a request whose checksum does not verify (wrong
token) is dropped without a reply; every reply echoes the request ``id`` and the
item's ``did``; a device keeps answering the handshake whatever the token.

Fault controls (attributes, safe to change from another thread): ``offline``,
``drop_rate`` and ``drop_next`` (lost packets, each direction), ``delay_next`` with
``delay_s``, ``error_next`` with ``error_code``, ``garbage_next`` (undecodable JSON),
``wrong_id_next`` (reply carries another id), ``replies_lost`` (a one-way link: every
request is carried out and none is answered; the handshake still is), ``token``
(change it to make the client's token wrong), ``board.stuck`` (accepts a set, nothing
moves), and ``power_cycle()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from miio.protocol import Message, Utils

from hardware.relay import SimRelay

HELLO = bytes.fromhex("21310020" + "ff" * 28)
PORT = 54321

# MIoT per-item status codes, as devices return them (docs/MIHOME.md has sources).
CODE_OK = 0
CODE_NOT_FOUND = -4003  # property does not exist
CODE_BAD_VALUE = -4005  # value out of range / wrong type
# Top-level errors.
METHOD_NOT_FOUND = -10000  # e.g. a legacy device asked for get_properties
COMMAND_ERROR = -5001  # e.g. a MIoT device asked for get_prop / set_power
# yeelink.switch.sw1's off-delay range: -1 is "off", 1..43200 seconds.
OFF_DELAY_MIN, OFF_DELAY_MAX = -1, 43200


@dataclass(frozen=True)
class Prop:
    siid: int
    piid: int


class MiioRelaySim:
    """A MIoT (or legacy) relay device listening on ``host``:54321."""

    def __init__(
        self,
        board: SimRelay,
        host: str = "127.0.0.5",
        token: str = "00112233445566778899aabbccddeeff",
        model: str = "yeelink.switch.sw1",
        device_id: int = 0x1A2B3C4D,
        mapping: dict[int, Prop] | None = None,
        off_delay: dict[int, Prop] | None = None,
        legacy: bool = False,
        port: int = PORT,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.board = board
        self.host = host
        self.port = port
        self.token = bytes.fromhex(token)
        self.model = model
        self.device_id = device_id.to_bytes(4, "big")
        self.legacy = legacy
        self.mapping = mapping or {n: Prop(n + 1, 1) for n in range(1, board.channels + 1)}
        self.off_delay_props = off_delay or {}
        self._clock = clock
        self._rng = random.Random(seed)
        self._booted = clock()
        # Faults.
        self.offline = False
        self.drop_rate = 0.0
        self.replies_lost = False  # requests carried out, never answered (handshake is)
        self.drop_next = 0
        self.delay_next = 0
        self.delay_s = 0.0
        self.error_next = 0
        self.error_code = -5001
        self.garbage_next = 0
        self.wrong_id_next = 0
        # State and counters for tests.
        self.off_delay_s: dict[int, int] = {n: -1 for n in self.off_delay_props}
        self._off_at: dict[int, float] = {}
        self.requests: list[dict[str, Any]] = []
        self.request_times: list[tuple[float, str]] = []
        self.handshakes = 0
        self._outbox: list[tuple[float, int, bytes, tuple[str, int]]] = []
        self._seq = 0
        self._lock = threading.RLock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- life cycle --------------------------------------------------------------

    def start(self) -> MiioRelaySim:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.host, self.port))
        self._sock = sock
        self._thread = threading.Thread(target=self._loop, name=f"miio-sim-{self.host}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> MiioRelaySim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def power_cycle(self) -> None:
        """Lose power and boot again: outputs to their power-on state, timers gone."""
        with self._lock:
            self._off_at.clear()
            self.off_delay_s = {n: -1 for n in self.off_delay_props}
            self._booted = self._clock()
            self.board.power_cycle()

    @property
    def held_replies(self) -> int:
        """Replies written but not yet sent (held back by ``delay_next``)."""
        with self._lock:
            return len(self._outbox)

    @property
    def stamp(self) -> int:
        """Seconds since boot, as the device puts in every header."""
        return int(self._clock() - self._booted) + 1

    # -- the loop ----------------------------------------------------------------

    def _loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.005)
            if ready:
                try:
                    data, addr = self._sock.recvfrom(4096)
                except OSError:
                    data = b""
                if data:
                    with self._lock:
                        self._receive(data, addr)
            now = self._clock()
            with self._lock:
                self._fire_timers(now)
                while self._outbox and self._outbox[0][0] <= now:
                    _, _, packet, to = heapq.heappop(self._outbox)
                    # A client that went away is no concern of a real device's.
                    with contextlib.suppress(OSError):
                        self._sock.sendto(packet, to)

    def _fire_timers(self, now: float) -> None:
        for channel, due in list(self._off_at.items()):
            if due <= now:
                del self._off_at[channel]
                self.board.set(channel, False)

    def _lost(self) -> bool:
        if self.drop_next > 0:
            self.drop_next -= 1
            return True
        return self.drop_rate > 0 and self._rng.random() < self.drop_rate

    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._lost():
            return
        delay = 0.0
        if self.delay_next > 0:
            self.delay_next -= 1
            delay = self.delay_s
        self._seq += 1
        heapq.heappush(self._outbox, (self._clock() + delay, self._seq, data, addr))

    def _receive(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.offline or self._lost():
            return
        if data == HELLO:
            self.handshakes += 1
            header = struct.pack(">HHI4sI", 0x2131, 32, 0, self.device_id, self.stamp)
            self._send(header + b"\xff" * 16, addr)
            return
        try:
            message = Message.parse(data, token=self.token)
            request = message.data.value
        except Exception:  # noqa: BLE001 - wrong token or garbage: real devices stay silent
            return
        if not isinstance(request, dict) or "id" not in request:
            return
        self.requests.append(request)
        self.request_times.append((self._clock(), str(request.get("method"))))
        if self.replies_lost:  # carried out below, never answered
            self._call_quietly(str(request.get("method")), request.get("params"))
            return
        if self.garbage_next > 0:
            self.garbage_next -= 1
            self._send(self._packet(b"{'not': json,,"), addr)
            return
        reply: dict[str, Any] = {"id": request["id"]}
        if self.wrong_id_next > 0:  # one fault per request: garbage, wrong id, error
            self.wrong_id_next -= 1
            reply["id"] = (int(request["id"]) + 1000) % 10000
        elif self.error_next > 0:
            self.error_next -= 1
            reply["error"] = {"code": self.error_code, "message": "simulated error"}
        else:
            try:
                reply["result"] = self._call(str(request.get("method")), request.get("params"))
            except _RpcError as exc:
                reply["error"] = {"code": exc.code, "message": exc.message}
        self._send(self._packet(json.dumps(reply).encode() + b"\x00"), addr)

    def _call_quietly(self, method: str, params: Any) -> None:
        with contextlib.suppress(_RpcError):
            self._call(method, params)

    def _packet(self, plaintext: bytes) -> bytes:
        encrypted = Utils.encrypt(plaintext, self.token)
        header = struct.pack(">HHI4sI", 0x2131, 32 + len(encrypted), 0, self.device_id, self.stamp)
        checksum = hashlib.md5(header + self.token + encrypted).digest()
        return header + checksum + encrypted

    # -- the device's methods ----------------------------------------------------

    def _call(self, method: str, params: Any) -> Any:
        if method == "miIO.info":
            return self._info()
        if self.legacy:
            if method == "get_prop":
                return self._legacy_get(params)
            if method == "set_power":
                return self._legacy_set(params)
        elif method in ("get_prop", "set_power"):
            raise _RpcError(COMMAND_ERROR, "command error")
        else:
            if method == "get_properties":
                return [self._get(item) for item in _items(params)]
            if method == "set_properties":
                items = _items(params)
                # Delays first, so "on + off-delay" in one request arms the timer.
                delays = [i for i in items if self._off_delay_channel(i) is not None]
                results = {id(i): self._set(i) for i in delays}
                results.update({id(i): self._set(i) for i in items if i not in delays})
                return [results[id(i)] for i in items]
        raise _RpcError(METHOD_NOT_FOUND, "Method not found.")

    def _info(self) -> dict[str, Any]:
        mac = ":".join(f"{b:02X}" for b in b"\x54\x48" + self.device_id)
        return {
            "life": self.stamp,
            "cfg_time": 0,
            "token": "ffffffffffffffffffffffffffffffff",
            "mac": mac,
            "fw_ver": "1.0.0_sim",
            "hw_ver": "esp32",
            "uid": 1234567890,
            "model": self.model,
            "mcu_fw_ver": "0001",
            "wifi_fw_ver": "sim",
            "ap": {"rssi": -42, "ssid": "sim-kitchen", "bssid": "00:00:00:00:00:00"},
            "netif": {"localIp": self.host, "mask": "255.0.0.0", "gw": "127.0.0.1"},
            "mmfree": 40000,
            "ot": "otu",
            "otu_stat": [0, 0, 0, 0, 0, 0],
        }

    def _channel_of(self, item: dict[str, Any]) -> int | None:
        prop = Prop(item.get("siid", -1), item.get("piid", -1))
        for channel, mapped in self.mapping.items():
            if mapped == prop:
                return channel
        return None

    def _off_delay_channel(self, item: dict[str, Any]) -> int | None:
        prop = Prop(item.get("siid", -1), item.get("piid", -1))
        for channel, mapped in self.off_delay_props.items():
            if mapped == prop:
                return channel
        return None

    def _get(self, item: dict[str, Any]) -> dict[str, Any]:
        out = {k: item.get(k) for k in ("did", "siid", "piid")}
        channel = self._channel_of(item)
        if channel is not None:
            return {**out, "code": CODE_OK, "value": self.board.get(channel)}
        delay_channel = self._off_delay_channel(item)
        if delay_channel is not None:
            return {**out, "code": CODE_OK, "value": self.off_delay_s[delay_channel]}
        return {**out, "code": CODE_NOT_FOUND}

    def _set(self, item: dict[str, Any]) -> dict[str, Any]:
        out = {k: item.get(k) for k in ("did", "siid", "piid")}
        value = item.get("value")
        channel = self._channel_of(item)
        if channel is not None:
            if not isinstance(value, bool):
                return {**out, "code": CODE_BAD_VALUE}
            self.board.set(channel, value)
            delay = self.off_delay_s.get(channel, -1)
            if value and delay > 0 and channel not in self.board.stuck:
                self._off_at[channel] = self._clock() + delay
                self.off_delay_s[channel] = -1  # one-shot, like a countdown
            elif not value:
                self._off_at.pop(channel, None)
            return {**out, "code": CODE_OK}
        delay_channel = self._off_delay_channel(item)
        if delay_channel is not None:
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not OFF_DELAY_MIN <= value <= OFF_DELAY_MAX
            ):
                return {**out, "code": CODE_BAD_VALUE}
            self.off_delay_s[delay_channel] = value
            if value <= 0:
                self._off_at.pop(delay_channel, None)  # "off" cancels a running countdown
            return {**out, "code": CODE_OK}
        return {**out, "code": CODE_NOT_FOUND}

    def _legacy_get(self, params: Any) -> list[Any]:
        names = params if isinstance(params, list) else []
        return [("on" if self.board.get(1) else "off") if n == "power" else None for n in names]

    def _legacy_set(self, params: Any) -> list[str]:
        if params not in (["on"], ["off"]):
            raise _RpcError(COMMAND_ERROR, "invalid_arg")
        self.board.set(1, params == ["on"])
        return ["ok"]


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _items(params: Any) -> list[dict[str, Any]]:
    if not isinstance(params, list) or not all(isinstance(i, dict) for i in params):
        raise _RpcError(COMMAND_ERROR, "invalid_arg")
    return params
