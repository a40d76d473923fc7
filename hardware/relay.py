"""A simulated multi-channel relay board: the part every simulated device shares.

The wire-protocol simulators (miIO, MQTT firmwares) and the in-process ``simulated``
driver all switch one of these. Its channels drive the relay contacts of the stove
model, so a relay command has a physical effect on the burner.

Fault controls model what real boards do: go offline, come back in their power-on
state after a power cycle, weld a contact (accept a set, state does not change), or
lose their answers (a one-way link: a set is carried out, no reply gets back).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

from hardware.stove import RelayContact


class RelayOffline(Exception):
    """The board does not answer (no power, no network)."""


SAVED_BYTES = 512  # the state file's size: JSON, then spaces


class SimRelay:
    """A relay board with numbered channels (1..channels)."""

    def __init__(
        self,
        channels: int = 1,
        power_on_state: bool = False,
        state_file: Path | None = None,
    ) -> None:
        if channels < 1:
            raise ValueError("a relay board has at least one channel")
        self.channels = channels
        self.power_on_state = power_on_state
        self.state_file = state_file
        self.offline = False
        self.answers_lost = False  # sets are carried out; every get and set then fails
        self.stuck: set[int] = set()
        self._lock = threading.RLock()
        self._on: dict[int, bool] = {n: power_on_state for n in self._numbers()}
        self._contacts: dict[int, list[RelayContact]] = {n: [] for n in self._numbers()}
        self._listeners: list[Callable[[int, bool], None]] = []
        if state_file is not None and state_file.exists():
            # The board kept its outputs while whoever drove it was gone.
            saved = json.loads(state_file.read_text())
            for key, value in saved.get("on", {}).items():
                if int(key) in self._on:
                    self._on[int(key)] = bool(value)

    def _numbers(self) -> range:
        return range(1, self.channels + 1)

    def _check(self, channel: int) -> None:
        if channel not in self._on:
            raise ValueError(f"no channel {channel} on a {self.channels}-channel relay")
        if self.offline:
            raise RelayOffline("relay is offline")

    def attach(self, channel: int, contact: RelayContact) -> None:
        """Wire a contact to a channel; it takes the channel's present state."""
        with self._lock:
            if channel not in self._contacts:
                raise ValueError(f"no channel {channel} on a {self.channels}-channel relay")
            self._contacts[channel].append(contact)
            contact.set(self._on[channel])

    def on_change(self, listener: Callable[[int, bool], None]) -> None:
        """Call ``listener(channel, on)`` whenever a channel's output changes."""
        self._listeners.append(listener)

    def get(self, channel: int) -> bool:
        with self._lock:
            self._check(channel)
            if self.answers_lost:
                raise RelayOffline("relay's answer was lost")
            return self._on[channel]

    def set(self, channel: int, on: bool) -> None:
        """Switch a channel. A stuck channel accepts the command and stays put."""
        with self._lock:
            self._check(channel)
            if channel not in self.stuck:
                self._apply(channel, on)
            if self.answers_lost:
                raise RelayOffline("relay's answer was lost")

    def _apply(self, channel: int, on: bool) -> None:
        changed = self._on[channel] != on
        self._on[channel] = on
        for contact in self._contacts[channel]:
            contact.set(on)
        self._save()
        if changed:
            for listener in self._listeners:
                listener(channel, on)

    def power_cycle(self) -> None:
        """Lose power and come back: every channel returns to its power-on state."""
        with self._lock:
            for channel in self._numbers():
                self._apply(channel, self.power_on_state)

    def snapshot(self) -> dict[int, bool]:
        with self._lock:
            return dict(self._on)

    def _save(self) -> None:
        """Keep the outputs, in place: one small write at the start of the file, padded
        to a fixed size so it never needs truncating (a temp file and a rename per
        switch cost 0.2 ms each: 0.45 s of a 1,000-burner ``off all``)."""
        if self.state_file is None:
            return
        data = json.dumps({"on": {str(n): v for n, v in self._on.items()}}).encode()
        try:
            fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, data.ljust(max(SAVED_BYTES, len(data))), 0)
            finally:
                os.close(fd)
        except OSError:
            pass  # like a board whose flash wore out: it still switches
