"""A real-time simulated kitchen behind a simulated Mi Home relay, for HIL tests."""

from __future__ import annotations

import errno
import itertools
import os
import time
from dataclasses import dataclass

import hardware
from hardware.miio_sim import MiioRelaySim, Prop

TOKEN = "00112233445566778899aabbccddeeff"
_hosts = itertools.count(os.getpid() % 230)


class RealTimeClock:
    def monotonic(self) -> float:
        return time.monotonic()


def next_host() -> str:
    """A loopback address of its own for each simulated device (all use port 54321)."""
    return f"127.0.0.{next(_hosts) % 240 + 10}"


@dataclass
class MiioKitchen:
    stove: hardware.Stove
    board: hardware.SimRelay
    sim: MiioRelaySim

    @property
    def host(self) -> str:
        return self.sim.host

    def burner(self, name: str) -> hardware.Burner:
        return self.stove.burners[name]


def miio_kitchen(off_delay: bool = True, legacy: bool = False, **sim_args: object) -> MiioKitchen:
    """Two lit burners (one for legacy) on a MIoT relay; channel n is siid n+1 piid 1."""
    stove = hardware.Stove(RealTimeClock())
    names = ["left"] if legacy else ["left", "right"]
    board = hardware.SimRelay(channels=len(names))
    for channel, name in enumerate(names, start=1):
        burner = stove.add_burner(name, hardware.Wiring.NC_SERIES)
        board.attach(channel, burner.contact)
        burner.light_and_hold()
    delays = {1: Prop(2, 3), 2: Prop(3, 3)} if off_delay and not legacy else None
    for _ in range(230):
        sim = MiioRelaySim(
            board, host=next_host(), token=TOKEN, off_delay=delays, legacy=legacy, **sim_args
        )
        try:
            return MiioKitchen(stove, board, sim.start())
        except OSError as exc:  # another test process holds that address: take the next
            if exc.errno != errno.EADDRINUSE:
                raise
    raise RuntimeError("no free loopback address for a simulated miIO device")
