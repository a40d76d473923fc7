"""``stove-ctl commission BURNER``: the guided check a person runs once per burner after
wiring it, and ``--calibrate``, which finds the shortest pulse that drops the valve.

It talks to the running daemon over the control socket, and to the person through
stdin and stdout: every question ends with ``[y/n]`` and reads one line. It asks them
to light the burner, makes a normal shutoff (cut, hold ``pulse_s``, restore), sees
the flame go out (by the flame input where the burner has one, else by asking), and
asks them to relight it. The other burners of the stove are watched (or asked about)
too, so a relay channel wired to the wrong burner is caught. A wrong result is
explained in plain words; the daemon keeps the record (``commission_record``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from stove_ctl.core.flame import FALL_MV
from stove_ctl.surfaces import control

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
WATCH_S = 10.0  # after a cut, how long the flame input is watched for the flame going out
LIT_WAIT_S = 12.0  # how long a flame input may take to read "lit" (a tap heats up)
POLL_S = 0.2
CAL_PULSES_S = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
LIGHT = "press and turn the knob, hold it in 3-5 s until the flame holds, then let go of it"


class NoAnswer(Exception):
    """Stdin ended before the person answered."""


class Session:
    """One commissioning run: the daemon on one side, the person on the other."""

    def __init__(self, socket: Path, inp: TextIO, out: TextIO) -> None:
        self.socket = socket
        self.inp = inp
        self.out = out
        self.answers: dict[str, str] = {}

    # -- talking -----------------------------------------------------------------

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def ask(self, name: str, question: str) -> bool:
        """A yes/no question; asked again (up to 3 times) until answered y or n."""
        for _ in range(3):
            self.out.write(f"{question} [y/n] ")
            self.out.flush()
            line = self.inp.readline()
            if not line:
                raise NoAnswer
            word = line.strip().lower()
            if word in ("y", "yes", "n", "no"):
                self.answers[name] = word[0]
                return word[0] == "y"
            self.say("Please answer y or n.")
        raise NoAnswer

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        return control.request(self.socket, payload, timeout_s=60)

    def info(self, burner: str) -> dict[str, Any]:
        reply = self.request({"action": "commission_info", "burner": burner})
        if not reply.get("ok"):
            raise Refused(reply.get("error", "the daemon refused"))
        return reply

    def wait_lit(self, burner: str) -> dict[str, Any]:
        """The flame input's view, once it reads lit (or after LIT_WAIT_S)."""
        deadline = time.monotonic() + LIT_WAIT_S
        while True:
            info = self.info(burner)
            if info["flame"] == "lit" or time.monotonic() >= deadline:
                return info
            time.sleep(POLL_S)


class Refused(Exception):
    """The daemon refused a request (the reason is the message)."""


def watch_out(
    session: Session, burner: str, before: dict[str, Any], until: float
) -> tuple[float | None, dict[str, float | None], set[str]]:
    """Watch a burner and its stove's other burners after a cut until ``until``
    (monotonic): when the burner was seen out (wall time; a thermocouple reading that
    fell by FALL_MV counts), the lowest reading of each, and the others seen going out."""
    highs = {before["burner"]: before["mv"], **{o["burner"]: o["mv"] for o in before["others"]}}
    lows: dict[str, float | None] = dict(highs)
    lit_before = {o["burner"] for o in before["others"] if o["flame"] == "lit"}
    out_at: float | None = None
    others_out: set[str] = set()
    while time.monotonic() < until:
        info = session.info(burner)
        for b in (info, *info["others"]):
            key, mv = b["burner"], b["mv"]
            low = lows.get(key)
            if mv is not None:
                lows[key] = mv if low is None else min(mv, low)
            high = highs.get(key)
            fell = mv is not None and high is not None and mv <= high - FALL_MV
            gone = b["flame"] == "out" or fell
            if key == before["burner"] and gone and out_at is None:
                out_at = time.time()
            elif key in lit_before and gone:
                others_out.add(key)
        if out_at is not None and time.monotonic() >= until - WATCH_S + 3.0:
            break  # seen out, and the others watched for a while too
        time.sleep(POLL_S)
    return out_at, lows, others_out


