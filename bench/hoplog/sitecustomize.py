"""Loaded into the daemon and bench/bare.py by bench/hops.py (through PYTHONPATH):
appends to ``$STOVE_BENCH_HOPLOG/<pid>.log`` a line per event, on the system-wide
monotonic clock the bench process shares: ``recv T`` when paho hands a ``…/cmd``
message to its callback, ``power T`` when a ``POWER ON`` has been written to the
broker socket, and (event loop only) ``idle T`` when the loop next waits for I/O
after that write; ``gc T MS`` for every garbage collection (start, duration in ms)."""

from __future__ import annotations

import os
import time
from typing import Any

_dir = os.environ.get("STOVE_BENCH_HOPLOG")
if _dir:
    import gc
    import selectors

    import paho.mqtt.client as paho

    _out = open(os.path.join(_dir, f"{os.getpid()}.log"), "a", buffering=1)  # noqa: SIM115
    _armed = [False]
    _on_message = paho.Client._handle_on_message
    _send = paho.Client._sock_send
    _select = selectors.EpollSelector.select

    def _handle_on_message(self: Any, message: Any) -> Any:
        if message.topic.endswith("/cmd"):
            _out.write(f"recv {time.monotonic()}\n")
        return _on_message(self, message)

    def _sock_send(self: Any, data: Any) -> Any:
        sent = _send(self, data)
        packet = bytes(data)
        if b"/POWER" in packet and packet.endswith(b"ON"):
            _out.write(f"power {time.monotonic()}\n")
            _armed[0] = True
        return sent

    def _select_logged(self: Any, timeout: Any = None) -> Any:
        if _armed[0]:
            _armed[0] = False
            _out.write(f"idle {time.monotonic()}\n")
        return _select(self, timeout)

    _gc_start = [0.0]

    def _gc_logged(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            _gc_start[0] = time.monotonic()
        else:
            t = _gc_start[0]
            _out.write(f"gc {t} {(time.monotonic() - t) * 1e3:.3f}\n")

    gc.callbacks.append(_gc_logged)
    paho.Client._handle_on_message = _handle_on_message  # type: ignore[method-assign]
    paho.Client._sock_send = _sock_send  # type: ignore[method-assign]
    selectors.EpollSelector.select = _select_logged  # type: ignore[method-assign]
