"""Make one process's wall clock jump: the "clock stepped by ±1 h" fault.

The daemon under test runs with ``LD_PRELOAD`` of a tiny shim (``wallclock.c``, built
here with the system C compiler) that adds an offset to ``CLOCK_REALTIME``; the offset
lives in a shared file this object rewrites. The monotonic clock is untouched, as when
NTP or a person steps a real machine's clock.

    shift = WallClockShift(tmp_path)
    proc = subprocess.Popen(cmd, env={**os.environ, **shift.env()})
    shift.set(3600)  # the process's wall clock is now one hour ahead
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

_SOURCE = Path(__file__).with_name("wallclock.c")


def build() -> Path:
    """Compile the shim once per source version; returns the shared object's path."""
    source = _SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:12]
    out = Path(tempfile.gettempdir()) / f"stove-wallclock-{digest}.so"
    if not out.exists():
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            raise RuntimeError("the wall-clock fault needs a C compiler (apt-get install gcc)")
        tmp = out.with_suffix(".tmp")
        subprocess.run(
            [compiler, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(_SOURCE), "-ldl"],
            check=True,
            capture_output=True,
        )
        tmp.replace(out)
    return out


class WallClockShift:
    def __init__(self, directory: Path) -> None:
        self.file = directory / "wallclock-offset"
        self.file.write_bytes(struct.pack("<q", 0))
        self.offset_s = 0.0

    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": str(build()), "STOVE_WALLCLOCK_FILE": str(self.file)}

    def set(self, offset_s: float) -> None:
        """Step the wall clock to ``offset_s`` seconds from the machine's own."""
        with open(self.file, "r+b") as f:
            f.write(struct.pack("<q", round(offset_s * 1e9)))
        self.offset_s = offset_s
