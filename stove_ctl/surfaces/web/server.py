"""The kitchen page's server (docs/WEB.md): aiohttp, on the daemon's own event loop.

A translator only, like the control socket: every command goes through
``parse_command`` and ``controller.execute``, under the trust rules, with its own
command ids (SAFETY invariant 5). The page is never on the shutoff path: a command
from it runs as the socket's do, the live stream writes through a bounded queue per
client (a client that falls behind is dropped, never waited for), and a port that
cannot be had is one line in the log while the daemon runs on without the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from stove_ctl.clock import Clock
from stove_ctl.config import WebConfig
from stove_ctl.core.commands import RESTORE_ACTIONS, parse_command, read_json
from stove_ctl.core.controller import Controller
from stove_ctl.core.events import Event, EventLog
from stove_ctl.errors import CommandError
from stove_ctl.surfaces.command_ids import CommandIds, fingerprint
from stove_ctl.surfaces.web import auth
from stove_ctl.surfaces.web.timeline import Readings, shutoffs

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
FILES = {
    "/": ("index.html", "text/html"),
    "/app.js": ("app.js", "text/javascript"),
    "/style.css": ("style.css", "text/css"),
}
MAX_BODY = 4096  # as an MQTT command
COMMAND_TIMEOUT_S = 10.0
MAX_STREAMS = 16  # live pages at once; more get 503
QUEUE = 256  # messages waiting for one live page; a page further behind is dropped
WRITE_TIMEOUT_S = 5.0  # a page that takes longer than this to take a message is dropped
KEEPALIVE_S = 15.0
STATUS_CHECK_S = 1.0  # flame changes are not events: look for state changes this often
MAX_EVENTS = 1000
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
}
STATUS_CODES = {
    "too_large": 413,
    "unsupported_media_type": 415,
    "not_authorized": 401,
    "cross_origin": 403,
    "not_local": 401,
    "not_allowed": 403,
    "stale": 403,
    "busy": 503,
    "not_found": 404,
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(code: str, message: str, command_id: str | None = None) -> dict[str, Any]:
    reply: dict[str, Any] = {"ok": False, "code": code, "error": message}
    if command_id is not None:
        reply["id"] = command_id
    return reply


def _reply(payload: dict[str, Any]) -> web.Response:
    status = 200
    if payload.get("ok") is False:
        status = STATUS_CODES.get(str(payload.get("code")), 400)
    return web.json_response(
        payload, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False)
    )


def _sse(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class _Stream:
    """One live page: what is waiting to be written to it, and whether it fell behind."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=QUEUE)
        self.behind = False

    def offer(self, message: bytes) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.behind = True  # dropped at its next message: it reconnects and reloads


