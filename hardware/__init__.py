"""The simulated kitchen: a physical stove model and simulated relays.

Nothing here imports ``stove_ctl``: this package is the world the daemon acts on,
so it can be used on its own (``python -m hardware``) and by tests as ground truth.
"""

from hardware.miswire import Miswire, connect
from hardware.relay import RelayOffline, SimRelay
from hardware.stove import Burner, RelayContact, SteppableClock, Stove, Wiring

__all__ = [
    "Burner",
    "Miswire",
    "RelayContact",
    "RelayOffline",
    "SimRelay",
    "SteppableClock",
    "Stove",
    "Wiring",
    "connect",
]
