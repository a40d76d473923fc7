"""The fault matrix (tests/reliability.py) under pytest: one test per row.

Every row must lose no shutoff and pass its own checks. The slowest rows are marked
``slow``: ``scripts/test`` runs them as a second command, after the main suite.
``python -m tests.reliability`` runs the same rows and writes docs/RELIABILITY.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import reliability

pytestmark = pytest.mark.hil

NEEDS_ROOT = {"store-read-only", "store-full-disk"}


def _param(name: str) -> object:
    marks = [pytest.mark.slow] if name in reliability.SLOW_ROWS else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", [_param(n) for n in reliability.ROWS])
def test_fault_row_loses_no_shutoff(name: str, tmp_path: Path) -> None:
    if name in NEEDS_ROOT and os.geteuid() != 0:
        pytest.fail("this row mounts a small tmpfs: run it as root (CI does)")
    row = reliability.run_row(name, tmp_path)
    print(reliability.table([row]))
    assert row.error is None, row.error
    assert row.requested > 0
    assert row.completed == row.requested, row.failures()
    assert row.passed, row.failures()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_flood_of_bad_commands_loses_no_valid_shutoff(tmp_path: Path) -> None:
    flood = reliability.flood(tmp_path)
    print(reliability.flood_table(flood))
    assert flood.error is None, flood.error
    assert flood.alive
    assert flood.dropped_by_broker == 0  # (broker queue sized as docs/MQTT.md says)
    assert flood.ok_replies == flood.valid == reliability.ROUNDS * 1000
    assert flood.error_replies == flood.malformed == reliability.ROUNDS * 10_000
    assert flood.restored
    assert flood.rss_rounds_mb[-1] - flood.rss_rounds_mb[-2] < 5, flood  # no growth per flood
    assert flood.passed, flood
