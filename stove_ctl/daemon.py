"""The daemon process: build everything from config, serve until told to stop.

``SIGTERM``/``SIGINT`` stop it. ``SIGHUP`` reloads the config: the new file is read and
checked first, and on any error the daemon logs it, records a ``reload`` event and
carries on with the config it has. A good one is taken up the way a restart would,
without leaving the process: shutoffs in progress finish, then everything is built
again from the new config. Locks (state.db) and timers (timers.db) are on disk and
come back with it; burners added start from their relays' state, burners removed
are no longer driven (their saved locks stay in state.db, in case they come back).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from stove_ctl.clock import Clock, RealClock
from stove_ctl.config import Config
from stove_ctl.core.events import Event
from stove_ctl.errors import StoveCtlError
from stove_ctl.factory import build
from stove_ctl.instance import single_instance
from stove_ctl.surfaces import checks
from stove_ctl.surfaces.control import ControlServer, claim_socket
from stove_ctl.surfaces.mqtt_api import MqttApi

SHOWN = 12  # burners named in the "ready" line; a building's are counted
log = logging.getLogger("stove_ctl")
# Events worth a line in the process log (a journal, a terminal), beside the event log.
LOGGED = {
    "cut_confirmed",
    "lock",
    "unlock",
    "lock_reasserted",
    "alarm",
    "warning",
    "recovered",
    "flame_out_confirmed",
    "timer_fired",
}

Loader = Callable[[], Config]


async def serve(config: Config, clock: Clock | None = None, reload: Loader | None = None) -> None:
    """Run until SIGTERM or SIGINT; on SIGHUP, take up ``reload()``'s config."""
    clock = clock or RealClock()
    loop = asyncio.get_running_loop()
    stop, hup = asyncio.Event(), asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hup.set)  # never the default: that kills
    with single_instance(config.state_dir, config.control_socket()):
        claim_socket(config.control_socket())  # before anything is built or touched
        while True:
            config_or_none = await _run(config, clock, stop, hup, reload)
            if config_or_none is None:
                break
            config = config_or_none
    log.info("stopped")


async def _run(
    config: Config, clock: Clock, stop: asyncio.Event, hup: asyncio.Event, reload: Loader | None
) -> Config | None:
    """Serve ``config`` until stopped (None) or until a good config is loaded on SIGHUP
    (returned, after everything built from ``config`` has stopped)."""
    runtime = build(config, clock)
    server = ControlServer(runtime.controller, runtime.events, config.control_socket())
    if runtime.self_test is not None:  # commissioning and the self-test
        server.actions.update(checks.actions(runtime.controller, runtime.self_test))
    api = (
        MqttApi(
            runtime.controller,
            runtime.events,
            config.mqtt,
            config.stoves,
            clock,
            config.state_dir,
        )
        if config.mqtt is not None
        else None
    )
    page = None
    if config.web is not None:  # aiohttp is loaded only for the page
        from stove_ctl.surfaces.web.server import WebServer

        page = WebServer(runtime.controller, runtime.events, config.web, clock)
    unsubscribe = runtime.events.subscribe(_log_event)
    pruning = asyncio.ensure_future(runtime.events.keep(clock, config.events.keep_days))
    new_config: Config | None = None
    try:
        await runtime.start()
        await runtime.controller.start()
        if runtime.timers is not None:
            runtime.timers.start()
        if runtime.rules is not None:
            runtime.rules.start()
        if runtime.self_test is not None:
            runtime.self_test.start()
        await server.start()
        if page is not None:
            await page.start()  # a port in use is logged; the daemon runs on without it
        if api is not None:
            await api.start()
        keys = [b.spec.key for b in runtime.controller.burners()]
        shown = ", ".join(keys[:SHOWN]) + (
            f", … ({len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
        )
        log.info(
            "stove-ctl ready: %d burner(s) [%s]; control socket %s; state in %s",
            len(keys),
            shown,
            config.control_socket(),
            config.state_dir,
        )
        while new_config is None:
            waits = [asyncio.ensure_future(e.wait()) for e in (stop, hup)]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            if stop.is_set():
                log.info("stopping: letting shutoffs in progress finish")
                break
            hup.clear()  # here, not before waiting: a SIGHUP during start-up is kept
            new_config = _reloaded(config, reload, runtime.events.emit, clock)
    finally:
        pruning.cancel()
        if page is not None:
            await page.stop()
        await server.stop()
        if runtime.self_test is not None:
            await runtime.self_test.stop()
        if runtime.timers is not None:
            runtime.timers.stop()
        if runtime.rules is not None:
            await runtime.rules.stop()
        await runtime.controller.stop()
        if api is not None:
            await api.stop()  # after the controller: its last events and state go out
        unsubscribe()
        await runtime.close()
    return new_config


def _reloaded(
    config: Config, reload: Loader | None, emit: Callable[..., object], clock: Clock
) -> Config | None:
    """The new config if it is good and may be taken up in this process; else None,
    with the reason logged and recorded."""
    if reload is None:
        log.warning("SIGHUP: no config file to reload; carrying on")
        return None
    try:
        new = reload()
        if new.state_dir != config.state_dir or new.control_socket() != config.control_socket():
            raise StoveCtlError(
                "state_dir and socket cannot change on a reload; restart the daemon for that"
            )
    except StoveCtlError as exc:
        log.error("reload refused, carrying on with the running config: %s", exc)
        emit("reload", clock.time(), source="signal", detail={"ok": False, "error": str(exc)})
        return None
    before = {f"{s.id}/{b.id}" for s in config.stoves for b in s.burners}
    after = {f"{s.id}/{b.id}" for s in new.stoves for b in s.burners}
    added, removed = sorted(after - before), sorted(before - after)
    log.info(
        "reloading the config: %d burner(s) added %s, %d removed %s",
        len(added),
        added,
        len(removed),
        removed,
    )
    emit(
        "reload",
        clock.time(),
        source="signal",
        detail={"ok": True, "added": added, "removed": removed},
    )
    logging.getLogger().setLevel(new.log_level.upper())
    return new


def _log_event(event: Event) -> None:
    """One plain line in the process log per shutoff, lock, unlock, alarm, warning."""
    if event.kind not in LOGGED:
        return
    parts = [event.kind.replace("_", " ")]
    if event.burner:
        parts.insert(0, f"{event.burner}:")
    if event.source:
        parts.append(f"by {event.source}")
    if event.command_id:
        parts.append(f"(id {event.command_id})")
    if event.latency_ms is not None:
        parts.append(f"in {event.latency_ms:.0f} ms")
    detail = {k: v for k, v in event.detail.items() if k not in ("stove", "burners")}
    if detail:
        parts.append("— " + ", ".join(f"{k}: {v}" for k, v in detail.items()))
    level = logging.WARNING if event.kind in ("alarm", "warning") else logging.INFO
    log.log(level, "%s", " ".join(parts))
