"""The local control socket: newline-delimited JSON over a Unix socket.

One request line per connection; one reply line (``events --follow`` keeps streaming
``{"event": ...}`` lines until the client hangs up). The socket is created mode 0600:
only the daemon's own user may send commands, which is what makes ``cli`` a trusted
source for unlock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stove_ctl.core.commands import parse_command, read_json
from stove_ctl.core.controller import Controller, Wait
from stove_ctl.core.events import Event, EventLog
from stove_ctl.errors import CommandError, DaemonNotRunning, StoveCtlError
from stove_ctl.surfaces.command_ids import CommandIds, fingerprint
from stove_ctl.surfaces.text import burner_vocabulary, parse_text

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024


class EventsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str
    limit: int = Field(50, ge=1, le=10_000)
    burner: str | None = None
    follow: bool = False


class ControlServer:
    def __init__(self, controller: Controller, events: EventLog, path: Path) -> None:
        self.controller = controller
        self.events = events
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[Any]] = set()
        self.ids = CommandIds()  # the socket's own command ids (invariant 5)
        # More actions by name (commissioning, the self-test): request -> reply.
        self.actions: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {}

    async def start(self) -> None:
        """Listen on the socket. The daemon holds the socket's instance lock already
        (stove_ctl/instance.py), so a socket file found here was left by a daemon that
        was killed. Anything else in its place is refused in one line, never removed."""
        claim_socket(self.path)
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST_BYTES
            )
            os.chmod(self.path, 0o600)
        except OSError as exc:
            raise StoveCtlError(f"cannot listen on {self.path}: {exc.strerror or exc}") from None
        finally:
            os.umask(old_umask)

    async def stop(self) -> None:
        if self._server is None:
            return  # never listened: the socket there is not ours to remove
        self._server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                await _send(writer, _error("too_large", "request too large"))
                return
            if not line:
                return
            await self._handle(line, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _handle(self, line: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            request = read_json(line, "request")
        except CommandError as exc:
            await _send(writer, _error(exc.code, exc.message))
            return
        if not isinstance(request, dict):
            await _send(writer, _error("bad_command", "request must be a JSON object"))
            return
        if request.get("action") == "events":
            await self._events(request, writer)
            return
        action = (
            self.actions.get(request["action"]) if isinstance(request.get("action"), str) else None
        )
        if action is not None:
            await _send(writer, await action(request))
            return
        if request.get("action") == "say":
            await _send(writer, await run_text(self.controller, request.get("text")))
            return
        wait = request.pop("wait", "done")
        timeout = request.pop("timeout_s", None)
        if wait not in ("accepted", "confirmed", "done") or not (
            timeout is None or (isinstance(timeout, int | float) and 0 < timeout <= 3600)
        ):
            await _send(writer, _error("bad_command", "bad wait or timeout_s"))
            return

        async def work() -> dict[str, Any]:
            try:
                command = parse_command(request, source="cli")
                return await self.controller.execute(command, wait=_wait(wait), timeout_s=timeout)
            except CommandError as exc:
                return _error(exc.code, exc.message)

        given_id = request.get("id") if isinstance(request.get("id"), str) else None
        await _send(writer, await self.ids.once(given_id, fingerprint("cmd", request), work))

    async def _events(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        try:
            query = EventsQuery.model_validate(request)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            await _send(writer, _error("bad_command", f"{field}: {first['msg']}"))
            return
        burner_keys: set[str] | None = None
        if query.burner is not None:
            try:
                burner_keys = {b.spec.key for b in self.controller.resolve(query.burner)}
            except CommandError as exc:
                await _send(writer, _error(exc.code, exc.message))
                return
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=10_000)
        unsubscribe = self.events.subscribe(lambda e: _offer(queue, e)) if query.follow else None
        try:
            shown = await asyncio.to_thread(self.events.query, query.limit, burner_keys)
            last_seq = shown[-1].seq if shown else 0
            await _send(
                writer,
                {"ok": True, "events": [e.model_dump() for e in shown]},
            )
            while unsubscribe is not None:
                event = await queue.get()
                if event.seq <= last_seq:
                    continue
                if burner_keys is None or event.burner in burner_keys:
                    await _send(writer, {"event": event.model_dump()})
        finally:
            if unsubscribe is not None:
                unsubscribe()


async def run_text(controller: Controller, text: Any, **extra: Any) -> dict[str, Any]:
    """A text command (source ``voice``), from ``stove-ctl say`` or ``…/cmd/text``."""
    if not isinstance(text, str):
        return _error("bad_command", "text must be a string")
    try:
        understood = parse_text(
            text, vocabulary(controller, extra.get("stove")), now=controller.local_now()
        )
        command = parse_command({**understood, **extra}, source="voice")
    except CommandError as exc:
        # Refused before it became a command: recorded here (execute records its own).
        controller.events.emit(
            "rejected",
            controller.clock.time(),
            source="voice",
            command_id=extra["id"][:64] if isinstance(extra.get("id"), str) else None,
            detail={
                "text": text[:200],
                "code": exc.code,
                "error": exc.message,
                **({"stove": extra["stove"]} if isinstance(extra.get("stove"), str) else {}),
            },
        )
        return {**_error(exc.code, exc.message), "text": text}
    try:
        reply = await controller.execute(command, wait="confirmed")
    except CommandError as exc:
        return {**_error(exc.code, exc.message), "text": text}
    return {**reply, "text": text, "understood": understood}


def vocabulary(controller: Controller, stove: str | None) -> dict[str, str]:
    """Words that name each burner (of ``stove`` only, if given), for text commands."""
    return burner_vocabulary(
        (s.key, s.id, s.name, list(s.aliases)) for s in controller.specs(stove)
    )


def _offer(queue: asyncio.Queue[Event], event: Event) -> None:
    with contextlib.suppress(asyncio.QueueFull):
        queue.put_nowait(event)  # a follower too slow to read loses events, not the daemon


def _wait(value: str) -> Wait:
    if value == "accepted":
        return "accepted"
    if value == "confirmed":
        return "confirmed"
    return "done"


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "code": code, "error": message}


async def _send(writer: asyncio.StreamWriter, payload: dict[str, Any]) -> None:
    writer.write(json.dumps(payload, ensure_ascii=False).encode() + b"\n")
    await writer.drain()


def claim_socket(path: Path) -> None:
    """Remove a socket a killed daemon left; refuse anything else in its place.
    The daemon calls this before it touches any relay."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        problem = "is not a socket"
    elif info.st_uid != os.getuid():
        problem = f"belongs to another user (uid {info.st_uid})"
    elif _answers(path):
        problem = "has something else listening on it"
    else:
        try:
            path.unlink()
            return
        except OSError as exc:
            problem = f"cannot be removed ({exc.strerror or exc})"
    raise StoveCtlError(
        f"{path} {problem}; refusing to replace it: remove it, or set socket: in the config"
    )


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


