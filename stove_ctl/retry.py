"""The one retry policy: capped exponential backoff with jitter.

A cut is never abandoned (DESIGN invariant 4): callers keep drawing delays for as
long as the relay fails; the cap keeps a long outage from turning into a long wait
after the relay comes back.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

INITIAL_S = 0.25
FACTOR = 2.0
CAP_S = 4.0  # at most this long after a relay comes back before a pending cut lands


def backoff(
    initial_s: float = INITIAL_S, cap_s: float = CAP_S, rng: random.Random | None = None
) -> Iterator[float]:
    """Yield ever longer delays: 0.25, 0.5, 1, 2, 4, 4, ... (``cap_s``), each +-20 %."""
    rand = rng or random.Random()
    delay = initial_s
    while True:
        yield delay * rand.uniform(0.8, 1.2)
        delay = min(delay * FACTOR, cap_s)
