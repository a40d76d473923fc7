"""Control-socket actions for commissioning and the self-test.

- ``{"action": "self_test", "burner": B}``: self-test B now (no burner: every burner),
  the way the schedule does; the reply carries each burner's result.
- ``{"action": "commission_info", "burner": B}``: what ``stove-ctl commission`` needs
  to know of one burner: its relay and channel, wiring, pulse, flame input (``measures``
  a thermocouple reading, ``on_off``, or ``none``), the flame and reading now, and its
  stove's other burners with theirs.
- ``{"action": "commission_record", "burner": B, "result": …, …}``: keep the
  commissioning record (``stove_ctl.core.records.CommissioningReport``); the daemon adds
  the date, wiring, relay and pulse.

Bad input gets ``ok: false`` with the reason, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from stove_ctl.core.burner import Burner
from stove_ctl.core.controller import Controller
from stove_ctl.core.records import parse_report
from stove_ctl.core.selftest import SelfTest
from stove_ctl.errors import CommandError

Action = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def actions(controller: Controller, self_test: SelfTest) -> dict[str, Action]:
    """The actions above, by name, for ``ControlServer.actions``."""

    def one(request: dict[str, Any]) -> Burner:
        name = request.get("burner")
        if not isinstance(name, str) or not name:
            raise CommandError("missing_burner", "say which burner")
        burners = controller.resolve(name)
        if len(burners) != 1:
            raise CommandError("bad_command", f"{name!r} is more than one burner: name one")
        return burners[0]

    def fields(request: dict[str, Any], allowed: set[str]) -> None:
        unknown = sorted(set(request) - allowed - {"action"})
        if unknown:
            raise CommandError("bad_command", f"unknown field {unknown[0]!r}")

    async def run_self_test(request: dict[str, Any]) -> dict[str, Any]:
        try:
            fields(request, {"burner"})
            name = request.get("burner")
            if name is not None and not isinstance(name, str):
                raise CommandError("bad_command", "burner must be a string")
            targets = controller.resolve(name)
        except CommandError as exc:
            return _error(exc.code, exc.message)
        results = await self_test.run(targets, "cli")
        ok = all(r["result"] != "failed" for r in results)
        return {"ok": ok, "action": "self_test", "burners": results}

    async def info(request: dict[str, Any]) -> dict[str, Any]:
        try:
            fields(request, {"burner"})
            burner = one(request)
        except CommandError as exc:
            return _error(exc.code, exc.message)
        spec = burner.spec
        others = [b for b in controller.burners() if b.spec.stove == spec.stove and b is not burner]
        return {
            "ok": True,
            "action": "commission_info",
            **_flame(burner),
            "relay": {"device": spec.relay.name, "channel": spec.channel},
            "wiring": spec.wiring.value,
            "pulse_s": spec.pulse_s,
            "mode": burner.mode.value,
            "circuit": {None: "unknown", True: "cut", False: "intact"}[burner.relay_cut],
            "others": [_flame(b) for b in others],
        }

    async def record(request: dict[str, Any]) -> dict[str, Any]:
        try:
            burner = one(request)
            report = parse_report(request)
        except CommandError as exc:
            return _error(exc.code, exc.message)
        except ValueError as exc:
            return _error("bad_command", str(exc))
        try:
            kept = self_test.record_commissioning(burner, report)
        except OSError as exc:
            return {
                **_error("not_saved", f"the record could not be written: {exc}"),
                "record": self_test.commissioning.get(burner.spec.key),
            }
        return {"ok": True, "action": "commission_record", "record": kept}

    return {"self_test": run_self_test, "commission_info": info, "commission_record": record}


def _flame(burner: Burner) -> dict[str, Any]:
    """A burner's name, relay channel and flame input, and what it reads now."""
    spec = burner.spec
    flame = spec.flame.flame() if spec.flame is not None else None
    reading = spec.flame.reading() if spec.flame is not None else None
    kind = "none" if spec.flame is None else ("measures" if reading is not None else "on_off")
    return {
        "burner": spec.key,
        "id": spec.id,
        "name": spec.name or spec.id,
        "channel": spec.channel,
        "flame_input": kind,
        "flame": "unknown" if flame is None else ("lit" if flame else "out"),
        "mv": reading.mv if reading is not None else None,
    }


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "code": code, "error": message}
