"""Pool several runs of bench/latency.py (each saved with ``--keep``) into one estimate
of the p99 ratio: one run's N 1,000 per side leaves a wide interval around a p99.

    python bench/pool.py RUN.json [RUN.json ...] [--preset tasmota] [--no-write]

Every file must come from the same code (what ``stove_ctl/``, ``hardware/``,
``bench/bare.py`` and ``bench/latency.py`` were at the file's revision: runs taken
with a commit of only documents in between pool), with the same broker setting,
bench-gc setting and pulse; files that differ, or that were taken with uncommitted
changes, are refused, not mixed. Prints per run and pooled
p50/p90/p99 per side, the p99 ratio (stove-ctl / bare) and a bootstrap 95% interval
for the pooled ratio, and writes the ``Shutoff latency pooled: PRESET`` section of
docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import ROOT, header_lines, summary, table, write_section
from latency import bootstrap_ratio

HEADER = ["run", "revision", "taken", "who", "N", "p50 ms", "p90 ms", "p99 ms", "p99 ratio"]
SAME = ("code", "broker_nodelay", "bench_gc", "pulse")
MEASURED = ("stove_ctl", "hardware", "bench/bare.py", "bench/latency.py")


def code(revision: str) -> str:
    """The git objects of what a run measured, at its revision."""
    if "uncommitted" in revision:
        raise SystemExit(f"a run at {revision} cannot be pooled: its code is not in git")
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", *(f"{revision}:{p}" for p in MEASURED)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"cannot look up revision {revision} in git ({exc})") from None
    return " ".join(out.split())


def last_change(revision: str) -> str:
    """The last commit at or before ``revision`` that changed what a run measures."""
    return subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h", revision, "--", *MEASURED],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def load(path: Path, preset: str) -> tuple[dict[str, Any], dict[str, list[float]]]:
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: cannot read a kept run ({exc})") from None
    if not isinstance(kept, dict) or not isinstance(kept.get("rounds"), list):
        raise SystemExit(f"{path}: not a file written by bench/latency.py --keep")
    samples: dict[str, list[float]] = {"stove-ctl": [], "bare": []}
    for r in kept["rounds"]:
        if r.get("preset") == preset:
            for who in samples:
                samples[who] += [float(v) for v in r["samples"][who]]
    if not samples["stove-ctl"] or not samples["bare"]:
        raise SystemExit(f"{path}: no {preset} samples in it")
    kept["code"] = code(str(kept.get("revision")))
    return kept, samples


def row(run: str, rev: str, taken: str, who: str, s: dict[str, float], ratio: float) -> list[Any]:
    return [run, rev, taken, who, s["n"], s["p50"], s["p90"], s["p99"], ratio]


def arrival_table(runs: list[dict[str, Any]], preset: str) -> str:
    """Tasmota: when each message of the pulse reached the device, pooled: publish ->
    ``PulseTime1`` at the device, and ``PulseTime1`` -> ``POWER ON`` at the device."""
    split: dict[tuple[str, str], list[float]] = {}
    for kept in runs:
        for r in kept["rounds"]:
            if r.get("preset") != preset:
                continue
            for who, _, pulse, power in r.get("gaps", []):
                split.setdefault((who, "publish -> PulseTime1 at the device"), []).append(pulse)
                split.setdefault((who, "PulseTime1 -> POWER ON at the device"), []).append(
                    power - pulse
                )
    rows = []
    for (who, what), values in sorted(split.items(), key=lambda kv: (kv[0][0] != "stove-ctl",)):
        s = summary(values)
        rows.append([who, what, s["n"], s["p50"], s["p90"], s["p99"]])
    return table(["who", "pooled", "N", "p50 ms", "p90 ms", "p99 ms"], rows) if rows else ""


TAIL = 0.03  # the slowest 3% of stove-ctl samples, for split_table


def split_table(runs: list[dict[str, Any]], preset: str) -> str:
    """stove-ctl: where its time went, before and after the daemon's ``command`` event
    (publish -> the event, the event -> relay set; from the daemon's event log), pooled,
    for all samples and for the slowest ``TAIL`` of them (by total)."""
    parts: list[tuple[float, float, float]] = []
    for kept in runs:
        for r in kept["rounds"]:
            if r.get("preset") == preset:
                parts += [(float(a), float(b), float(t)) for _, a, b, t in r.get("split", [])]
    if not parts:
        return ""
    parts.sort(key=lambda p: p[2])
    tail = parts[int(len(parts) * (1 - TAIL)) :]
    rows = []
    for i, what in enumerate(("publish -> `command` event", "`command` event -> relay set")):
        every, slow = summary([p[i] for p in parts]), summary([p[i] for p in tail])
        rows.append([what, every["n"], every["p50"], every["p90"], every["p99"], slow["p50"]])
    slow_total = summary([p[2] for p in tail])
    rows.append(["total", len(parts), *(float("nan"),) * 3, slow_total["p50"]])
    header = ["stove-ctl, pooled", "N", "p50 ms", "p90 ms", "p99 ms", f"slowest {TAIL:.0%}: p50 ms"]
    return table(header, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--preset", default="tasmota")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    loaded = [(path, *load(path, args.preset)) for path in args.runs]
    first = loaded[0][1]
    for path, kept, _ in loaded[1:]:
        differ = [k for k in SAME if kept.get(k) != first.get(k)]
        if differ:
            print(
                f"{path} differs from {loaded[0][0]} in {', '.join(differ)}: not pooled",
                file=sys.stderr,
            )
            return 2
    rows: list[list[Any]] = []
    pooled: dict[str, list[float]] = {"stove-ctl": [], "bare": []}
    for i, (_, kept, samples) in enumerate(loaded, 1):
        s = {who: summary(v) for who, v in samples.items()}
        for who in ("stove-ctl", "bare"):
            pooled[who] += samples[who]
            ratio = s["stove-ctl"]["p99"] / s["bare"]["p99"] if who == "bare" else float("nan")
            rows.append(row(str(i), kept["revision"], kept["taken"], who, s[who], ratio))
    p = {who: summary(v) for who, v in pooled.items()}
    lo, hi = bootstrap_ratio(pooled["stove-ctl"], pooled["bare"], random.Random(args.seed))
    for who in ("stove-ctl", "bare"):
        ratio = p["stove-ctl"]["p99"] / p["bare"]["p99"] if who == "bare" else float("nan")
        ci = f"95% CI {lo:.2f}-{hi:.2f}"
        rows.append(row("pooled", first["revision"], ci, who, p[who], ratio))
    out = table(HEADER, rows)
    arrivals = arrival_table([kept for _, kept, _ in loaded], args.preset)
    if arrivals:
        out += "\n\n" + arrivals
    split = split_table([kept for _, kept, _ in loaded], args.preset)
    if split:
        out += "\n\n" + split
    print(out)
    if args.no_write:
        return 0
    names = " ".join(str(path) for path, _, _ in loaded)
    cmd = f"python bench/pool.py --preset {args.preset} {names}"
    n_text = (
        f"{len(loaded)} runs; {p['stove-ctl']['n']} stove-ctl and {p['bare']['n']} bare samples"
    )
    body = (
        header_lines(cmd, n_text) + "\n\n"
        f"Runs of `bench/latency.py --presets {args.preset} --keep FILE` on the same code "
        f"(`{'`, `'.join(MEASURED)}` as at {last_change(str(first['revision']))}; broker "
        f"with set_tcp_nodelay: {first.get('broker_nodelay')}, bench-gc "
        f"{first.get('bench_gc')}, pulse_s {first.get('pulse')}), their samples pooled. "
        "`p99 ratio` = stove-ctl p99 / baseline p99 (DESIGN: <= 1.2); the interval is a "
        "bootstrap over the pooled samples.\n\n"
        f"```\n{out}\n```\n"
    )
    write_section(f"Shutoff latency pooled: {args.preset}", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