def run(socket: Path, burner: str, calibrate: bool, inp: TextIO, out: TextIO) -> int:
    session = Session(socket, inp, out)
    try:
        info = session.info(burner)
    except Refused as exc:
        print(f"stove-ctl: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if info["mode"] != "ready" or info["circuit"] != "intact":
        print(
            f"stove-ctl: {info['burner']} is {info['mode']} (circuit {info['circuit']}): "
            "commission a burner that is ready, with its circuit intact "
            "(unlock it, or let a shutoff finish, first)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if calibrate and info["flame_input"] == "none":
        print(
            f"stove-ctl: --calibrate needs a flame input (inputs.flame) to see whether each "
            f"pulse dropped the valve, and {info['burner']} has none. Commission it without "
            "--calibrate.",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    try:
        if calibrate:
            return _calibrate(session, info)
        return _commission(session, info)
    except NoAnswer:
        session.say("")
        print("stove-ctl: no answer (input ended): nothing was recorded", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Refused as exc:
        print(f"stove-ctl: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _commission(s: Session, info: dict[str, Any]) -> int:
    key, name, channel = info["burner"], info["name"], info["relay"]["channel"]
    wiring, flame_input = info["wiring"], info["flame_input"]
    others = {o["burner"]: o for o in info["others"]}
    s.say(
        f"Commissioning {key} ({name}): relay {info['relay']['device']!r} channel {channel}, "
        f"wiring {wiring}, pulse {info['pulse_s']:g} s, flame input: {flame_input}."
    )
    figures: dict[str, float | None] = {"pulse_s": info["pulse_s"]}
    diagnosis: list[str] = []

    def finish(result: str) -> int:
        reply = s.request(
            {
                "action": "commission_record",
                "burner": key,
                "result": result,
                "diagnosis": diagnosis,
                "answers": s.answers,
                "figures": figures,
                "flame_input": flame_input,
            }
        )
        s.say("")
        if result == "passed":
            s.say(f"PASSED: {key} is commissioned.")
        else:
            s.say(f"FAILED: {key} did not pass commissioning.")
        for line in diagnosis:
            s.say(f"  - {line}")
        shown = {k: v for k, v in figures.items() if v is not None}
        if shown:
            s.say("  figures: " + ", ".join(f"{k} {_num(v)}" for k, v in shown.items()))
        if not reply.get("ok"):
            s.say(f"  (the record could not be kept: {reply.get('error')})")
        else:
            s.say("  The record is kept by the daemon (state_dir/commissioning.json).")
        return EXIT_OK if result == "passed" and reply.get("ok") else EXIT_FAILED

    # 1. Lit, and held by its own circuit.
    lit = s.ask("lit", f"Light {name}: {LIGHT}. Is it lit, and still lit after you let go?")
    if flame_input != "none" and lit:
        info = s.wait_lit(key)
        if info["flame"] != "lit":
            diagnosis.append(
                f"you see {name} lit, but its flame input reads {info['flame']}: check the "
                f"flame input (inputs.flame: its topic and burner); nothing was cut"
            )
            return finish("failed")
    if not lit:
        diagnosis += _why_not_held(s, info)
        return finish("failed")

    # 2. The other burners: lit ones show a relay channel wired to the wrong burner.
    watched = {k for k, o in others.items() if o["flame_input"] != "none"}
    if others and not watched:
        ask_others = s.ask(
            "other_lit",
            "Light another burner of this stove too, if you can (a relay channel wired to "
            "the wrong burner would put that one out instead). Is another burner lit?",
        )
    else:
        ask_others = False
    before = s.info(key)
    others_lit = [o for o in before["others"] if o["flame"] == "lit"]
    figures["mv_before"] = before["mv"]

    # 3. The cut: a normal shutoff through the daemon.
    reply = s.request({"action": "shutoff", "burner": key, "wait": "confirmed"})
    if not reply.get("ok"):
        raise Refused(f"the shutoff was not confirmed: {reply.get('error') or reply}")
    shutoff = reply["burners"][0]
    cut_at, command_id = shutoff["cut_at"], shutoff["command_id"]
    figures["cut_latency_ms"] = shutoff.get("cut_latency_ms")
    s.say(f"Cut at {time.strftime('%H:%M:%S', time.localtime(cut_at))}: watching the flame.")
    if flame_input != "none":
        out_at, lows, gone = watch_out(s, key, before, time.monotonic() + WATCH_S)
        went_out = out_at is not None
        if out_at is not None:
            figures["flame_out_s"] = round(max(out_at - cut_at, 0.0), 2)
        figures["mv_low"] = lows.get(key)
        if before["mv"] is not None and lows.get(key) is not None:
            figures["mv_fall"] = round(before["mv"] - (lows[key] or 0.0), 2)
        others_out = [others[k]["name"] for k in sorted(gone)]
    else:
        went_out = s.ask("flame_out", f"Did the flame of {name} go out?")
        others_out = []
    if ask_others and s.ask("other_out", "Did another burner go out?"):
        others_out = ["another burner"]

    # 4. The restore: the shutoff's own end, after pulse_s.
    restored = _wait_restored(s, key, command_id, info["pulse_s"] + 15.0)
    if not restored:
        diagnosis.append(
            "the circuit was not seen restored after the pulse: see `stove-ctl status` "
            "and `stove-ctl events` (a relay fault is retried until it works)"
        )

    # 5. What the cut did.
    where = f"the cut on channel {channel}"
    if not went_out and others_out:
        diagnosis.append(
            f"you lit {name}, but {where} put out {' and '.join(others_out)}: the relay "
            f"channels are swapped (channel {channel} drives {' and '.join(others_out)}). "
            "Swap the burners' `relay: {channel: …}` in the config, or swap the wires"
        )
    elif went_out and others_out:
        diagnosis.append(
            f"{where} put out {name} and also {' and '.join(others_out)}: one channel is "
            "wired into more than one burner's circuit"
        )
    elif not went_out:
        diagnosis.append(_stayed_lit(wiring, name, bool(others_lit) or ask_others))
    if diagnosis:
        return finish("failed")

    # 6. Relight: the burner must still work.
    relit = s.ask("relit", f"Now relight {name} ({LIGHT}). Does it stay lit?")
    if relit and flame_input != "none" and s.wait_lit(key)["flame"] != "lit":
        relit = False
    if not relit:
        diagnosis.append(
            f"{name} went out on the cut but does not stay lit again: the restore did not "
            "bring the circuit back (check the contact and its wiring, and `stove-ctl status`)"
        )
        return finish("failed")
    s.say(f"Good. You can turn {name} off now.")
    return finish("passed")


def _why_not_held(s: Session, info: dict[str, Any]) -> list[str]:
    """The burner does not stay lit with the relay at rest: an inverted contact (it
    holds while stove-ctl cuts it), or a contact too poor to let the valve hold."""
    name, key, wiring = info["name"], info["burner"], info["wiring"]
    expected = "normally-closed" if wiring == "nc_series" else "normally-open"
    s.say(
        f"{name} does not stay lit with the relay at rest. To find out why, stove-ctl now "
        f"holds its circuit cut (a lock) for a moment."
    )
    reply = s.request({"action": "lock", "burner": key})
    if not reply.get("ok"):
        raise Refused(f"could not lock {key} for the check: {reply.get('error') or reply}")
    try:
        held = s.ask("lit_while_cut", f"Light {name} again ({LIGHT}). Does it stay lit now?")
    finally:
        s.request({"action": "unlock", "burner": key})
    if held:
        s.say(f"Unlocked: {name} goes out now (with this contact, at rest the circuit is broken).")
        return [
            f"{name} stays lit only while stove-ctl cuts it: the contact is the wrong kind. "
            f"`wiring: {wiring}` needs a {expected} contact, and this one works the other way "
            "round (NO and NC terminals swapped). Move the wire to the other terminal, or set "
            "`wiring` to match the contact you used (hardware/WIRING.md)"
        ]
    return [
        f"{name} does not stay lit, with the relay at rest or cut: the thermocouple circuit "
        "cannot hold the valve. Most likely the contact's resistance is too high (a series "
        "contact above ~0.15 Ω stops the valve from holding: measure it, use a signal-rated "
        "contact), or a connection is loose; check the thermocouple too"
    ]


def _stayed_lit(wiring: str, name: str, others_watched: bool) -> str:
    if wiring == "no_parallel":
        text = (
            "the flame stayed lit: the cut did not drop the valve. With `wiring: no_parallel` "
            "the contact must short the thermocouple's two terminals with a good contact "
            "(one of 1 Ω is too poor a short to drop the valve: measure it, use a "
            "signal-rated contact); check also that it is across the terminals of this "
            "burner's thermocouple and that `wiring` matches the relay's contact"
        )
    else:
        text = (
            "the flame stayed lit: check that the contact is in the thermocouple circuit "
            f"and that `wiring` ({wiring}) matches the relay's contact"
        )
    if not others_watched:
        text += (
            "; light another burner and commission again to see whether this relay "
            "channel drives another burner"
        )
    return (
        text + f". The daemon will also cut {name} again and lock it with an alarm: "
        "unlock it once it is fixed"
    )


def _wait_restored(s: Session, key: str, command_id: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = s.request({"action": "status"})
        mine = next((b for b in status.get("burners", []) if b["burner"] == key), None)
        last = (mine or {}).get("last_shutoff") or {}
        if last.get("command_id") == command_id and last.get("outcome") == "restored":
            return True
        if last.get("command_id") != command_id and mine and mine["circuit"] == "intact":
            return True  # a later shutoff took over, and it is over too
        time.sleep(POLL_S)
    return False


def _calibrate(s: Session, info: dict[str, Any]) -> int:
    """Cut for longer and longer pulses (a lock held for the pulse, then unlocked) until
    one drops the valve; suggest pulse_s with a margin. Each drop kills the flame: the
    person relights for the next try. The config is not changed."""
    key, name = info["burner"], info["name"]
    s.say(
        f"Calibrating the pulse of {key}: stove-ctl cuts for {CAL_PULSES_S[0]:g} s, then "
        "longer, until a pulse drops the valve. Each try may put the flame out."
    )
    for pulse in CAL_PULSES_S:
        lit = s.ask("lit", f"Light {name} ({LIGHT}). Is it lit?")
        before = s.wait_lit(key) if lit else s.info(key)
        if not lit or before["flame"] != "lit":
            s.say(f"Calibration needs {name} lit, and its flame input reading lit: stopped.")
            return EXIT_FAILED
        s.say(f"Try: a {pulse:g} s cut.")
        _pulse(s, key, pulse)
        out_at, _, _ = watch_out(s, key, before, time.monotonic() + WATCH_S)
        if out_at is not None:
            suggested = max(0.5, math.ceil(max(3 * pulse, pulse + 1.0) * 2) / 2)
            s.say(
                f"A {pulse:g} s cut dropped the valve. Suggested pulse_s: {suggested:g} "
                f"(three times that, at least 1 s more; now {info['pulse_s']:g}). "
                "The config is not changed: set `pulse_s` on the burner yourself."
            )
            return EXIT_OK
        s.say(f"The {pulse:g} s cut did not drop the valve.")
    s.say(
        f"No cut up to {CAL_PULSES_S[-1]:g} s dropped the valve: the cut does not work. "
        f"Run `stove-ctl commission {info['id']}` for the diagnosis."
    )
    return EXIT_FAILED


def _pulse(s: Session, key: str, seconds: float) -> None:
    """Cut for about ``seconds`` (a lock, then an unlock)."""
    reply = s.request({"action": "lock", "burner": key})
    try:
        if not reply.get("ok"):
            raise Refused(f"could not cut {key}: {reply.get('error') or reply}")
        time.sleep(seconds)
    finally:
        unlocked = s.request({"action": "unlock", "burner": key})
    if not unlocked.get("ok"):
        raise Refused(f"could not end the cut of {key}: {unlocked.get('error')}; it stays locked")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def status_notes(b: dict[str, Any], date: Callable[[float], str]) -> list[str]:
    """Lines ``stove-ctl status`` adds for a burner: its last self-test, and reminders."""
    notes = []
    last = b.get("self_test")
    if last:
        problems = "; ".join(last.get("problems") or [])
        notes.append(
            f"{b['burner']}: self-test {last['result']} {date(last['at'])}"
            + (f": {problems}" if problems else "")
        )
    skipped = b.get("self_test_skipped")
    if skipped:
        notes.append(f"{b['burner']}: self-test skipped {date(skipped['at'])}: {skipped['reason']}")
    for reminder in b.get("reminders") or []:
        notes.append(f"{b['burner']}: REMINDER: {reminder}")
    return notes


def run_self_test(socket: Path, burner: str | None, as_json: bool) -> int:
    """``stove-ctl self-test [BURNER]``: run the self-test now and print each result."""
    import json

    payload: dict[str, Any] = {"action": "self_test"}
    if burner is not None and burner != "all":
        payload["burner"] = burner
    reply = control.request(socket, payload, timeout_s=300)
    if as_json:
        print(json.dumps(reply, ensure_ascii=False, indent=2))
    elif "error" in reply:
        print(f"stove-ctl: {reply['error']}", file=sys.stderr)
    else:
        for r in reply["burners"]:
            why = r.get("reason") or "; ".join(r.get("problems") or [])
            print(f"{r['burner']}: self-test {r['result']}" + (f": {why}" if why else ""))
    if "error" in reply:
        return EXIT_BAD_INPUT
    return EXIT_OK if reply.get("ok") else EXIT_FAILED
