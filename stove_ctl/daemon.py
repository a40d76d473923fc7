"""The daemon process: build everything from config, serve until told to stop."""

from __future__ import annotations

import asyncio
import logging
import signal

from stove_ctl.clock import Clock, RealClock
from stove_ctl.config import Config
from stove_ctl.factory import build
from stove_ctl.instance import single_instance
from stove_ctl.surfaces.control import ControlServer, claim_socket
from stove_ctl.surfaces.mqtt_api import MqttApi

SHOWN = 12  # burners named in the "ready" line; a building's are counted
log = logging.getLogger("stove_ctl")


async def serve(config: Config, clock: Clock | None = None) -> None:
    """Run until SIGTERM or SIGINT."""
    clock = clock or RealClock()
    with single_instance(config.state_dir, config.control_socket()):
        claim_socket(config.control_socket())  # before anything is built or touched
        runtime = build(config, clock)
        server = ControlServer(runtime.controller, runtime.events, config.control_socket())
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
        try:
            await runtime.start()
            await runtime.controller.start()
            if runtime.timers is not None:
                runtime.timers.start()
            if runtime.rules is not None:
                runtime.rules.start()
            await server.start()
            if api is not None:
                await api.start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
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
            await stop.wait()
            log.info("stopping: letting shutoffs in progress finish")
        finally:
            await server.stop()
            if runtime.timers is not None:
                runtime.timers.stop()
            if runtime.rules is not None:
                await runtime.rules.stop()
            await runtime.controller.stop()
            if api is not None:
                await api.stop()  # after the controller: its last events and state go out
            await runtime.close()
        log.info("stopped")