class WebServer:
    def __init__(
        self, controller: Controller, events: EventLog, config: WebConfig, clock: Clock
    ) -> None:
        self.controller = controller
        self.events = events
        self.config = config
        self.clock = clock
        self.token = config.token.get_secret_value() if config.token is not None else None
        self.ids = CommandIds()  # the page's own command ids (invariant 5)
        self.readings = Readings(controller.specs(), clock)
        self.streams: set[_Stream] = set()
        self._stream_tasks: set[asyncio.Task[Any]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._last_status: Any = None
        self._status_due = False
        self.url: str | None = None

    # -- life cycle --------------------------------------------------------------

    async def start(self) -> None:
        """Listen; on failure say so in one line and carry on without the page."""
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        app.router.add_get("/", self._file)
        app.router.add_get("/app.js", self._file)
        app.router.add_get("/style.css", self._file)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/timers", self._timers)
        app.router.add_get("/api/shutoffs", self._shutoffs)
        app.router.add_get("/api/stream", self._stream)
        app.router.add_post("/api/command", self._command)
        app.router.add_post("/api/login", self._login)
        app.router.add_post("/api/logout", self._logout)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            log.error(
                "kitchen page: cannot listen on %s:%d (%s); the daemon runs on without it",
                self.config.host,
                self.config.port,
                exc.strerror or exc,
            )
            await runner.cleanup()
            return
        self._runner = runner
        self.url = f"http://{self.config.host}:{self.config.port}/"
        self._unsubscribe = self.events.subscribe(self._on_event)
        self._tasks = [
            asyncio.ensure_future(self.readings.run()),
            asyncio.ensure_future(self._tick()),
        ]
        if self.token is None:
            log.info(
                "kitchen page: no web.token_file: only shutoffs from this machine; "
                "unlock, cancel and other hosts need a token"
            )
        log.info("kitchen page on %s", self.url)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in [*self._tasks, *self._stream_tasks]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._stream_tasks, return_exceptions=True)
        self._tasks = []
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- who may -----------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Cross-origin refused; the API only for local or authenticated requests."""
        if auth.foreign_origin(request.headers.get("Origin"), request.scheme, request.host):
            return _reply(_error("cross_origin", "refused: a request from another site"))
        request["authed"] = auth.authenticated(
            self.token, request.headers.get("Authorization"), request.cookies.get(auth.COOKIE)
        )
        request["local"] = auth.local(request.remote, request.host, self.config.host)
        api = request.path.startswith("/api/") and request.path != "/api/login"
        if api and not (request["local"] or request["authed"]):
            return _reply(_error("not_local", "sign in with the page's token"))
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # no such page, wrong method: JSON on the API
            if not request.path.startswith("/api/"):
                raise
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "bad_request")
            response = _reply(_error(code, exc.reason))
            response.set_status(exc.status)
        if not response.prepared:
            response.headers.update(HEADERS)
        return response

    async def _login(self, request: web.Request) -> web.StreamResponse:
        data = await self._json_body(request)
        if isinstance(data, web.Response):
            return data
        token = data.get("token") if isinstance(data, dict) else None
        if self.token is None or not isinstance(token, str) or not auth.same(token, self.token):
            return _reply(_error("not_authorized", "wrong token"))
        return self._signed_in(_reply({"ok": True}))

    def _signed_in(self, response: web.Response) -> web.Response:
        """``response`` with the session cookie for the current token."""
        assert self.token is not None
        response.set_cookie(
            auth.COOKIE,
            auth.session_value(self.token),
            httponly=True,
            samesite="Strict",
            max_age=365 * 86400,
            path="/",
        )
        return response

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        response = _reply({"ok": True})
        response.del_cookie(auth.COOKIE, path="/")
        return response

    # -- the page ----------------------------------------------------------------

    async def _file(self, request: web.Request) -> web.StreamResponse:
        """The page's three files, from the package; ``/?token=…`` signs in first."""
        token = request.query.get("token")
        if request.path == "/" and token is not None:
            response = web.Response(status=303, headers={"Location": "/"})  # out of the URL
            if self.token is not None and auth.same(token, self.token):
                return self._signed_in(response)
            return response
        name, content_type = FILES[request.path]
        body = await asyncio.to_thread((STATIC / name).read_bytes)
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    # -- reads -------------------------------------------------------------------

    def _status_doc(self) -> dict[str, Any]:
        return {**self.controller.status(), "now": self.clock.time()}

    async def _status(self, request: web.Request) -> web.StreamResponse:
        return _reply({**self._status_doc(), "authenticated": request["authed"]})

    def _query(self, request: web.Request, default: int) -> tuple[int, set[str] | None]:
        """``n`` and the keys of ``burner``, from the query. Raises CommandError."""
        try:
            limit = int(request.query.get("n", default))
        except ValueError:
            raise CommandError("bad_command", "n: a whole number, 1 to 1000") from None
        if not 1 <= limit <= MAX_EVENTS:
            raise CommandError("bad_command", "n: a whole number, 1 to 1000")
        burner = request.query.get("burner") or None
        keys = None if burner is None else {b.spec.key for b in self.controller.resolve(burner)}
        return limit, keys

    async def _events(self, request: web.Request) -> web.StreamResponse:
        try:
            limit, keys = self._query(request, 50)
        except CommandError as exc:
            return _reply(_error(exc.code, exc.message))
        shown = await asyncio.to_thread(self.events.query, limit, keys)
        return _reply({"ok": True, "events": [e.model_dump() for e in shown]})

    async def _shutoffs(self, request: web.Request) -> web.StreamResponse:
        try:
            limit, keys = self._query(request, 10)
        except CommandError as exc:
            return _reply(_error(exc.code, exc.message))
        # A shutoff is a handful of events: the last MAX_EVENTS hold the latest ones.
        # Its first step, the command, names no burner: it is looked for among all.
        shown = await asyncio.to_thread(self.events.query, MAX_EVENTS, keys)
        if keys is not None:
            every = await asyncio.to_thread(self.events.query, MAX_EVENTS, None)
            seqs = {e.seq for e in shown}
            shown = sorted(
                [*shown, *(e for e in every if e.burner is None and e.seq not in seqs)],
                key=lambda e: e.seq,
            )
        return _reply({"ok": True, "shutoffs": shutoffs(shown, limit, self.readings)})

    async def _timers(self, request: web.Request) -> web.StreamResponse:
        data = {"action": "timers", "burner": request.query.get("burner") or "all"}
        return _reply(await self._execute(data, None))

    # -- commands ----------------------------------------------------------------

    async def _json_body(self, request: web.Request) -> Any:
        """The request's JSON, or the error response for a body that is not."""
        if request.content_type != "application/json":
            return _reply(_error("unsupported_media_type", "send application/json"))
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _reply(_error("too_large", f"body larger than {MAX_BODY} bytes"))
        body = b""
        while len(body) <= MAX_BODY:
            chunk = await request.content.read(MAX_BODY + 1 - len(body))
            if not chunk:
                break
            body += chunk
        if len(body) > MAX_BODY:
            return _reply(_error("too_large", f"body larger than {MAX_BODY} bytes"))
        try:
            return read_json(body, "command")
        except CommandError as exc:
            return _reply(_error(exc.code, exc.message))

    async def _command(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/command``: the MQTT command JSON, e.g. ``{"action": "shutoff",
        "burner": "left"}``; restore-direction actions need the token and ``ts``."""
        data = await self._json_body(request)
        if isinstance(data, web.Response):
            return data
        if not isinstance(data, dict):
            return _reply(_error("bad_command", "a command must be a JSON object"))
        given_id = data.get("id") if isinstance(data.get("id"), str) else None
        if data.get("action") in RESTORE_ACTIONS and not request["authed"]:
            message = f"{data['action']} needs the page's token: sign in"
            return _reply(_error("not_authorized", message, given_id))
        return _reply(await self._execute(data, given_id))

    async def _execute(self, data: dict[str, Any], given_id: str | None) -> dict[str, Any]:
        # Set here, whatever the sender wrote: it came over the network, not retained,
        # for any stove (SAFETY invariant 7: a restore then needs a fresh ts).
        command_data = {**data, "retained": False, "remote": True, "stove": None}
        try:
            command = parse_command(command_data, source="web")
        except CommandError as exc:
            return _error(exc.code, exc.message, given_id)

        async def work() -> dict[str, Any]:
            try:
                result = await self.controller.execute(
                    command, wait="confirmed", timeout_s=COMMAND_TIMEOUT_S
                )
            except CommandError as exc:
                return _error(exc.code, exc.message, given_id)
            return {"id": command.id, **result}

        return await self.ids.once(given_id, fingerprint("cmd", data), work)

    # -- the live stream ---------------------------------------------------------

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/stream``: server-sent events, ``status`` (the status document,
        when it changes) and ``event`` (each new event)."""
        if len(self.streams) >= MAX_STREAMS:
            return _reply(_error("busy", f"at most {MAX_STREAMS} live pages at once"))
        response = web.StreamResponse(
            headers={**HEADERS, "Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        stream = _Stream()
        task = asyncio.current_task()
        assert task is not None
        self._stream_tasks.add(task)
        self.streams.add(stream)
        try:
            await response.prepare(request)
            stream.offer(_sse("status", self._status_doc()))
            while not stream.behind:
                try:
                    message = await asyncio.wait_for(stream.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    message = b": still here\n\n"
                if stream.behind:
                    break
                await asyncio.wait_for(response.write(message), WRITE_TIMEOUT_S)
        except (ConnectionError, TimeoutError, asyncio.CancelledError):
            pass  # gone, too slow, or the daemon stops: the page reconnects
        finally:
            self.streams.discard(stream)
            self._stream_tasks.discard(task)
        with contextlib.suppress(Exception):
            if request.transport is not None:
                request.transport.close()
        return response

    def _on_event(self, event: Event) -> None:
        """Called in the event log's delivery (after the cuts are confirmed): O(pages),
        never waits."""
        if not self.streams:
            return
        message = _sse("event", event.model_dump())
        for stream in list(self.streams):
            stream.offer(message)
        self._status_soon()

    def _status_soon(self) -> None:
        if self._status_due:
            return
        self._status_due = True
        with contextlib.suppress(RuntimeError):  # not on the loop: the tick will do
            asyncio.get_running_loop().call_soon(self._push_status)

    def _push_status(self) -> None:
        self._status_due = False
        if not self.streams:
            self._last_status = None
            return
        key = tuple(self.controller.fingerprint(s.stove) for s in self._stoves())
        if key == self._last_status:
            return
        self._last_status = key
        message = _sse("status", self._status_doc())
        for stream in list(self.streams):
            stream.offer(message)

    def _stoves(self) -> list[Any]:
        seen: dict[str, Any] = {}
        for spec in self.controller.specs():
            seen.setdefault(spec.stove, spec)
        return list(seen.values())

    async def _tick(self) -> None:
        while True:
            await self.clock.sleep(STATUS_CHECK_S)
            self._push_status()
