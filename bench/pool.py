"""Pool several runs of bench/latency.py (each saved with ``--keep``) into one estimate
of the p99 ratio: one run's N 1,000 per side leaves a wide interval around a p99.

    python bench/pool.py RUN.json [RUN.json ...] [--preset tasmota] [--no-write]

Every file must come from the same daemon code (revision), broker setting, bench-gc
setting and pulse; files that differ are refused, not mixed. Prints per run and pooled
p50/p90/p99 per side, the p99 ratio (stove-ctl / bare) and a bootstrap 95% interval
for the pooled ratio, and writes the ``Shutoff latency pooled: PRESET`` section of
docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

from _common import header_lines, summary, table, write_section
from latency import bootstrap_ratio

HEADER = ["run", "revision", "taken", "who", "N", "p50 ms", "p90 ms", "p99 ms", "p99 ratio"]
SAME = ("revision", "broker_nodelay", "bench_gc", "pulse")


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
    return kept, samples


def row(run: str, rev: str, taken: str, who: str, s: dict[str, float], ratio: float) -> list[Any]:
    return [run, rev, taken, who, s["n"], s["p50"], s["p90"], s["p99"], ratio]


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
    if "uncommitted" in str(first.get("revision")):
        print("warning: the runs were taken with uncommitted changes", file=sys.stderr)
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
    print(out)
    if args.no_write:
        return 0
    names = " ".join(path.name for path, _, _ in loaded)
    cmd = f"python bench/pool.py --preset {args.preset} {names}"
    n_text = (
        f"{len(loaded)} runs; {p['stove-ctl']['n']} stove-ctl and {p['bare']['n']} bare samples"
    )
    body = (
        header_lines(cmd, n_text) + "\n\n"
        f"Runs of `bench/latency.py --presets {args.preset} --keep FILE` on the same daemon "
        f"code (broker with set_tcp_nodelay: {first.get('broker_nodelay')}, bench-gc "
        f"{first.get('bench_gc')}, pulse_s {first.get('pulse')}), their samples pooled. "
        "`p99 ratio` = stove-ctl p99 / baseline p99 (DESIGN: <= 1.2); the interval is a "
        "bootstrap over the pooled samples.\n\n"
        f"```\n{out}\n```\n"
    )
    write_section(f"Shutoff latency pooled: {args.preset}", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
