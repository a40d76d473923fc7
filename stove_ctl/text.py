"""Text commands in Chinese and English, turned into the command model.

"十分钟后关左灶", "半小时后关右灶", "一个半小时后关火", "下午六点半关火", "取消定时",
"锁住燃气灶", "turn off the left burner in 10 minutes", "cancel the timer".

The parser never guesses a target: a shutoff names a burner, a side, or the whole
stove ("关火", "the stove"); anything else is an error that says what was understood.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stove_ctl.errors import CommandError

# Words for the usual burner ids, so "左灶" finds a burner called "left".
SIDE_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("左边", "左侧", "左灶", "左眼", "左", "left"),
    "right": ("右边", "右侧", "右灶", "右眼", "右", "right"),
    "front": ("前面", "前边", "前灶", "前", "front"),
    "back": ("后面", "后边", "后灶", "back", "rear"),
    "middle": ("中间", "中灶", "middle", "centre", "center"),
}
ALL_WORDS = ("全部", "所有", "两个", "都", "everything", "every burner", "all", "both")
STOVE_WORDS = (
    "燃气灶",
    "煤气灶",
    "灶台",
    "炉灶",
    "灶",
    "火",
    "燃气",
    "煤气",
    "stove",
    "hob",
    "burner",
    "gas",
    "cooker",
)

ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "四": 4, "五": 5,
             "六": 6, "七": 7, "八": 8, "九": 9}  # fmt: skip
EN_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90,
}  # fmt: skip
NUM = r"[0-9]+(?:\.[0-9]+)?|[零〇一二两俩三四五六七八九十百千万]+"
ZH_UNITS = {"十": 10, "百": 100, "千": 1000}


def zh_number(text: str) -> float:
    """Chinese or Arabic numerals: 十五 -> 15, 二十五 -> 25, 两 -> 2, 1.5 -> 1.5,
    一千零五 -> 1005, and the spoken short forms 一百五 -> 150, 两千五 -> 2500."""
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", text):
        return float(text)
    total, section, current = 0, 0, 0
    for ch in text:
        if ch in ZH_DIGITS:
            current = ZH_DIGITS[ch]
        elif ch in ZH_UNITS:
            section += (current or 1) * ZH_UNITS[ch]
            current = 0
        elif ch == "万":
            total += (section + current or 1) * 10000
            section, current = 0, 0
        else:
            raise ValueError(text)
    if len(text) > 1 and text[-2] in "百千万":  # 一百五: the digit counts in tens
        current *= {"百": 10, "千": 100, "万": 1000}[text[-2]]
    return float(total + section + current)


@dataclass
class Understood:
    action: str | None = None
    burners: set[str] = field(default_factory=set)
    whole_stove: bool = False
    in_s: float | None = None
    at: str | None = None
    unknown_place: str | None = None

    def describe(self) -> str:
        parts = [f"action={self.action or '?'}"]
        if self.burners:
            parts.append("burner=" + ",".join(sorted(self.burners)))
        elif self.whole_stove:
            parts.append("burner=all")
        if self.in_s is not None:
            parts.append(f"in={self.in_s:g}s")
        if self.at is not None:
            parts.append(f"at={self.at}")
        return ", ".join(parts)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()  # full-width digits and colons
    return re.sub(r"[，。！？!?,;；、\"'“”]", " ", text).strip()


def _durations(text: str) -> tuple[float | None, str]:
    """Find a relative delay; return (seconds, text without it)."""
    zh = re.search(
        rf"(?:(?P<h>{NUM})\s*(?:个)?(?P<half>半)?\s*(?:小时|钟头|鐘頭))?"
        rf"\s*(?:(?P<m>{NUM})\s*分(?:钟)?)?\s*(?:(?P<s>{NUM})\s*秒(?:钟)?)?"
        r"\s*(?P<after>以后|之后|后)",
        text,
    )
    if zh and (zh.group("h") or zh.group("m") or zh.group("s")):
        seconds = 0.0
        if zh.group("h"):
            seconds += zh_number(zh.group("h")) * 3600 + (1800 if zh.group("half") else 0)
        if zh.group("m"):
            seconds += zh_number(zh.group("m")) * 60
        if zh.group("s"):
            seconds += zh_number(zh.group("s"))
        return seconds, text[: zh.start()] + " " + text[zh.end() :]
    half = re.search(r"半(?:个)?(?:小时|钟头)\s*(?:以后|之后|后)", text)
    if half:
        return 1800.0, text[: half.start()] + " " + text[half.end() :]
    # Before the general form below, which would read "in an hour" out of it.
    half_en = re.search(r"\bin\s+(?:half\s+an\s+hour|an\s+hour\s+and\s+a\s+half)\b", text)
    if half_en:
        seconds = 1800.0 if "half an hour" in half_en.group(0) else 5400.0
        return seconds, text[: half_en.start()] + " " + text[half_en.end() :]
    en = re.search(
        r"\b(?:in|after)\s+(?P<n>[0-9]+(?:\.[0-9]+)?|[a-z-]+|half an?)\s*"
        r"(?P<unit>hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)\b",
        text,
    )
    if en:
        word = en.group("n")
        if word.startswith("half"):
            number = 0.5
        elif word in EN_NUMBERS:
            number = float(EN_NUMBERS[word])
        else:
            try:
                number = float(word)
            except ValueError:
                return None, text
        unit = en.group("unit")[0]
        seconds = number * {"h": 3600, "m": 60, "s": 1}[unit]
        return seconds, text[: en.start()] + " " + text[en.end() :]
    return None, text


def _clock_time(text: str) -> tuple[str | None, str]:
    """Find a clock time; return ("HH:MM", text without it)."""
    colon = re.search(r"(?<![0-9])([01]?[0-9]|2[0-3])[:：]([0-5][0-9])(?![0-9])", text)
    if colon:
        hour, minute = int(colon.group(1)), int(colon.group(2))
        before = text[max(0, colon.start() - 4) : colon.start()]
        after = text[colon.end() : colon.end() + 4]
        ampm = re.match(r"\s*([ap])m\b", after)
        if ampm is not None:  # 12:30 pm is 12:30, 12:30 am is 00:30
            if ampm.group(1) == "p" and hour < 12:
                hour += 12
            elif ampm.group(1) == "a" and hour == 12:
                hour = 0
        elif hour < 12 and re.search(r"下午|晚上|傍晚", before):
            hour += 12
        elif hour == 12 and re.search(r"晚上|凌晨", before):  # 晚上12:00 is midnight
            hour = 0
        return f"{hour:02d}:{minute:02d}", text[: colon.start()] + " " + text[colon.end() :]
    zh = re.search(
        rf"(?P<period>凌晨|早上|上午|中午|下午|傍晚|晚上)?\s*(?P<h>{NUM})\s*点"
        rf"(?:\s*(?P<half>半)|\s*(?P<q>一刻|三刻)|\s*(?P<m>{NUM})\s*分?)?",
        text,
    )
    if zh:
        hour = int(zh_number(zh.group("h")))
        minute = 30 if zh.group("half") else 0
        if zh.group("q"):
            minute = 15 if zh.group("q") == "一刻" else 45
        elif zh.group("m"):
            minute = int(zh_number(zh.group("m")))
        period = zh.group("period") or ""
        if period in ("下午", "傍晚", "晚上") and hour < 12:
            hour += 12
        if period == "中午" and hour < 11:
            hour += 12
        if period in ("晚上", "凌晨") and hour == 12:  # 晚上十二点 is midnight
            hour = 0
        if hour > 23 or minute > 59:
            return None, text
        return f"{hour:02d}:{minute:02d}", text[: zh.start()] + " " + text[zh.end() :]
    en = re.search(r"\bat\s+([0-9]{1,2})(?::([0-5][0-9]))?\s*(am|pm)?\b", text)
    if en:
        hour, minute = int(en.group(1)), int(en.group(2) or 0)
        if en.group(3) == "pm" and hour < 12:
            hour += 12
        if en.group(3) == "am" and hour == 12:
            hour = 0
        if hour > 23:
            return None, text
        return f"{hour:02d}:{minute:02d}", text[: en.start()] + " " + text[en.end() :]
    return None, text


def _action(text: str) -> str | None:
    checks = (
        ("cancel", r"取消|不用关|别关|\bcancel\b|\bnever ?mind\b|\bstop the timer\b"),
        ("unlock", r"解锁|解除锁|\bunlock\b"),
        ("lock", r"锁|\block\b"),
        ("extend", r"延长|推迟|延后|\bextend\b|\bpostpone\b|\bdelay\b"),
        ("status", r"状态|怎么样|开着吗|关了吗|\bstatus\b|\bis\b.*\bon\b|\bare\b.*\bon\b"),
        (
            "shutoff",
            r"关|熄|灭|\bturn\s+(?:\w+\s+)*off\b|\bswitch\s+(?:\w+\s+)*off\b|\bshut\s+(?:\w+\s+)*off\b|\boff\b|\bkill\b|\bstop\b",
        ),
    )
    for action, pattern in checks:
        if re.search(pattern, text):
            return action
    return None


def _places(text: str, burner_words: dict[str, str], u: Understood) -> None:
    rest = text
    for word in sorted(burner_words, key=len, reverse=True):
        if word and word in rest:
            u.burners.add(burner_words[word])
            rest = rest.replace(word, " ")
    for side, words in SIDE_WORDS.items():
        for word in words:
            if (word.isascii() and re.search(rf"\b{word}\b", rest)) or (
                not word.isascii() and word in rest
            ):
                u.unknown_place = side  # a side this stove has no burner for
    if any(
        (w.isascii() and re.search(rf"\b{w}\b", rest)) or (not w.isascii() and w in rest)
        for w in ALL_WORDS + STOVE_WORDS
    ):
        u.whole_stove = True


def burner_vocabulary(burners: Iterable[tuple[str, str, str | None, list[str]]]) -> dict[str, str]:
    """Words -> burner key, from (key, id, name, aliases) of every configured burner."""
    vocabulary: dict[str, str] = {}
    for key, burner_id, name, aliases in burners:
        words = [burner_id, key, *aliases, *SIDE_WORDS.get(burner_id, ())]
        if name:
            words.append(name.lower())
        for word in words:
            vocabulary[word.lower()] = key
    return vocabulary


def parse_text(text: str, vocabulary: dict[str, str]) -> dict[str, Any]:
    """Turn an utterance into a command (a dict for the command model)."""
    original = text
    text = _normalise(text)
    if not text:
        raise CommandError("not_understood", "the text is empty")
    if len(text) > 200:
        raise CommandError("not_understood", "the text is too long (200 characters at most)")
    u = Understood()
    u.in_s, text = _durations(text)
    if u.in_s is None:
        u.at, text = _clock_time(text)
    _places(text, vocabulary, u)
    u.action = _action(text)
    if u.action is None:
        raise CommandError(
            "not_understood", f"not understood: {original!r} (understood: {u.describe()})"
        )
    if u.unknown_place is not None and not u.burners:
        raise CommandError(
            "unknown_burner",
            f"this stove has no {u.unknown_place} burner (understood: {u.describe()})",
        )
    if u.action == "shutoff" and (u.in_s is not None or u.at is not None):
        u.action = "timer"
    if u.action in ("lock", "unlock", "cancel", "status") and (u.in_s or u.at) is not None:
        # Dropping the delay would do it now: an unlock asked "in ten minutes" must not
        # happen at once. Timers only cut.
        raise CommandError(
            "not_understood",
            f"{u.action} cannot be put off; say it when it should happen "
            f"(understood: {u.describe()})",
        )
    if u.action == "extend" and u.in_s is None:
        raise CommandError("not_understood", f"extend by how long? (understood: {u.describe()})")
    command: dict[str, Any] = {"action": u.action}
    if len(u.burners) == 1:
        command["burner"] = next(iter(u.burners))
    elif len(u.burners) > 1 and u.action not in ("status",):
        if set(u.burners) == set(vocabulary.values()):
            command["burner"] = "all"
        else:
            raise CommandError(
                "not_understood", f"name one burner or all of them (understood: {u.describe()})"
            )
    elif u.whole_stove or u.action in ("status", "cancel"):
        command["burner"] = "all"
    else:
        raise CommandError(
            "not_understood",
            f"which burner? say left, right or all (understood: {u.describe()})",
        )
    if u.in_s is not None and u.action in ("timer", "extend", "snooze"):
        command["in"] = u.in_s
    if u.at is not None and u.action == "timer":
        command["at"] = u.at
    return command
