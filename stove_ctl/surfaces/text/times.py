"""Durations and times of day, read whole or not at all.

Each matcher looks at one position of a normalised utterance and returns how far its
expression reaches and what it says. A value that is out of range (an hour 25, a
minute 99, units out of order) is still matched whole and comes back as a
:class:`BadValue`, so the command is refused with the reason instead of the
expression being dropped or read in part.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass

from stove_ctl.surfaces.text.numbers import EN_NUM, EN_ONES, ZH_NUM, en_number, zh_number


@dataclass(frozen=True)
class Duration:
    seconds: float


@dataclass(frozen=True)
class ClockTime:
    """A time of day. ``twelve_hour``: said without am/pm or a period of the day, so
    it is the next such time within 12 hours (resolved against "now")."""

    hour: int
    minute: int
    twelve_hour: bool = False

    def resolve(self, now: dt.datetime) -> str:
        """HH:MM on the 24-hour clock. A 12-hour time is the next one after ``now``
        (of ``hour`` and ``hour + 12``), as the timer service reads "HH:MM": the next
        such time, strictly after now."""
        if not self.twelve_hour:
            return f"{self.hour:02d}:{self.minute:02d}"
        candidates = []
        for hour in (self.hour % 12, self.hour % 12 + 12):
            due = now.replace(hour=hour, minute=self.minute, second=0, microsecond=0)
            if due <= now:
                due += dt.timedelta(days=1)
            candidates.append((due, hour))
        hour = min(candidates)[1]
        return f"{hour:02d}:{self.minute:02d}"

    def describe(self) -> str:
        suffix = " (12-hour)" if self.twelve_hour else ""
        return f"{self.hour:02d}:{self.minute:02d}{suffix}"


@dataclass(frozen=True)
class BadValue:
    reason: str


Value = Duration | ClockTime | BadValue

# -- durations ----------------------------------------------------------------------


def _unnamed(pattern: str) -> str:
    """The pattern as one group, its named groups unnamed, so that it can repeat."""
    return "(?:" + re.sub(r"\(\?P<\w+>", "(?:", pattern) + ")"


_ZH_PART = (
    rf"(?P<n>{ZH_NUM}|半)\s*"
    r"(?P<unit>个\s*半\s*(?:小时|钟头|钟)|个?\s*(?:小时|钟头)|个\s*钟|分钟|分|刻钟|秒钟|秒)"
    r"(?P<half>\s*半(?:钟)?)?"
)
_ZH_DURATION = re.compile(rf"{_unnamed(_ZH_PART)}(?:\s*零?\s*{_unnamed(_ZH_PART)})*")
_ZH_PART_RE = re.compile(_ZH_PART)

_EN_UNIT = r"hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s"
_EN_PART = (
    rf"(?:(?P<n>{EN_NUM})(?P<andhalf>\s+and\s+a\s+half)?\s*(?P<unit>{_EN_UNIT})(?![a-z])"
    r"(?P<half>\s+and\s+a\s+half(?![a-z]))?"
    r"|half\s+an?\s+(?P<halfunit>hour|minute)(?![a-z])"
    r"|(?P<quarter>(?:a\s+|one\s+|three\s+)?quarters?)\s+of\s+an\s+hour(?![a-z])"
    r"|a\s+quarter\s+hour(?![a-z]))"
)
_EN_DURATION = re.compile(rf"{_unnamed(_EN_PART)}(?:\s*(?:and\s+)?{_unnamed(_EN_PART)})*")
_EN_PART_RE = re.compile(_EN_PART)

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def _zh_unit(unit: str) -> tuple[float, bool]:
    """Seconds per unit, and whether the unit carries a half (个半小时)."""
    unit = re.sub(r"\s+", "", unit)
    if "刻" in unit:
        return 900.0, False
    if "秒" in unit:
        return 1.0, False
    if "分" in unit:
        return 60.0, False
    return 3600.0, "半" in unit


def _checked_sum(parts: list[tuple[float, float]]) -> Value:
    """Sum (unit seconds, amount) parts, units strictly largest first."""
    units = [unit for unit, _ in parts]
    if any(a <= b for a, b in itertools.pairwise(units)):
        return BadValue("the parts of that duration are out of order or repeated")
    return Duration(sum(unit * amount for unit, amount in parts))


def match_zh_duration(text: str, pos: int) -> tuple[int, Value] | None:
    found = _ZH_DURATION.match(text, pos)
    if found is None:
        return None
    parts = []
    for part in _ZH_PART_RE.finditer(found.group(0)):
        unit, carries_half = _zh_unit(part.group("unit"))
        said = part.group("n")
        try:
            amount = 0.5 if said == "半" else zh_number(said)
        except ValueError:
            return found.end(), BadValue(f"cannot read the number {said!r}")
        if said == "半" and (carries_half or part.group("half")):
            return found.end(), BadValue("half of half?")
        amount += 0.5 if (carries_half or part.group("half")) else 0.0
        parts.append((unit, amount))
    return found.end(), _checked_sum(parts)


def match_en_duration(text: str, pos: int) -> tuple[int, Value] | None:
    if pos > 0 and text[pos - 1].isascii() and text[pos - 1].isalnum():
        return None
    found = _EN_DURATION.match(text, pos)
    if found is None:
        return None
    parts = []
    for part in _EN_PART_RE.finditer(found.group(0)):
        if part.group("halfunit"):
            parts.append((3600.0 if part.group("halfunit") == "hour" else 60.0, 0.5))
            continue
        if part.group("n") is None:  # a quarter of an hour, three quarters of an hour
            quarters = 3 if (part.group("quarter") or "").startswith("three") else 1
            parts.append((60.0, 15.0 * quarters))
            continue
        amount = en_number(part.group("n"))
        if part.group("andhalf") or part.group("half"):
            amount += 0.5
        parts.append((_UNIT_SECONDS[part.group("unit")[0]], amount))
    return found.end(), _checked_sum(parts)


# -- times of day ---------------------------------------------------------------------

# Periods of the day: hour said -> hour on the 24-hour clock, for the hours that
# period has. An hour the period does not have (上午14点, 晚上3点) is refused.
_PM = {h: h + 12 for h in range(1, 12)} | {h: h for h in range(12, 24)}
_PERIODS: dict[str, dict[int, int]] = {
    "凌晨": {0: 0, 12: 0} | {h: h for h in range(1, 7)},
    "早上": {h: h for h in range(4, 13)},
    "早晨": {h: h for h in range(4, 13)},
    "清晨": {h: h for h in range(4, 9)},
    "上午": {h: h for h in range(5, 13)},
    "中午": {11: 11, 12: 12, 1: 13, 2: 14, 13: 13, 14: 14},
    "下午": _PM,
    "傍晚": {h: h + 12 for h in range(4, 9)} | {h: h for h in range(16, 21)},
    "晚上": {h: h + 12 for h in range(6, 12)} | {12: 0} | {h: h for h in range(18, 24)},
    "今晚": {h: h + 12 for h in range(6, 12)} | {12: 0} | {h: h for h in range(18, 24)},
    "夜里": {h: h + 12 for h in range(9, 12)} | {12: 0} | {h: h for h in range(1, 5)},
    "半夜": {h: h + 12 for h in range(11, 12)} | {12: 0} | {h: h for h in range(0, 5)},
    "深夜": {h: h + 12 for h in range(10, 12)} | {12: 0} | {h: h for h in range(0, 5)},
}
_PERIOD = "|".join(sorted(_PERIODS, key=len, reverse=True))
_ZH_CLOCK = re.compile(
    rf"(?:(?P<period>{_PERIOD})\s*)?(?P<h>{ZH_NUM})\s*(?:点钟|点|时)"
    rf"(?:\s*(?P<half>半)|\s*(?P<q>一刻|三刻)|\s*(?P<m>{ZH_NUM})\s*(?:分(?!钟))?)?"
)
_COLON_CLOCK = re.compile(
    rf"(?:(?P<period>{_PERIOD})\s*)?(?P<h>[0-9]{{1,2}}):(?P<m>[0-9]{{2}})(?![0-9])"
    r"(?:\s*(?P<ampm>am|pm)(?![a-z]))?"
)
_EN_HOUR = "|".join(w for w, n in EN_ONES.items() if 1 <= n <= 12)
_EN_CLOCK = re.compile(
    rf"(?:(?P<at>at)\s+)?(?:(?P<noon>noon|midday|midnight)"
    rf"|(?P<h>[0-9]{{1,2}}|{_EN_HOUR})(?::(?P<m>[0-9]{{2}}))?"
    r"(?:\s*(?P<ampm>am|pm|o'clock|oclock)(?![a-z]))?)(?![a-z0-9:])"
)


def _clock(hour: int, minute: int, period: str | None, ampm: str | None) -> Value:
    if minute > 59:
        return BadValue(f"there is no minute {minute}")
    if hour > 23:
        return BadValue(f"there is no hour {hour}")
    if period is not None:
        table = _PERIODS[period]
        if hour not in table:
            return BadValue(f"{period}{hour}点 is not a time of day")
        return ClockTime(table[hour], minute)
    if ampm in ("am", "pm"):
        if not 1 <= hour <= 12:
            return BadValue(f"there is no {hour} {ampm}")
        return ClockTime(hour % 12 + (12 if ampm == "pm" else 0), minute)
    return ClockTime(hour, minute, twelve_hour=1 <= hour <= 12)


def match_zh_clock(text: str, pos: int) -> tuple[int, Value] | None:
    found = _ZH_CLOCK.match(text, pos) or _COLON_CLOCK.match(text, pos)
    if found is None:
        return None
    groups = found.groupdict()
    try:
        hour = int(zh_number(groups["h"]))
        minute = int(zh_number(groups["m"])) if groups.get("m") else 0
    except ValueError:
        return found.end(), BadValue(f"cannot read the time {found.group(0)!r}")
    if groups.get("half"):
        minute = 30
    if groups.get("q"):
        minute = 15 if groups["q"] == "一刻" else 45
    return found.end(), _clock(hour, minute, groups.get("period"), groups.get("ampm"))


def match_en_clock(text: str, pos: int) -> tuple[int, Value] | None:
    if pos > 0 and text[pos - 1].isascii() and text[pos - 1].isalnum():
        return None
    found = _EN_CLOCK.match(text, pos)
    if found is None:
        return None
    if found.group("noon"):
        if not found.group("at"):
            return None
        return found.end(), ClockTime(0 if found.group("noon") == "midnight" else 12, 0)
    ampm = found.group("ampm")
    if not (found.group("at") or found.group("m") or ampm):
        return None  # a bare number is not a time
    said = found.group("h")
    hour = int(said) if said.isdigit() else int(EN_ONES[said])
    if not said.isdigit() and not (found.group("at") or ampm):
        return None
    minute = int(found.group("m") or 0)
    if ampm in ("o'clock", "oclock"):
        ampm = None
    return found.end(), _clock(hour, minute, None, ampm)


MATCHERS = (match_zh_duration, match_en_duration, match_zh_clock, match_en_clock)
