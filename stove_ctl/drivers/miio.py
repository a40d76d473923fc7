"""The ``miio`` driver: Mi Home relays over the LAN.

Replies are decoded and checked with python-miio's own codec (``miio.protocol``:
header, MD5 checksum, AES with the token-derived key); requests are built by
``RequestCodec`` into the same bytes, faster (it is on the path of every cut).
The exchange around it is ours, on asyncio UDP, for three reasons python-miio's
blocking ``Device`` cannot meet: every wait is bounded by ``timeout_s``
(python-miio's handshake waits 5 s, up to four times); nothing blocks the daemon's
loop, so one dead relay cannot delay a cut on another; and failures come out as
typed errors the controller can act on.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import math
import random
import struct
import sys
from dataclasses import dataclass
from typing import Any

import construct
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from stove_ctl.errors import (
    RelayAuthError,
    RelayBadReply,
    RelayError,
    RelayRejected,
    RelayUnreachable,
)


def _codec_only() -> None:
    """Let ``miio.protocol`` be imported without python-miio's package ``__init__``.

    That ``__init__`` imports every device integration python-miio has (and click,
    zeroconf, ...): about 300 modules and 18 MB of resident memory, and ~0.2 s of
    start-up, none of which this driver uses (bench/footprint.py,
    docs/PERFORMANCE.md). The package module is registered without running its
    ``__init__``; the first attribute asked of it (``from miio import MiotDevice``,
    anywhere else in the process) runs the ``__init__`` then, so nothing else sees
    a difference.
    """
    if "miio" in sys.modules:
        return
    spec = importlib.util.find_spec("miio")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader
    loaded = False

    def rest_of_miio(name: str) -> Any:
        nonlocal loaded
        if not loaded:
            loaded = True
            loader.exec_module(package)
            if name in vars(package):
                return vars(package)[name]
        raise AttributeError(f"module 'miio' has no attribute {name!r}")

    setattr(package, "__getattr__", rest_of_miio)  # noqa: B010 - a module-level __getattr__
    sys.modules["miio"] = package


_codec_only()

from miio.exceptions import PayloadDecodeException  # noqa: E402 - after _codec_only()
from miio.protocol import Message  # noqa: E402

PORT = 54321
HELLO = bytes.fromhex("21310020" + "ff" * 28)


class RequestCodec:
    """Builds request packets: the same bytes as python-miio's ``Message.build``
    (tests/test_miio_codec.py compares them on generated requests), in under half the
    time.

    ``Message.build`` goes through the ``construct`` library, 0.30 ms per packet against
    0.13 ms here (p50, ``bench/path.py``), and a shutoff waits for it before anything
    is sent. The layout is the protocol's: a 16-byte header (magic 0x2131, total
    length, 0, device id, device time), the MD5 of header + token + payload, then the
    payload: the JSON request and a NUL, PKCS#7-padded, AES-128-CBC with key
    MD5(token) and IV MD5(key + token). Replies are still decoded by python-miio.
    """

    def __init__(self, token: bytes) -> None:
        self.token = token
        key = hashlib.md5(token).digest()  # the protocol's key derivation
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(hashlib.md5(key + token).digest()))

    def encode(self, request: dict[str, Any], device_id: bytes, stamp: int) -> bytes:
        plain = json.dumps(request).encode("utf-8") + b"\x00"
        pad = 16 - len(plain) % 16
        encryptor = self._cipher.encryptor()
        data = encryptor.update(plain + bytes((pad,)) * pad) + encryptor.finalize()
        header = _HEADER.pack(0x2131, 32 + len(data), 0, device_id, stamp % 2**32)
        checksum = hashlib.md5(header + self.token + data).digest()
        return header + checksum + data


_HEADER = struct.Struct(">HHI4sI")


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.queue.put_nowait(exc)  # e.g. ICMP port unreachable


class MiioProtocol:
    """One miIO device: handshake, request ids, timeouts, reply matching."""

    def __init__(
        self,
        host: str,
        token: bytes,
        port: int = PORT,
        timeout_s: float = 2.0,
        attempts: int = 3,
        rng: random.Random | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.timeout_s = timeout_s
        self.attempts = attempts
        # A random start id keeps a restarted daemon from reusing ids the device
        # has just seen (devices may answer a repeated id from their cache).
        self._id = (rng or random.Random()).randint(1, 9000)
        self._device_id: bytes | None = None
        self._stamp_base = 0
        self._stamp_at = 0.0
        self._lock = asyncio.Lock()
        self._codec = RequestCodec(token)
        self._transport: asyncio.DatagramTransport | None = None
        self._inbox: _Datagrams | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    async def _open(self) -> _Datagrams:
        if self._transport is None or self._transport.is_closing() or self._inbox is None:
            loop = asyncio.get_running_loop()
            transport, inbox = await loop.create_datagram_endpoint(
                _Datagrams, remote_addr=(self.host, self.port)
            )
            self._transport, self._inbox = transport, inbox
        return self._inbox

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            self._inbox = None

    async def _receive(self, inbox: _Datagrams, deadline: float) -> bytes | None:
        """The next datagram before ``deadline`` (loop time), or None."""
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        try:
            item = await asyncio.wait_for(inbox.queue.get(), remaining)
        except TimeoutError:
            return None
        if isinstance(item, ConnectionRefusedError):
            raise RelayUnreachable(f"nothing listens on {self.where} (not a miIO device?)")
        if isinstance(item, Exception):
            raise RelayUnreachable(f"{self.where}: {item}")
        return item

    async def handshake(self, timeout_s: float | None = None) -> bool:
        """Send the hello; True if the device answered (it learns us its id and clock)."""
        inbox = await self._open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout_s or self.timeout_s)
        assert self._transport is not None
        self._transport.sendto(HELLO)
        while (data := await self._receive(inbox, deadline)) is not None:
            if len(data) == 32 and data[:2] == b"\x21\x31":
                self._device_id = data[8:12]
                self._stamp_base = int.from_bytes(data[12:16], "big")
                self._stamp_at = loop.time()
                return True
        return False

    def _next_id(self) -> int:
        self._id = self._id + 1 if self._id < 9999 else 1
        return self._id

    def _packet(self, request: dict[str, Any]) -> bytes:
        assert self._device_id is not None
        elapsed = asyncio.get_running_loop().time() - self._stamp_at
        stamp = self._stamp_base + int(elapsed) + 1
        return self._codec.encode(request, self._device_id, stamp)

    def _decode(self, data: bytes) -> dict[str, Any] | None:
        try:
            message = Message.parse(data, token=self.token)
        except construct.ChecksumError:
            raise RelayAuthError(
                f"{self.where} answered with a checksum that does not match our token: "
                "the token is wrong"
            ) from None
        except PayloadDecodeException:
            raise RelayBadReply(f"{self.where} sent a reply that is not JSON") from None
        except construct.ConstructError:
            return None  # not a miIO packet: ignore it
        except Exception as exc:  # noqa: BLE001 - python-miio's codec on untrusted bytes
            # python-miio 0.5.12 raises UnboundLocalError for a payload that decrypts
            # to bytes that are not UTF-8; whatever it raises, the reply is unusable.
            raise RelayBadReply(
                f"{self.where} sent a reply that cannot be decoded ({type(exc).__name__})"
            ) from None
        payload = message.data.value
        if not isinstance(payload, dict):
            raise RelayBadReply(f"{self.where} sent a reply that is not a JSON object")
        return payload

    async def send(self, method: str, params: Any) -> Any:
        """Call ``method``; return its ``result``. Raises a RelayError subclass."""
        async with self._lock:
            inbox = await self._open()
            loop = asyncio.get_running_loop()
            per_try = self.timeout_s / self.attempts
            handshakes_answered = 0
            for attempt in range(self.attempts):
                if self._device_id is None or attempt > 0:
                    if not await self.handshake(per_try):
                        continue
                    handshakes_answered += 1
                request_id = self._next_id()
                request = {"id": request_id, "method": method, "params": params}
                assert self._transport is not None
                self._transport.sendto(self._packet(request))
                deadline = loop.time() + per_try
                while (data := await self._receive(inbox, deadline)) is not None:
                    if len(data) == 32:
                        continue  # a late hello reply
                    payload = self._decode(data)
                    if payload is None or payload.get("id") != request_id:
                        continue  # a stale or foreign reply: keep waiting for ours
                    if "error" in payload:
                        error = payload["error"]
                        code = error.get("code") if isinstance(error, dict) else None
                        message = error.get("message") if isinstance(error, dict) else error
                        raise RelayRejected(
                            f"{self.where} refused {method}: {message} (code {code})",
                            _int_code(code),
                        )
                    if "result" not in payload:
                        raise RelayBadReply(f"{self.where} sent a reply with no result")
                    return payload["result"]
            if handshakes_answered >= self.attempts - 1:
                raise RelayAuthError(
                    f"{self.where} answers the handshake but not our {method} request: "
                    "the token is most likely wrong"
                )
            raise RelayUnreachable(f"no answer from {self.where} within {self.timeout_s:g} s")


@dataclass(frozen=True)
class MiotProperty:
    siid: int
    piid: int


@dataclass(frozen=True)
class MiioChannelMap:
    on: MiotProperty
    off_delay: MiotProperty | None = None
    # The off-delay value that means "no countdown" on this model (yeelink.switch.sw1:
    # -1), written with every plain set so a held state is not ended by a countdown
    # a pulse left running. None: the model's value is unknown; nothing is written.
    off_delay_disarm: int | None = None


class MiioRelay:
    """A Mi Home relay, MIoT (siid/piid per channel) or legacy (``set_power``)."""

    external_source = "mihome"

    def __init__(
        self,
        name: str,
        protocol: MiioProtocol,
        channels: dict[int, MiioChannelMap],
        legacy: bool = False,
        poll_s: float | None = 1.0,
    ) -> None:
        self.name = name
        self.protocol = protocol
        self.channels = channels
        self.legacy = legacy
        self.poll_s = poll_s

    def _map(self, channel: int) -> MiioChannelMap:
        try:
            return self.channels[channel]
        except KeyError:
            raise RelayRejected(f"relay {self.name!r} has no channel {channel}") from None

    def _item(self, channel: int, prop: MiotProperty, **value: Any) -> dict[str, Any]:
        return {"did": f"{self.name}-{channel}", "siid": prop.siid, "piid": prop.piid, **value}

    def can_pulse(self, channel: int) -> bool:
        return not self.legacy and self._map(channel).off_delay is not None

    async def set(self, channel: int, on: bool) -> None:
        if self.legacy:
            result = await self._send("set_power", ["on" if on else "off"])
            if result not in (["ok"], 0, [0]):  # firmwares ack in each of these forms
                raise RelayBadReply(f"relay {self.name!r}: set_power answered {result!r}")
            return
        mapping = self._map(channel)
        items = [self._item(channel, mapping.on, value=on)]
        if mapping.off_delay is not None and mapping.off_delay_disarm is not None:
            items.insert(0, self._item(channel, mapping.off_delay, value=mapping.off_delay_disarm))
        await self._set_items(items)

    async def pulse(self, channel: int, on: bool, hold_s: float) -> None:
        """Switch and let the device switch back after ``hold_s`` by itself."""
        mapping = self._map(channel)
        if self.legacy or mapping.off_delay is None or not on:
            raise RelayRejected(f"relay {self.name!r} channel {channel} has no off-delay")
        await self._set_items(
            [
                self._item(channel, mapping.off_delay, value=max(1, math.ceil(hold_s))),
                self._item(channel, mapping.on, value=True),
            ]
        )

    async def read(self, channel: int, fresh: bool = False) -> bool:  # always asks
        if self.legacy:
            result = await self._send("get_prop", ["power"])
            if not isinstance(result, list) or not result or result[0] not in ("on", "off"):
                raise RelayBadReply(f"relay {self.name!r}: get_prop answered {result!r}")
            return bool(result[0] == "on")
        mapping = self._map(channel)
        result = await self._send("get_properties", [self._item(channel, mapping.on)])
        item = self._check_items(result, 1)[0]
        value = item.get("value")
        if not isinstance(value, bool):
            raise RelayBadReply(f"relay {self.name!r}: channel {channel} reads {value!r}")
        return value

    async def info(self) -> dict[str, Any]:
        result = await self._send("miIO.info", [])
        if not isinstance(result, dict):
            raise RelayBadReply(f"relay {self.name!r}: miIO.info answered {result!r}")
        return result

    async def close(self) -> None:
        await self.protocol.close()

    async def _send(self, method: str, params: Any) -> Any:
        try:
            return await self.protocol.send(method, params)
        except RelayError as exc:
            exc.args = (f"relay {self.name!r}: {exc}",)
            raise

    async def _set_items(self, items: list[dict[str, Any]]) -> None:
        result = await self._send("set_properties", items)
        self._check_items(result, len(items))

    def _check_items(self, result: Any, count: int) -> list[dict[str, Any]]:
        if (
            not isinstance(result, list)
            or len(result) != count
            or not all(isinstance(i, dict) for i in result)
        ):
            raise RelayBadReply(f"relay {self.name!r}: unexpected reply {result!r}")
        for item in result:
            code = item.get("code")
            if code != 0 or isinstance(code, bool):  # JSON false is not the number 0
                raise RelayRejected(
                    f"relay {self.name!r}: siid {item.get('siid')} piid {item.get('piid')} "
                    f"refused with code {code}",
                    _int_code(code),
                )
        return result


def _int_code(code: Any) -> int | None:
    """A device's error code, if it is one (RelayRejected.code is an int or None)."""
    return code if isinstance(code, int) and not isinstance(code, bool) else None
