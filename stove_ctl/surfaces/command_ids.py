"""Command ids, per channel (DESIGN invariant 5).

A sender that gives its command an ``id`` may deliver it again (MQTT QoS 1 does, and
so does a client that retries after a lost reply): the command is then done once and
every delivery gets its one answer. An id is only ever that command's: the same id on
the same channel with a different command is refused as ``duplicate_id``, never
answered with the first command's result. A refused command (a reply with a ``code``)
changed nothing and leaves its id free. Each channel (a stove's MQTT topics, the
control socket) keeps its own ids, so one stove's ids never answer another's.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

REMEMBERED = 1000  # ids kept per channel, oldest forgotten first


def fingerprint(kind: str, data: dict[str, Any]) -> str:
    """What makes two deliveries the same command: the topic kind and every field."""
    return kind + json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)


class CommandIds:
    """The answers to the last REMEMBERED commands that carried an id, on one channel."""

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self._remembered = remembered
        self._answers: OrderedDict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = OrderedDict()

    async def once(
        self,
        command_id: str | None,
        same: str,
        work: Callable[[], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """Run ``work`` for a new id; give a redelivery (same id, same ``same``) the
        answer of the first delivery, waiting for it if it is still being worked on."""
        if command_id is None:
            return await work()
        seen = self._answers.get(command_id)
        if seen is not None:
            first, answer = seen
            if first != same:
                return {
                    "id": command_id,
                    "ok": False,
                    "code": "duplicate_id",
                    "error": f"id {command_id!r} was already used for a different command; "
                    "give every command an id of its own",
                }
            return dict(await asyncio.shield(answer))
        answer = asyncio.get_running_loop().create_future()
        self._answers[command_id] = (same, answer)
        while len(self._answers) > self._remembered:
            self._answers.popitem(last=False)
        try:
            result = await work()
        except BaseException:
            # Not answered (the daemon is stopping): the id is free to be tried again.
            if self._answers.get(command_id, (None, None))[1] is answer:
                del self._answers[command_id]
            answer.cancel()
            raise
        answer.set_result(result)
        if result.get("ok") is False and "code" in result:
            # Refused: it changed nothing, so it leaves nothing behind, its id included.
            del self._answers[command_id]
        return result

    def __len__(self) -> int:
        return len(self._answers)
