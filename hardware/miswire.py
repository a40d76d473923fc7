"""Installation mistakes, so that commissioning can be tested against each.

``connect(board, burners, miswire)`` wires each burner's relay contact to its channel
of a :class:`~hardware.relay.SimRelay` the way a person might have got it wrong:

- ``outside_circuit``: the relay's contact is wired somewhere else (not in the
  thermocouple circuit). The channel switches a contact that touches nothing; the
  burner's own circuit stays as the stove was built (intact).
- ``inverted``: a normally-open contact where the wiring mode expects a
  normally-closed one, or the reverse (NO and NC terminals swapped). At rest the
  circuit is broken (series) or shorted (parallel): the burner does not stay lit.
- ``high_resistance``: a worn or power-rated contact of 1 Ohm
  (:data:`HIGH_CONTACT_OHM`). In series it stops the burner from holding at all
  (22 mA against the 100 mA hold current); across the terminals (``no_parallel``) it
  is too poor a short to drop the valve, so the cut does nothing.
- ``swapped``: the burners marked so exchange channels (exactly two of them): the
  channel configured for the left burner drives the right one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from hardware.relay import SimRelay
from hardware.stove import Burner, RelayContact, Wiring

HIGH_CONTACT_OHM = 1.0


class Miswire(enum.StrEnum):
    OUTSIDE_CIRCUIT = "outside_circuit"
    INVERTED = "inverted"
    HIGH_RESISTANCE = "high_resistance"
    SWAPPED = "swapped"


def _intact_energized(wiring: Wiring) -> bool:
    """The coil state that leaves this wiring's circuit intact."""
    return wiring is Wiring.NO_SERIES


def connect(
    board: SimRelay,
    burners: Mapping[str, tuple[Burner, int]],
    miswire: Mapping[str, Miswire | str] | None = None,
) -> dict[str, RelayContact]:
    """Attach each burner (name -> (burner, configured channel)) to ``board``, with
    the mistakes in ``miswire`` (name -> kind). Returns the contact each channel's
    burner name was actually given (a dummy one for ``outside_circuit``).
    Raises ValueError for an unknown burner or kind, or a swap not of two burners."""
    kinds = {name: Miswire(kind) for name, kind in (miswire or {}).items()}
    unknown = sorted(set(kinds) - set(burners))
    if unknown:
        raise ValueError(f"miswire names no such burner: {', '.join(unknown)}")
    swapped = [name for name, kind in kinds.items() if kind is Miswire.SWAPPED]
    if swapped and len(swapped) != 2:
        raise ValueError("swapped: mark exactly two burners, whose channels are exchanged")
    channels = {name: channel for name, (_, channel) in burners.items()}
    if swapped:
        a, b = swapped
        channels[a], channels[b] = channels[b], channels[a]
    attached: dict[str, RelayContact] = {}
    for name, (burner, _) in burners.items():
        kind = kinds.get(name)
        contact = burner.contact
        if kind is Miswire.OUTSIDE_CIRCUIT:
            contact.set(_intact_energized(burner.wiring))  # stays as the stove was built
            contact = RelayContact(normally_closed=contact.normally_closed)
        elif kind is Miswire.INVERTED:
            contact.normally_closed = not contact.normally_closed
        elif kind is Miswire.HIGH_RESISTANCE:
            contact.resistance_ohm = HIGH_CONTACT_OHM
        board.attach(channels[name], contact)
        attached[name] = contact
    return attached
