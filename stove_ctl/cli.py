"""The ``stove-ctl`` command line.

Exit codes: 0 done; 1 the daemon could not complete it (relay fault: it keeps
trying); 2 bad input (arguments, config, unknown burner, not allowed); 3 no daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import re
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stove_ctl import __version__, commission
from stove_ctl.config import Config, default_socket_path, load_config
from stove_ctl.config.exposure import exposed_secrets
from stove_ctl.core.commands import MAX_TIMERS_SHOWN, parse_duration
from stove_ctl.errors import ConfigError, DaemonNotRunning, StoveCtlError
from stove_ctl.surfaces import control
from stove_ctl.surfaces.text import normalise
from stove_ctl.surfaces.text.times import BadValue, ClockTime, match_en_clock

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NO_DAEMON = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stove-ctl", description="Gas stove shutoff controller.")
    parser.add_argument("--version", action="version", version=f"stove-ctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    client = _Parser(add_help=False)
    client.add_argument(
        "--socket",
        type=Path,
        help="the daemon's control socket (default: the config's, with -c; else "
        "$STOVE_CTL_SOCKET; else a per-user path)",
    )
    client.add_argument("-c", "--config", type=Path, help="config file, to find the socket")

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("-c", "--config", type=Path, required=True)
    run.add_argument("--socket", type=Path, help="listen here instead of the config's socket")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("-c", "--config", type=Path, required=True)

    doctor = sub.add_parser("doctor", help="reach every relay and explain failures")
    doctor.add_argument("-c", "--config", type=Path, required=True)

    def client_command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, parents=[client])

    off = client_command("off", "shut off a burner now (cut, hold, restore)")
    off.add_argument("burner", nargs="?", default="all", help="burner, stove/burner, or all")
    off.add_argument(
        "--no-wait", action="store_true", help="return once the cut is confirmed, not restored"
    )
    off.add_argument(
        "--timeout",
        type=_seconds,
        help="seconds to wait (default: pulse_s + 10); the "
        "shutoff carries on after the CLI stops waiting",
    )
    off.add_argument("--json", action="store_true")

    timer = client_command("timer", "shut a burner off after a delay")
    timer.add_argument("burner", help="burner, stove/burner, or all")
    timer.add_argument("delay", help="e.g. 15m, 1h30m, 90s")
    at = client_command("at", "shut a burner off at a clock time")
    at.add_argument("burner", help="burner, stove/burner, or all")
    at.add_argument("time", help="e.g. 18:30 or 6:30pm (the next one), or 2026-11-24T18:30")
    timers = client_command("timers", "list pending timers, schedules and lock windows")
    timers.add_argument("burner", nargs="?", default="all", help="burner, stove/burner, or all")
    timers.add_argument("--burner", dest="burner_option", metavar="BURNER", help="the same")
    timers.add_argument(
        "-n",
        "--limit",
        type=_timers_shown,
        help="list this many (default 100, at most 1000)",
    )
    cancel = client_command("cancel", "cancel a timer (by id) or every timer of a burner")
    cancel.add_argument("target", metavar="TIMER_ID|BURNER")
    extend = client_command("extend", "push a timer later")
    extend.add_argument("target", metavar="TIMER_ID|BURNER")
    extend.add_argument("delay", help="how much later, e.g. 10m")
    snooze = client_command(
        "snooze", "put off the safety rules' cut (every rule of the burner), up to the cap"
    )
    snooze.add_argument("burner", nargs="?", default="all", help="burner, stove/burner, or all")
    snooze.add_argument("delay", help="how much later, e.g. 10m")
    say = client_command("say", "a command in words, Chinese or English (see docs/TEXT.md)")
    say.add_argument("text", nargs="+")
    for p in (timer, at, timers, cancel, extend, snooze, say):
        p.add_argument("--json", action="store_true")

    for name, text in (("lock", "cut and hold until unlocked"), ("unlock", "end a lock")):
        p = client_command(name, text)
        p.add_argument("burner", help="burner, stove/burner, or all")
        p.add_argument("--json", action="store_true")

    commission = client_command(
        "commission", "guided check of a burner after wiring it (asks you questions)"
    )
    commission.add_argument("burner", help="burner or stove/burner")
    commission.add_argument(
        "--calibrate",
        action="store_true",
        help="find the shortest pulse that drops the valve (needs a flame input)",
    )
    self_test = client_command("self-test", "self-test the relays now (burners out only)")
    self_test.add_argument("burner", nargs="?", default="all", help="burner, stove/burner, or all")
    self_test.add_argument("--json", action="store_true")

    status = client_command("status", "show every burner")
    status.add_argument("--json", action="store_true")

    events = client_command("events", "show the event log")
    events.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    events.add_argument("-n", "--limit", type=_positive_int, default=30)
    events.add_argument("--burner")
    events.add_argument("--json", action="store_true")
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3600 s, not {text}")
    return value


def _positive_int(text: str, most: int = 10_000) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= most:
        raise argparse.ArgumentTypeError(f"must be between 1 and {most}, not {value}")
    return value


def _timers_shown(text: str) -> int:
    return _positive_int(text, MAX_TIMERS_SHOWN)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    negative = [w for w in words if re.fullmatch(r"-\d[\w.]*", w)]
    if negative:  # argparse would take "-5m" for an option and say something confusing
        print(f"stove-ctl: a delay or time cannot be negative (got {negative[0]})", file=sys.stderr)
        return EXIT_BAD_INPUT
    args = _parser().parse_args(words)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "check-config":
            return _check_config(args.config)
        if args.command == "doctor":
            return _doctor(args.config)
        return _client(args)
    except DaemonNotRunning as exc:
        print(f"stove-ctl: {exc}; start one with: stove-ctl run -c FILE", file=sys.stderr)
        return EXIT_NO_DAEMON
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    except StoveCtlError as exc:
        print(f"stove-ctl: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_OK


def _check_config(path: Path) -> int:
    config = load_config(path)
    burners = sum(len(s.burners) for s in config.stoves)
    print(
        f"{path}: ok ({len(config.stoves)} stove(s), {burners} burner(s), "
        f"{len(config.relays)} relay(s))"
    )
    for warning in [*exposed_secrets(Path(path), config), *config.wiring_warnings(str(path))]:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


def _doctor(path: Path) -> int:
    from stove_ctl.doctor import run_doctor

    findings = asyncio.run(run_doctor(load_config(path)))
    for finding in findings:
        label = finding.relay if finding.relay.startswith("broker") else f"relay {finding.relay}"
        print(f"{label}: {'ok' if finding.ok else 'PROBLEM'}")
        for line in finding.lines:
            print(f"  {line}")
    return EXIT_OK if all(f.ok for f in findings) else EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    from stove_ctl.daemon import serve  # the daemon's imports are not needed by clients

    def load() -> Config:
        """The config file, with what the command line says over it."""
        config = load_config(args.config)
        updates: dict[str, Any] = {}
        if args.socket is not None:
            updates["socket"] = args.socket
        if args.log_level is not None:
            updates["log_level"] = args.log_level
        return config.model_copy(update=updates)

    config = load()
    setup_logging(config.log_level)
    for warning in [
        *exposed_secrets(Path(args.config), config),
        *config.wiring_warnings(str(args.config)),
    ]:
        logging.getLogger("stove_ctl").warning("%s", warning)
    asyncio.run(serve(config, reload=load))
    return EXIT_OK


def setup_logging(level: str) -> None:
    """Plain lines on stderr. Under systemd (``JOURNAL_STREAM`` set) the journal stamps
    each line, so no time of our own. APScheduler's note of every job added and removed
    is debug chatter."""
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    logging.basicConfig(level=level.upper(), format=stamp + "%(levelname)s %(name)s: %(message)s")
    if level.lower() != "debug":
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _socket(args: argparse.Namespace) -> Path:
    if args.socket is not None:
        return Path(args.socket)
    if args.config is not None:
        config: Config = load_config(args.config)
        return config.control_socket()
    return default_socket_path()


def _twelve_hour(text: str) -> str:
    """A time said with am/pm ("6pm", "6:30 PM", "12am") or noon/midnight, as HH:MM on
    the 24-hour clock, read by the text commands' own reader. Anything else is
    returned as it was: the daemon reads 18:30 and ISO times. Raises StoveCtlError
    for an am/pm time that does not exist (13pm, 0am, 6:75pm)."""
    said = "at " + normalise(text)
    found = match_en_clock(said, 0)
    if found is None or found[0] != len(said):
        return text
    value = found[1]
    if isinstance(value, BadValue):
        raise StoveCtlError(f"cannot read {text!r} as a time: {value.reason} (say 18:30 or 6:30pm)")
    if not isinstance(value, ClockTime) or value.twelve_hour:
        return text  # "6:30" with no am/pm: the 24-hour clock, as the daemon reads it
    return f"{value.hour:02d}:{value.minute:02d}"


def _client(args: argparse.Namespace) -> int:
    delay = getattr(args, "delay", None)
    if delay is not None:
        try:  # the daemon refuses it too; here it is said without the field's name
            parse_duration(delay)
        except ValueError as exc:
            print(f"stove-ctl: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    path = _socket(args)
    if args.command == "events":
        return _events(path, args)
    if args.command == "commission":
        return commission.run(path, args.burner, args.calibrate, sys.stdin, sys.stdout)
    if args.command == "self-test":
        return commission.run_self_test(path, args.burner, args.json)
    payload: dict[str, Any]
    if args.command == "off":
        payload = {
            "action": "shutoff",
            "burner": args.burner,
            "wait": "confirmed" if args.no_wait else "done",
        }
        if args.timeout is not None:
            payload["timeout_s"] = args.timeout
    elif args.command in ("lock", "unlock"):
        payload = {"action": args.command, "burner": args.burner}
    elif args.command == "timer":
        payload = {"action": "timer", "burner": args.burner, "in": args.delay}
    elif args.command == "at":
        payload = {"action": "timer", "burner": args.burner, "at": _twelve_hour(args.time)}
    elif args.command == "timers":
        payload = {"action": "timers", "burner": args.burner_option or args.burner}
        if args.limit is not None:
            payload["limit"] = args.limit
    elif args.command in ("cancel", "extend"):
        key = "timer" if args.target.startswith("t-") else "burner"
        payload = {"action": args.command, key: args.target}
        if args.command == "extend":
            payload["in"] = args.delay
    elif args.command == "snooze":
        payload = {"action": "snooze", "burner": args.burner, "in": args.delay}
    elif args.command == "say":
        payload = {"action": "say", "text": " ".join(args.text)}
    else:
        payload = {"action": "status"}
    reply = control.request(path, payload)
    if args.json:
        print(json.dumps(reply, ensure_ascii=False, indent=2))
    elif not reply.get("ok") and "error" in reply:
        print(f"stove-ctl: {reply['error']}", file=sys.stderr)
    else:
        print(_render(reply))
    if "error" in reply:
        return EXIT_BAD_INPUT
    return EXIT_OK if reply.get("ok") else EXIT_FAILED


# -- output --------------------------------------------------------------------


def _clock(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d ", time.localtime(ts)) + _clock(ts)


def _zone(reply: dict[str, Any]) -> dt.tzinfo | None:
    """The daemon's time zone (its config's ``timezone``), as its reply names it; None:
    this machine's."""
    name = reply.get("timezone")
    if not isinstance(name, str):
        return None
    try:
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return None


