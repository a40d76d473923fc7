"""Shared by the bench scripts: load readings, percentiles, tables, garbage-collection
pauses, and writing one section of docs/PERFORMANCE.md without touching the others."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
REPORT = ROOT / "docs" / "PERFORMANCE.md"

# A 1-minute load average above this on a 2-core machine means someone else's work
# (tests, builds) was competing with the benchmark: its figures are provisional.
BUSY_LOAD = 0.7


def load() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen


def load_text() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*load())


def busy() -> bool:
    return load()[0] > BUSY_LOAD


def machine() -> str:
    return (
        f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def revision() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "stove_ctl", "hardware"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in stove_ctl/hardware" if dirty else "")


def pct(samples: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear interpolation between closest ranks."""
    data = sorted(samples)
    if not data:
        return float("nan")
    if len(data) == 1:
        return data[0]
    k = (len(data) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def summary(samples: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50": pct(samples, 50),
        "p90": pct(samples, 90),
        "p99": pct(samples, 99),
        "max": max(samples) if samples else float("nan"),
        "mean": statistics.fmean(samples) if samples else float("nan"),
    }


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; floats to 2 decimals."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "-" if v != v else f"{v:.2f}"
        return str(v)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]

    def line(values: Sequence[str]) -> str:
        out = []
        for i, v in enumerate(values):
            out.append(v.ljust(widths[i]) if i == 0 else v.rjust(widths[i]))
        return "  ".join(out).rstrip()

    sep = "-" * len(line(list(header)))
    return "\n".join([line(list(header)), sep, *(line(r) for r in cells)])


def write_section(title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of docs/PERFORMANCE.md."""
    text = REPORT.read_text() if REPORT.exists() else "# Performance\n"
    section = f"## {title}\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section
    REPORT.write_text(text.rstrip() + "\n")


def header_lines(command: str, n: str) -> str:
    return (
        f"Command: `{command}`  \n"
        f"N: {n}  \n"
        f"Machine: {machine()}; revision {revision()}  \n"
        f"Taken: {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )


def wait_until(predicate: Callable[[], Any], timeout_s: float, step_s: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout_s} s")
        time.sleep(step_s)


def broker_class(nodelay: bool) -> Any:
    """The tests' Mosquitto, or one with ``set_tcp_nodelay true`` (Mosquitto >= 2.0)."""
    from tests.broker import Mosquitto

    return NoDelayMosquitto if nodelay else Mosquitto


def _nodelay_class() -> Any:
    from tests.broker import Mosquitto

    class _NoDelay(Mosquitto):  # type: ignore[misc,valid-type]
        def _config(self) -> Path:
            path: Path = super()._config()
            path.write_text(path.read_text() + "set_tcp_nodelay true\n")
            return path

    return _NoDelay


NoDelayMosquitto = _nodelay_class()


class ProcStat:
    """CPU time and RSS of a process, from /proc."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # after the ")" : state is fields[0]; utime, stime are stat fields 14, 15
        return (int(fields[11]) + int(fields[12])) / self.TICK

    def status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
        raise KeyError(key)

    def rss_mb(self) -> float:
        return self.status("VmRSS") / 1024

    def hwm_mb(self) -> float:
        return self.status("VmHWM") / 1024

    def pss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def threads(self) -> int:
        return self.status("Threads")


class GcWatch:
    """This process's garbage collections, as (start, ms, generation) on ``clock``;
    add it to ``gc.callbacks``. A collection delays whatever this process is timing
    when it lands (bench/latency.py: a sample of either side)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.pauses: list[tuple[float, float, int]] = []
        self._clock = clock
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = self._clock()
        else:
            took = (self._clock() - self._started) * 1000
            self.pauses.append((self._started, took, info["generation"]))

    def during(self, t0: float, t1: float) -> list[tuple[float, float, int]]:
        return [p for p in self.pauses if p[0] < t1 and p[0] + p[1] / 1000 > t0]