# -- client side (used by the CLI; plain blocking sockets) -------------------------


def _connect(path: Path, timeout_s: float) -> socket.socket:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DaemonNotRunning(f"no daemon is running (no control socket at {path})") from None
    if not stat.S_ISSOCK(info.st_mode):
        raise DaemonNotRunning(f"{path} is not a control socket")
    if info.st_uid != os.getuid():
        raise DaemonNotRunning(f"{path} belongs to another user; refusing to use it")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise DaemonNotRunning(
            f"no daemon is running (nothing answers on {path}; it was left by a stopped daemon)"
        ) from None
    return sock


def _lines(sock: socket.socket) -> Iterator[dict[str, Any]]:
    buffer = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            if buffer.strip():
                yield json.loads(buffer)
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


def request(path: Path, payload: dict[str, Any], timeout_s: float = 120.0) -> dict[str, Any]:
    """Send one request and return the reply."""
    with _connect(path, timeout_s) as sock:
        try:
            sock.sendall(json.dumps(payload).encode() + b"\n")
            for reply in _lines(sock):
                return reply
        except (ConnectionResetError, BrokenPipeError):
            pass
    raise DaemonNotRunning(
        "the daemon closed the connection without answering (stopping or reloading?)"
    )


def stream(path: Path, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Send one request and yield every reply line until the daemon hangs up."""
    with _connect(path, 30.0) as sock:
        sock.sendall(json.dumps(payload).encode() + b"\n")
        sock.settimeout(None)
        yield from _lines(sock)