def _when(value: float | str | None, zone: dt.tzinfo | None = None) -> str:
    """A moment as the text output shows it, in the daemon's time zone: ``18:30`` (or
    ``18:30:05`` when the seconds are not 0) if it is today there, else with the date,
    ``Sat 6 Dec 18:30`` (and the year when it is not this year). ``value``: Unix time
    (shown in ``zone``), or an ISO time from the daemon (shown in its own offset)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is not None and zone is not None:
            moment = moment.astimezone(zone)
    elif zone is None:
        moment = dt.datetime.fromtimestamp(value).astimezone()  # this machine's zone
    else:
        moment = dt.datetime.fromtimestamp(value, zone)
    today = dt.datetime.now(moment.tzinfo).date()
    shown = f"{moment:%H:%M}" + (f":{moment:%S}" if moment.second else "")
    if moment.date() == today:
        return shown
    year = "" if moment.year == today.year else f" {moment.year}"
    return f"{moment:%a} {moment.day} {moment:%b}{year} {shown}"


def _render(reply: dict[str, Any]) -> str:
    action = reply.get("action")
    if action == "status":
        return _render_status(reply)
    if action in ("timer", "extend"):
        t = reply["timer"]
        burners = ", ".join(t["burners"])
        due = _when(t["due"])
        return f"timer {t['id']}: shuts off {burners} at {due} (in {_dur(t['in_s'])})"
    if action in ("timers", "cancel"):
        if not reply["timers"]:
            return "no timers"
        verb = "cancelled " if action == "cancel" else ""
        lines = [
            f"{verb}{t['id']}  {t['action']:8}  {', '.join(t['burners'])}  at {_when(t['due'])}"
            + ("  (config)" if t.get("from_config") else "")
            for t in reply["timers"]
        ]
        more = reply.get("total", len(lines)) - len(lines)
        if more > 0:
            hint = " (stove-ctl timers -n N for more)" if action == "timers" else ""
            lines.append(f"… and {more} more{hint}")
        return "\n".join(lines)
    lines = []
    for b in reply.get("burners", []):
        name = b["burner"]
        if action == "snooze":
            if b["snoozed_s"]:
                lines.append(f"{name}: rules put off {_dur(b['snoozed_s'])}")
            else:
                lines.append(f"{name}: nothing put off ({b.get('reason', 'cap used up')})")
        elif action == "shutoff":
            lines.append(f"{name}: {_describe_shutoff(b)}")
        elif action == "lock":
            state = (
                "locked, cut confirmed" if b["confirmed"] else f"locked, cut pending: {b['fault']}"
            )
            lines.append(f"{name}: {state}")
        elif action == "unlock":
            if not b["was_locked"]:
                lines.append(f"{name}: was not locked")
            else:
                restored = "circuit restored" if b["restored"] else "restore pending"
                lines.append(f"{name}: unlocked, {restored} (relight by hand)")
    return "\n".join(lines)


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _describe_shutoff(b: dict[str, Any]) -> str:
    joined = " (joined the shutoff already in progress)" if b.get("joined") else ""
    if b["cut_at"] is None:
        return f"cut NOT yet confirmed: {b.get('fault') or 'waiting for the relay'}; still trying"
    cut = f"cut at {_clock(b['cut_at'])} ({b['cut_latency_ms']:.0f} ms)"
    if b["outcome"] == "restored":
        return f"shut off: {cut}, restored at {_clock(b['restored_at'])}{joined}"
    if b["outcome"] == "locked":
        return f"shut off: {cut}; burner is locked, circuit stays cut{joined}"
    if b["outcome"] == "superseded":  # its restore, unconfirmed, gave way to a newer one
        return f"shut off: {cut}; a newer shutoff of this burner took over{joined}"
    return f"shut off: {cut}; restore pending{joined}"


# What `status` reports on each of the daemon's files, in words.
STORES = {"state_store": "saved state (locks)", "timer_store": "timers", "event_store": "event log"}


def _render_status(reply: dict[str, Any]) -> str:
    rows = [("BURNER", "MODE", "FLAME", "CIRCUIT", "NEXT CUT", "LAST SHUTOFF")]
    notes = []
    zone = _zone(reply)
    for b in reply["burners"]:
        last = b["last_shutoff"]
        if last is None:
            shown = "-"
        else:
            shown = (
                f"{_when(last['requested_at'], zone)} by {last['source']}: "
                f"cut {_when(last['cut_at'], zone)}, restored {_when(last['restored_at'], zone)}"
            )
            if last["outcome"] == "locked" and not b["lock"]:
                # A record saved before an unlock filled in its restore: the lock is over.
                shown += " (held by a lock, since unlocked)"
            elif last["outcome"] != "restored":
                shown += f" ({last['outcome']})"
        flame = b["flame"]
        if flame == "lit" and b.get("going_out"):
            flame = "going out"  # cut, and the thermocouple's reading is falling
        when = _when(b.get("next_cut"), zone)
        rows.append((b["burner"], b["mode"], flame, b["circuit"], when, shown))
        if b["lock"]:
            since = _when(b["lock"]["since"], zone)
            notes.append(f"{b['burner']}: locked since {since} by {b['lock']['source']}")
        if b["fault"]:
            notes.append(f"{b['burner']}: FAULT: {b['fault']}")
        notes += commission.status_notes(b, lambda ts: _when(ts, zone))
    for store, what in STORES.items():
        if reply.get(store, "ok") != "ok":
            notes.append(f"PROBLEM with the {what}: {reply[store]}")
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(5)) + "  " + r[5] for r in rows]
    return "\n".join(lines + notes)


def _format_event(e: dict[str, Any]) -> str:
    parts = [_stamp(e["ts"]), e["kind"].ljust(17), e["burner"] or "-", e["source"] or "-"]
    if e["latency_ms"] is not None:
        parts.append(f"{e['latency_ms']:.1f} ms")
    if e["command_id"]:
        parts.append(f"cmd={e['command_id']}")
    if e["detail"]:
        parts.append(json.dumps(e["detail"], ensure_ascii=False))
    return "  ".join(parts)


def _events(path: Path, args: argparse.Namespace) -> int:
    payload = {"action": "events", "limit": args.limit, "follow": args.follow}
    if args.burner:
        payload["burner"] = args.burner
    try:
        for reply in control.stream(path, payload):
            if "error" in reply:
                print(f"stove-ctl: {reply['error']}", file=sys.stderr)
                return EXIT_BAD_INPUT
            for event in reply.get("events", []) + ([reply["event"]] if "event" in reply else []):
                print(json.dumps(event, ensure_ascii=False) if args.json else _format_event(event))
            sys.stdout.flush()
    except DaemonNotRunning:
        if args.config is None or args.follow:
            raise
        return _events_from_file(args)
    return EXIT_OK


def _events_from_file(args: argparse.Namespace) -> int:
    """No daemon answers: read its event log from ``state_dir``, read-only (after a
    crash, a post-mortem)."""
    from stove_ctl.core.events import read_events

    config = load_config(args.config)
    path = config.state_dir / "events.db"
    keys: set[str] | None = None
    if args.burner and args.burner != "all":
        every = {f"{s.id}/{b.id}": (s.id, b.id) for s in config.stoves for b in s.burners}
        keys = {k for k, (stove, burner) in every.items() if args.burner in (k, stove, burner)}
        if not keys:
            print(f"stove-ctl: unknown burner {args.burner!r}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        shown = read_events(path, args.limit, keys)
    except sqlite3.Error as exc:
        print(f"stove-ctl: no daemon answers, and {path} cannot be read: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"(no daemon answers: read from {path})", file=sys.stderr)
    for event in shown:
        data = event.model_dump()
        print(json.dumps(data, ensure_ascii=False) if args.json else _format_event(data))
    return EXIT_OK
