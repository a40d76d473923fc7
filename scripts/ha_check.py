"""Home Assistant against stove-ctl, end to end (scripts/ha-check runs this).

A Mosquitto on a free loopback port; a simulated kitchen per daemon (a two-burner hob
from hardware/, both lit, on a simulated Tasmota relay, with a thermocouple tap per
burner); a stove-ctl daemon with MQTT discovery on; and a fresh Home Assistant with the
MQTT integration. The checks act through Home Assistant's services and assert what
happened to the burners in the simulator (flame, valve, circuit, relighting by hand),
what the daemon says (``stove-ctl status --json``) and what Home Assistant shows.
Every Home Assistant warning or error about MQTT or stove-ctl is a failure.

The entities come from what the daemon publishes (its retained discovery configs), so
the check follows discovery as it changes: each config must become an entity of a
stove-ctl device, and each entity is judged by its role (shutoff button, lock, flame,
mode, fault, next cut, timer number, event), found from its discovery topic.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ha_home
from ha_checks import Checks
from ha_rig import REPO, TIMER_MIN


class Run(Checks):
    """The checks in order, and the report."""

    def all(self) -> None:
        run = self.report.run
        print("== checks", flush=True)
        if not (
            run("broker, simulated kitchen and stove-ctl daemon start", self.start_rig)
            and run("Home Assistant starts (headless, loopback, --skip-pip)", self.start_ha)
            and run("onboarding (user step) and websocket API", self.onboard)
            and run("MQTT integration added through the config flow", self.add_mqtt)
        ):
            return
        d = self.daemons[0]
        if not run("stove-ctl device and every discovered entity in HA", self.check_discovered, d):
            return
        run("every entity's state sensible at rest", self.check_states, d)
        run(
            "shutoff button (HA) -> burner out, restored, relightable",
            self.check_shutoff,
            d,
            "left",
        )
        run("event entity reports the shutoff", self.check_event)
        run("lock (HA) -> relay holds the cut, no relight", self.check_lock, d, "left")
        run("unlock (HA) -> circuit restored, relight works", self.check_unlock, d, "left")
        run("next-cut sensor: timer set by CLI, then cancelled", self.check_next_cut, d, "right")
        run(f"timer (HA number, {TIMER_MIN} min) -> cut when due", self.check_timer, d, "right")
        run(
            "fault (relay offline) shown; shutoff made when it is back",
            self.check_fault,
            d,
            "right",
        )
        if self.args.restart:
            run("daemon restart: unavailable, then back with the lock", self.check_restart, d)
        if self.args.restart:
            run("Home Assistant restart: entities back, current", self.check_ha_restart, d)
        if self.args.rename:
            run("rename a burner (daemon restarted with a new name)", self.check_rename, d)
            run("change a burner's id: old entities removed from HA", self.check_replace, d)
        if self.args.two:
            run("a second daemon (other base_topic): two devices, separate", self.check_two)
            run("broker: the two daemons' client ids do not clash", self.check_client_ids)
        if self.args.minutes:
            self.cycle(self.args.minutes)
            self.report.add_tallies()
        run("every entity's state sensible at the end", self.check_states, d)
        run("home-assistant.log: no WARNING/ERROR about MQTT or stove-ctl", self.check_log)

    def print_report(self, version: str, started: float) -> int:
        rev = _git(["rev-parse", "--short", "HEAD"])
        failed = self.report.failures()
        print("\n== ha-check report")
        print(
            f"Home Assistant {self.ha_version or version} ({self.ha.venv.name}), "
            f"stove-ctl {rev} from {REPO}"
        )
        print(f"run took {(time.monotonic() - started) / 60:.1f} min; files: {self.workdir}")
        print(f"entities ({len(self.snapshot)}), at rest:")
        for line in self.snapshot:
            print(f"  {line}")
        print("checks:")
        for status, name, detail in self.report.rows:
            print(f"  {status:7} {name}")
            if detail and status != "ok":
                print(f"          {detail}")
        print(f"Home Assistant warnings/errors about MQTT or stove-ctl ({len(self.ha_problems)}):")
        for record, more in _grouped(self.ha_problems):
            print("  " + record.replace("\n", "\n  "))
            if more:
                print(f"  ... and {more} more like it")
        print(f"other Home Assistant warnings/errors, not counted ({len(self.ha_other)}):")
        for record, more in _grouped(self.ha_other):
            print("  " + record.splitlines()[0] + (f" (and {more} more like it)" if more else ""))
        total = len(self.report.rows)
        print(
            f"RESULT: {'FAILED' if failed else 'ok'}: "
            f"{total - failed} of {total} checks ok, {failed} failed"
        )
        return 1 if failed else 0


def _grouped(records: list[str]) -> list[tuple[str, int]]:
    """Log records, the first of each kind verbatim with how many more there were; a
    kind is the logger and the start of the message, its quoted values and numbers
    left out."""
    kinds: dict[str, list[Any]] = {}
    for record in records:
        first = record.splitlines()[0]
        kind = re.sub(r"'[^']*'|\"[^\"]*\"|\d+", "_", first.split(" ", 2)[-1])[:80]
        kinds.setdefault(kind, [record, -1])[1] += 1
    return [(record, more) for record, more in kinds.values()]


def _git(args: list[str]) -> str:
    done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/ha-check", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ha",
        default="2024.3.3",
        help=f"Home Assistant release: 2024.3.3 (default) or current (= {ha_home.CURRENT})",
    )
    parser.add_argument(
        "--minutes", type=float, default=0, help="then cycle shutoffs, locks, timers this long"
    )
    parser.add_argument(
        "--restart", action="store_true", help="also restart the daemon, then Home Assistant"
    )
    parser.add_argument(
        "--rename", action="store_true", help="also rename a burner, and change a burner's id"
    )
    parser.add_argument(
        "--two", action="store_true", help="also run a second daemon (other base_topic)"
    )
    parser.add_argument("--all", action="store_true", help="--restart --rename --two")
    parser.add_argument("--install-only", action="store_true", help="install, run nothing")
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's files even if all is ok"
    )
    parser.add_argument("--python", default=sys.executable, help="the Python that runs the daemon")
    parser.add_argument("--venvs", default=str(REPO.parent), help="where the ha-venv-* go")
    args = parser.parse_args()
    if args.all:
        args.restart = args.rename = args.two = True
    version = ha_home.resolve(args.ha)
    venvs = Path(args.venvs)
    venv = ha_home.install(version, venvs)
    if args.install_only:
        return 0
    started = time.monotonic()
    run = Run(args, venv)
    try:
        run.all()
    except KeyboardInterrupt:
        run.report.rows.append(("FAILED", "interrupted", ""))
    finally:
        run.teardown()
    code = run.print_report(version, started)
    if code == 0 and not args.keep:
        shutil.rmtree(run.workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
