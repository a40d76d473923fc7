"""The grammar: every word of an utterance is read, or the command is refused.

An utterance is scanned into tokens, longest match first: a time or duration
(stove_ctl/surfaces/text/times.py), a word the grammar knows (stove_ctl/surfaces/text/words.py), or
one of this stove's burner names. Whatever is left is an unknown word, and an
unknown word refuses the command with what was understood. So does a negation, an
action mixed with another ("关掉左灶 打开左灶"), a time that is out of range, a time
the action cannot take, and a marker ("in", "后") with no time next to it. A delay
is never dropped: it becomes the command's delay, or the command is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stove_ctl.core.commands import parse_duration
from stove_ctl.errors import CommandError
from stove_ctl.surfaces.text import words
from stove_ctl.surfaces.text.numbers import normalise
from stove_ctl.surfaces.text.times import MATCHERS, BadValue, ClockTime, Duration, Value

MAX_CHARS = 200
PLACES = ("burner", "side", "stove", "all")


@dataclass(frozen=True)
class Token:
    kind: str
    value: Any
    text: str


def _base_lexicon() -> dict[str, tuple[str, Any]]:
    lexicon: dict[str, tuple[str, Any]] = {}

    def add(kind: str, entries: Iterable[str], value: Any = None) -> None:
        for word in entries:
            lexicon[normalise(word)] = (kind, value)

    add("filler", words.FILLERS)
    add("polite", words.POLITE)
    add("stove", words.STOVE_WORDS)
    add("all", words.ALL_WORDS)
    for side, side_words in words.SIDE_WORDS.items():
        add("side", side_words, side)
    add("timer", words.TIMER_WORDS)
    add("rule", words.RULE_WORDS)
    add("delay_before", words.DELAY_BEFORE)
    add("delay_after", words.DELAY_AFTER)
    add("by", words.BY_WORDS)
    add("for", words.FOR_WORDS)
    add("clock_after", words.CLOCK_AFTER)
    add("clock_before", words.CLOCK_BEFORE)
    add("turn", words.TURN_VERBS)
    for particle, direction in words.PARTICLES.items():
        add("particle", [particle], direction)
    for action, action_words in words.ACTION_WORDS.items():
        add("action", action_words, action)
    add("neg", words.NEGATIONS)  # last: a negation is never read as anything else
    return lexicon


BASE_LEXICON = _base_lexicon()


def _is_word_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch in "'-")


def scan(text: str, vocabulary: dict[str, str]) -> list[Token]:
    """Tokens of a normalised utterance; what no rule reads becomes an ``unknown``."""
    lexicon = dict(BASE_LEXICON)
    for word, key in vocabulary.items():
        lexicon[normalise(word)] = ("burner", key)
    longest = max(len(w) for w in lexicon)
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos] == " ":
            pos += 1
            continue
        best: tuple[int, Token] | None = None
        for matcher in MATCHERS:
            found = matcher(text, pos)
            if found is not None and (best is None or found[0] > best[0]):
                best = (found[0], Token("time", found[1], text[pos : found[0]]))
        for size in range(min(longest, len(text) - pos), 0, -1):
            end = pos + size
            word = text[pos:end]
            if word not in lexicon:
                continue
            # An English word ends where a word ends: "off" is not the start of "office".
            if _is_word_char(word[-1]) and end < len(text) and _is_word_char(text[end]):
                continue
            if best is None or end > best[0]:
                kind, value = lexicon[word]
                best = (end, Token(kind, value, word))
            break
        if best is None:
            end = pos + 1
            if _is_word_char(text[pos]):
                while end < len(text) and _is_word_char(text[end]):
                    end += 1
            best = (end, Token("unknown", None, text[pos:end]))
        tokens.append(best[1])
        pos = best[0]
    return tokens


def _describe(tokens: list[Token], actions: Iterable[str] = ()) -> str:
    """What was understood, for an error message: action=…, burner=…, in=…, at=…."""
    named = sorted(set(actions)) or sorted(
        {t.value for t in tokens if t.kind in ("action", "particle") and t.value != "set"}
    )
    parts = [f"action={'/'.join(named) or '?'}"]
    burners = sorted({t.value for t in tokens if t.kind == "burner"})
    if burners:
        parts.append("burner=" + ",".join(burners))
    elif any(t.kind in ("all", "stove") for t in tokens):
        parts.append("burner=all")
    for t in tokens:
        if isinstance(t.value, Duration):
            parts.append(f"in={t.value.seconds:g}s")
        elif isinstance(t.value, ClockTime):
            parts.append(f"at={t.value.describe()}")
    return ", ".join(parts)


class _Refusal:
    """Builds the CommandError for a refused utterance, always with what was understood."""

    def __init__(self, original: str, tokens: list[Token]) -> None:
        self.original = original
        self.tokens = tokens
        self.actions: list[str] = []

    def __call__(self, message: str, code: str = "not_understood") -> CommandError:
        understood = _describe(self.tokens, self.actions)
        return CommandError(code, f"{message} (understood: {understood}); nothing was done")


def _actions(tokens: list[Token], refuse: _Refusal) -> set[str]:
    """The actions said: action words, and "turn"/"switch" paired with the particle that
    follows it ("turn the left burner off"). An "on" that no verb takes is a
    preposition if a place follows it ("the lock on the left burner")."""
    said = {t.value for t in tokens if t.kind == "action"}
    verb: Token | None = None
    question = "status" in said
    for i, t in enumerate(tokens):
        if t.kind == "turn":
            if verb is not None:
                raise refuse(f"{verb.text!r} what? (say off)")
            verb = t
        elif t.kind == "particle":
            if verb is not None:
                said.add(t.value)
                verb = None
                continue
            if t.text == "on" and (_place_follows(tokens, i) or question):
                continue
            if t.text == "off" and question:
                continue
            said.add(t.value)
    if verb is not None:
        raise refuse(f"{verb.text!r} what? (say off)")
    return said


def _place_follows(tokens: list[Token], i: int) -> bool:
    """A burner or the stove follows token i, perhaps after "the" / "my"."""
    for t in tokens[i + 1 :]:
        if t.kind != "filler" or t.text not in ("the", "my"):
            return t.kind in PLACES
    return False


def _time(tokens: list[Token], refuse: _Refusal) -> tuple[Value | None, str | None]:
    """The one time or duration said, and how it is tied to the command: "delay"
    (in, after, 后, 过…), "by", "for", or None (said bare)."""
    times = [i for i, t in enumerate(tokens) if t.kind == "time"]
    for i, t in enumerate(tokens):
        if t.kind in ("delay_before", "by", "for"):
            after = tokens[i + 1] if i + 1 < len(tokens) else None
            if t.kind == "for" and _place_follows(tokens, i):
                continue  # "for the left burner"
            if after is None or not isinstance(after.value, Duration):
                raise refuse(f"{t.text!r} without a duration right after it")
        elif t.kind == "delay_after":
            before = tokens[i - 1] if i > 0 else None
            if before is None or not isinstance(before.value, Duration):
                raise refuse(f"{t.text!r} without a duration right before it")
        elif t.kind == "clock_after":
            before = tokens[i - 1] if i > 0 else None
            if before is None or not isinstance(before.value, ClockTime):
                raise refuse(f"{t.text!r} without a time of day right before it")
        elif t.kind == "clock_before":
            after = tokens[i + 1] if i + 1 < len(tokens) else None
            if after is None or not isinstance(after.value, ClockTime):
                raise refuse(f"{t.text!r} without a time of day right after it")
    if not times:
        return None, None
    if len(times) > 1:
        said = " and ".join(repr(tokens[i].text) for i in times)
        raise refuse(f"more than one time or duration: {said}")
    i = times[0]
    value = tokens[i].value
    if isinstance(value, BadValue):
        raise refuse(f"{tokens[i].text!r}: {value.reason}", code="bad_command")
    left = tokens[i - 1].kind if i > 0 else None
    right = tokens[i + 1].kind if i + 1 < len(tokens) else None
    if left == "delay_before" or right == "delay_after":
        return value, "delay"
    if left in ("by", "for"):
        return value, left
    return value, None


def parse_text(
    text: str, vocabulary: dict[str, str], now: dt.datetime | None = None
) -> dict[str, Any]:
    """Turn an utterance into a command (a dict for the command model), or raise
    CommandError saying why not and what was understood.

    ``now`` (timezone-aware, the daemon's zone) places a 12-hour time ("2点", "at 2")
    at the next such time; without it such a time is refused."""
    original = text
    text = normalise(text)
    if not text:
        raise CommandError("not_understood", "the text is empty")
    if len(text) > MAX_CHARS:
        raise CommandError(
            "not_understood", f"the text is too long ({MAX_CHARS} characters at most)"
        )
    tokens = scan(text, vocabulary)
    refuse = _Refusal(original, tokens)
    negations = [t.text for t in tokens if t.kind == "neg"]
    if negations:
        raise refuse(f"it says not to ({negations[0]!r}), so it is refused")
    unknown = [t.text for t in tokens if t.kind == "unknown"]
    if unknown:
        listed = ", ".join(repr(w) for w in dict.fromkeys(unknown))
        raise refuse(f"not understood: {original!r}: unknown words {listed}")
    actions = _actions(tokens, refuse)
    value, tie = _time(tokens, refuse)
    nouns = {t.kind for t in tokens if t.kind in ("timer", "rule")}
    if "on" in actions:
        raise refuse("stove-ctl can only turn gas off; a burner is lit by hand")
    if "down" in actions:
        raise refuse("turning a flame down is not a shutoff")
    setting = "set" in actions
    actions.discard("set")
    if setting and not actions:
        actions.add("shutoff")
    refuse.actions = sorted(actions)
    if len(actions) > 1:
        raise refuse("it says " + " and ".join(sorted(actions)) + "; say one thing at a time")
    if not actions:
        raise refuse(f"not understood: {original!r}: no action")
    action = actions.pop()
    if "rule" in nouns and action != "snooze":
        raise refuse(f"a rule can be snoozed, not {action}")
    if "timer" in nouns and action in ("lock", "unlock", "status", "snooze"):
        raise refuse(f"{action} is not something a timer does")
    if setting and "timer" not in nouns:
        raise refuse("set what? (say set a timer)")

    command: dict[str, Any] = {}
    if action == "shutoff":
        if isinstance(value, ClockTime):
            if value.twelve_hour and now is None:
                raise refuse("which one: say am or pm (上午 or 下午)")
            command = {"action": "timer", "at": value.resolve(now) if now else value.resolve(_T0)}
        elif isinstance(value, Duration):
            if tie == "delay" or (tie in (None, "for") and "timer" in nouns):
                command = {"action": "timer", "in": value.seconds}
            else:
                raise refuse("say when: 'in 10 minutes' or '10分钟后'")
        elif "timer" in nouns:
            raise refuse("to stop a timer say cancel the timer (取消定时); to set one, say when")
        else:
            command = {"action": "shutoff"}
    elif action in ("extend", "snooze"):
        if not isinstance(value, Duration):
            raise refuse(f"{action} by how long?")
        if action == "snooze" and tie == "delay":
            raise refuse("snooze for how long? (say snooze 10 minutes)")
        command = {"action": action, "in": value.seconds}
    else:
        if value is not None:
            raise refuse(f"{action} cannot be put off; say it when it should happen")
        command = {"action": action}
    if "in" in command:
        try:
            command["in"] = parse_duration(command["in"])
        except ValueError as exc:
            raise refuse(str(exc), code="bad_command") from None
    command["burner"] = _target(tokens, command["action"], vocabulary, refuse)
    return {"action": command.pop("action"), "burner": command.pop("burner"), **command}


# A resolved 12-hour time is only used when ``now`` was given; a 24-hour time needs no date.
_T0 = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _target(tokens: list[Token], action: str, vocabulary: dict[str, str], refuse: _Refusal) -> str:
    burners: set[str] = {t.value for t in tokens if t.kind == "burner"}
    sides = [t.value for t in tokens if t.kind == "side"]
    if sides:
        raise refuse(f"this stove has no {sides[0]} burner", code="unknown_burner")
    if len(burners) == 1:
        return burners.pop()
    if burners:
        if burners == set(vocabulary.values()):
            return "all"
        raise refuse("name one burner or all of them")
    if any(t.kind in ("all", "stove") for t in tokens):
        return "all"
    if action in ("status", "cancel", "extend", "snooze"):
        return "all"
    raise refuse("which burner? say left, right or all")
