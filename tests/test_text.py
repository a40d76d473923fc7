"""Text commands, Chinese and English: a table of utterances and what they must become."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stove_ctl.core.commands import parse_command
from stove_ctl.core.timers import parse_at
from stove_ctl.errors import CommandError
from stove_ctl.surfaces.control import run_text
from stove_ctl.surfaces.text import (
    NEGATIONS,
    burner_vocabulary,
    normalise,
    parse_text,
    scan,
    zh_number,
)
from stove_ctl.surfaces.text.grammar import BASE_LEXICON
from stove_ctl.surfaces.text.numbers import EN_ONES, EN_TENS
from tests.conftest import run

VOCAB = burner_vocabulary(
    [
        ("kitchen/left", "left", "Left burner", ["大火眼"]),
        ("kitchen/right", "right", "Right burner", []),
    ]
)
L, R = "kitchen/left", "kitchen/right"
# "Now" for times of day: 13:58 in Shanghai (a 12-hour time is the next one after it).
NOW = dt.datetime(2026, 12, 5, 13, 58, tzinfo=ZoneInfo("Asia/Shanghai"))

CASES = [
    # Chinese: shut off now
    ("关火", {"action": "shutoff", "burner": "all"}),
    ("关掉左边的火", {"action": "shutoff", "burner": L}),
    ("关左灶", {"action": "shutoff", "burner": L}),
    ("把右边的火关了", {"action": "shutoff", "burner": R}),
    ("关闭右灶", {"action": "shutoff", "burner": R}),
    ("熄灭左边", {"action": "shutoff", "burner": L}),
    ("关掉所有的火", {"action": "shutoff", "burner": "all"}),
    ("全部关掉", {"action": "shutoff", "burner": "all"}),
    ("关燃气灶", {"action": "shutoff", "burner": "all"}),
    ("关掉大火眼", {"action": "shutoff", "burner": L}),
    ("左边和右边都关掉", {"action": "shutoff", "burner": "all"}),
    ("关掉煤气", {"action": "shutoff", "burner": "all"}),
    # Chinese: timers
    ("十分钟后关火", {"action": "timer", "burner": "all", "in": 600}),
    ("半小时后关右灶", {"action": "timer", "burner": R, "in": 1800}),
    ("一个半小时后关火", {"action": "timer", "burner": "all", "in": 5400}),
    ("1.5小时后关左边", {"action": "timer", "burner": L, "in": 5400}),
    ("十五分钟后关左灶", {"action": "timer", "burner": L, "in": 900}),
    ("二十五分钟以后关掉右边的火", {"action": "timer", "burner": R, "in": 1500}),
    ("两分钟后关火", {"action": "timer", "burner": "all", "in": 120}),
    ("一小时后关左灶", {"action": "timer", "burner": L, "in": 3600}),
    ("一个小时十分钟后关火", {"action": "timer", "burner": "all", "in": 4200}),
    ("30秒后关右边", {"action": "timer", "burner": R, "in": 30}),
    ("五分钟之后关掉左边", {"action": "timer", "burner": L, "in": 300}),
    ("下午六点半关火", {"action": "timer", "burner": "all", "at": "18:30"}),
    ("晚上七点关左灶", {"action": "timer", "burner": L, "at": "19:00"}),
    ("18:30关火", {"action": "timer", "burner": "all", "at": "18:30"}),
    # A bare 12-hour time is the next one (issue 20): 18:15 when said at 13:58.
    ("六点一刻关右边", {"action": "timer", "burner": R, "at": "18:15"}),
    ("中午十二点关火", {"action": "timer", "burner": "all", "at": "12:00"}),
    ("下午5:45关左边的火", {"action": "timer", "burner": L, "at": "17:45"}),
    # Chinese: cancel, lock, unlock, status, extend
    ("取消定时", {"action": "cancel", "burner": "all"}),
    ("取消左边的定时", {"action": "cancel", "burner": L}),
    ("锁住燃气灶", {"action": "lock", "burner": "all"}),
    ("锁定右灶", {"action": "lock", "burner": R}),
    ("解锁左灶", {"action": "unlock", "burner": L}),
    ("燃气灶状态怎么样", {"action": "status", "burner": "all"}),
    ("火关了吗", {"action": "status", "burner": "all"}),
    ("左边定时延长十分钟后", {"action": "extend", "burner": L, "in": 600}),
    # English
    ("turn off the stove", {"action": "shutoff", "burner": "all"}),
    ("Turn off the left burner", {"action": "shutoff", "burner": L}),
    ("switch the right burner off", {"action": "shutoff", "burner": R}),
    ("shut off all burners", {"action": "shutoff", "burner": "all"}),
    ("turn everything off", {"action": "shutoff", "burner": "all"}),
    ("kill the gas", {"action": "shutoff", "burner": "all"}),
    ("turn off both burners", {"action": "shutoff", "burner": "all"}),
    ("turn off the left burner in 10 minutes", {"action": "timer", "burner": L, "in": 600}),
    ("turn off the stove in half an hour", {"action": "timer", "burner": "all", "in": 1800}),
    ("in 15 min turn off the right burner", {"action": "timer", "burner": R, "in": 900}),
    ("turn off the stove in two hours", {"action": "timer", "burner": "all", "in": 7200}),
    ("turn off the left burner after 90 seconds", {"action": "timer", "burner": L, "in": 90}),
    ("switch off the right burner in 1.5 hours", {"action": "timer", "burner": R, "in": 5400}),
    ("turn off the stove at 6:30 pm", {"action": "timer", "burner": "all", "at": "18:30"}),
    ("turn off the left burner at 18:30", {"action": "timer", "burner": L, "at": "18:30"}),
    ("turn off the stove at 7 pm", {"action": "timer", "burner": "all", "at": "19:00"}),
    ("cancel the timer", {"action": "cancel", "burner": "all"}),
    ("cancel the left timer", {"action": "cancel", "burner": L}),
    ("lock the stove", {"action": "lock", "burner": "all"}),
    ("lock the right burner", {"action": "lock", "burner": R}),
    ("unlock the left burner", {"action": "unlock", "burner": L}),
    ("is the stove on?", {"action": "status", "burner": "all"}),
    ("status", {"action": "status", "burner": "all"}),
    ("extend the left timer in 10 minutes", {"action": "extend", "burner": L, "in": 600}),
    ("TURN OFF THE LEFT BURNER", {"action": "shutoff", "burner": L}),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_utterance(text: str, expected: dict) -> None:
    assert parse_text(text, VOCAB, now=NOW) == expected
    parse_command(expected, source="voice")  # every result is a valid command


def test_the_table_is_big_enough_and_half_chinese() -> None:
    chinese = [t for t, _ in CASES if any("\u4e00" <= ch <= "\u9fff" for ch in t)]
    assert len(CASES) >= 60 and len(chinese) >= len(CASES) / 2


@pytest.mark.parametrize(
    ("text", "code", "says"),
    [
        ("关掉中间的火", "unknown_burner", "no middle burner"),
        ("turn off the middle burner", "unknown_burner", "no middle burner"),
        ("turn off", "not_understood", "which burner?"),
        ("关", "not_understood", "which burner?"),
        ("十分钟后", "not_understood", "understood: action=?, in=600s"),
        ("make me a sandwich", "not_understood", "not understood"),
        ("", "not_understood", "empty"),
        ("   ", "not_understood", "empty"),
        ("关" * 300, "not_understood", "too long"),
        ("延长左边的定时", "not_understood", "extend by how long"),
        ("十分钟后解锁左灶", "not_understood", "unlock cannot be put off"),
        ("unlock the left burner in 10 minutes", "not_understood", "unlock cannot be put off"),
        ("半小时后锁住燃气灶", "not_understood", "lock cannot be put off"),
    ],
)
def test_text_not_understood_never_guesses(text: str, code: str, says: str) -> None:
    with pytest.raises(CommandError) as err:
        parse_text(text, VOCAB)
    assert err.value.code == code and says in err.value.message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("一", 1),
        ("十", 10),
        ("十五", 15),
        ("二十五", 25),
        ("两", 2),
        ("一百二十", 120),
        ("1.5", 1.5),
    ],
)
def test_chinese_numerals(text: str, value: float) -> None:
    assert zh_number(text) == value


def test_absurd_delays_in_words_are_refused_with_the_command_models_rule() -> None:
    """The parser checks a delay with the command model's own rule (parse_duration),
    so the refusal also says what was understood."""
    with pytest.raises(CommandError, match="more than 24 hours") as err:
        parse_text("三十个小时后关火", VOCAB)
    assert err.value.code == "bad_command" and "in=108000s" in err.value.message


# -- the corpus: tests/text_corpus.tsv -------------------------------------------------

CORPUS_PATH = Path(__file__).with_name("text_corpus.tsv")


def load_corpus() -> list[tuple[str, dict[str, Any] | None]]:
    """(text, expected command, or None for refused) for every line of the corpus."""
    rows = []
    for line in CORPUS_PATH.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text, expected = line.split("\t")
        rows.append((text, None if expected == "refused" else json.loads(expected)))
    return rows


CORPUS = load_corpus()


@pytest.mark.parametrize(("text", "expected"), CORPUS, ids=[t for t, _ in CORPUS])
def test_corpus(text: str, expected: dict[str, Any] | None) -> None:
    if expected is None:
        with pytest.raises(CommandError) as err:
            parse_text(text, VOCAB, now=NOW)
        assert "understood" in err.value.message or "empty" in err.value.message
        return
    assert parse_text(text, VOCAB, now=NOW) == expected
    parse_command(expected, source="voice")


def test_the_corpus_covers_three_scripts_and_refusals() -> None:
    hant = [t for t, _ in CORPUS if any(c in t for c in "關鐘後點開別鎖時個邊")]
    hans = [t for t, _ in CORPUS if any("\u4e00" <= c <= "\u9fff" for c in t) and t not in hant]
    english = [t for t, _ in CORPUS if t.isascii()]
    refused = [t for t, e in CORPUS if e is None]
    assert len(CORPUS) >= 300
    assert min(len(hant), len(hans), len(english)) >= 30 and len(refused) >= 60


# -- issue 20: every line seen going wrong, each as its own case ------------------------

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The delay was dropped: each one shut off at once.
        ("过五分钟关左边", {"action": "timer", "burner": L, "in": 300}),
        ("一刻钟后关左灶", {"action": "timer", "burner": L, "in": 900}),
        ("等十分钟关火", {"action": "timer", "burner": "all", "in": 600}),
        ("十分钟之内关左灶", {"action": "timer", "burner": L, "in": 600}),
        ("turn off the left burner in 1h15m", {"action": "timer", "burner": L, "in": 4500}),
        # The 15 minutes were dropped silently.
        (
            "switch off left burner after 1 hour and 15 minutes",
            {"action": "timer", "burner": L, "in": 4500},
        ),
        # "at 2" meant 02:00 tomorrow; it is the next 2 o'clock (14:00, said at 13:58).
        ("2点关火", {"action": "timer", "burner": "all", "at": "14:00"}),
        ("下午2点关火", {"action": "timer", "burner": "all", "at": "14:00"}),
        # "release the lock" locked it.
        ("release the lock on the left burner", {"action": "unlock", "burner": L}),
        # extend was refused.
        ("把定时延长十分钟", {"action": "extend", "burner": "all", "in": 600}),
        ("extend the timer by 10 minutes", {"action": "extend", "burner": "all", "in": 600}),
        # Traditional characters were refused.
        ("五分鐘後關火", {"action": "timer", "burner": "all", "in": 300}),
    ],
)
def test_issue_20_lines_now_do_what_they_say(text: str, expected: dict[str, Any]) -> None:
    assert parse_text(text, VOCAB, now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "code", "says"),
    [
        ("turn off the left burner in -10 minutes", "not_understood", "'-10'"),
        ("一亿分钟后关火", "bad_command", "more than 24 hours"),
        ("下午25点关火", "bad_command", "no hour 25"),
        ("don't turn off the left burner", "not_understood", "says not to"),
        ("不要关左边的灶", "not_understood", "says not to"),
        ("不要关火", "not_understood", "says not to"),
        ("don't cancel the timer", "not_understood", "says not to"),
        ("不要取消定时", "not_understood", "says not to"),
        ("never mind, don't cancel anything", "not_understood", "says not to"),
        ("关小火", "not_understood", "not a shutoff"),
        ("把火关小一点", "not_understood", "not a shutoff"),
        ("turn it down", "not_understood", "not a shutoff"),
        ("关掉左灶 关掉右灶 打开左灶", "not_understood", "only turn gas off"),
        ("turn off the left burner and turn on the right burner", "not_understood", "only turn"),
        ("关火 取消定时", "not_understood", "say one thing at a time"),
    ],
)
def test_issue_20_lines_now_refused(text: str, code: str, says: str) -> None:
    with pytest.raises(CommandError) as err:
        parse_text(text, VOCAB, now=NOW)
    assert err.value.code == code and says in err.value.message, err.value.message
    assert "understood:" in err.value.message and "nothing was done" in err.value.message


@pytest.mark.parametrize(
    ("said_at", "text", "at"),
    [
        ((13, 58), "2点关火", "14:00"),
        ((14, 0), "2点关火", "02:00"),  # 14:00 is now, not the next one: 02:00 is
        ((1, 30), "2点关火", "02:00"),
        ((23, 0), "at 6:30 turn off the stove", "06:30"),
        ((7, 0), "at 6:30 turn off the stove", "18:30"),
        ((13, 58), "十二点关火", "00:00"),
        ((9, 0), "十二点关火", "12:00"),
        ((13, 58), "18:30关火", "18:30"),  # a 24-hour time needs no guess
        ((20, 0), "下午六点关火", "18:00"),  # tomorrow's, as the timer service reads it
    ],
)
def test_a_12_hour_time_is_the_next_one_within_12_hours(
    said_at: tuple[int, int], text: str, at: str
) -> None:
    now = dt.datetime(2026, 12, 5, *said_at, tzinfo=SHANGHAI)
    assert parse_text(text, VOCAB, now=now)["at"] == at
    # One meaning: the timer service puts "HH:MM" at the next such time after now.
    due = parse_at(at, now)
    if text[0].isdigit() or text.startswith(("at", "十二")):
        assert dt.timedelta(0) < due - now <= dt.timedelta(hours=12)


def test_a_12_hour_time_without_now_is_refused_not_guessed() -> None:
    with pytest.raises(CommandError, match="am or pm"):
        parse_text("2点关火", VOCAB)
    assert parse_text("下午2点关火", VOCAB)["at"] == "14:00"


# -- properties --------------------------------------------------------------------------

CUTS = frozenset({"shutoff", "timer", "lock"})
RESTORES = frozenset({"unlock", "cancel", "extend", "snooze"})
VALID = [(t, e) for t, e in CORPUS if e is not None]
ACTING = [(t, e) for t, e in VALID if e["action"] in CUTS | RESTORES]


# Pieces of times and durations: unknown alone, but not next to a number ("凌晨 2点").
TIME_CHARS = set(
    "零〇一二两俩三四五六七八九十百千万亿点时分秒钟小刻半个凌晨早上午中下傍晚今夜里深清"
)
TIME_WORDS = {*EN_ONES, *EN_TENS, "hundred", "am", "pm", "h", "m", "s", "hr", "hrs", "min",
              "mins", "sec", "secs", "hour", "hours", "minute", "minutes", "second", "seconds",
              "half", "quarter", "quarters", "oclock", "noon", "midday", "midnight"}  # fmt: skip


def _known(word: str) -> bool:
    """A word the grammar reads, alone or as part of a time."""
    if word in TIME_WORDS or TIME_CHARS & set(word):
        return True
    return all(t.kind != "unknown" for t in scan(normalise(word), VOCAB))


unknown_words = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=9),
    st.text(
        alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=1, max_size=3
    ),
).filter(lambda w: not _known(w))


def _insert(text: str, word: str, where: int) -> str:
    """``word`` between two of the line's words (or at either end), set off by spaces."""
    tokens = [t.text for t in scan(normalise(text), VOCAB)]
    where %= len(tokens) + 1
    return " ".join([*tokens[:where], word, *tokens[where:]])


def _outcome(text: str) -> dict[str, Any] | None:
    try:
        return parse_text(text, VOCAB, now=NOW)
    except CommandError:
        return None


@settings(max_examples=300, deadline=None)
@given(line=st.sampled_from(ACTING), word=unknown_words, where=st.integers(0, 40))
@example(line=("关火", {}), word="闭", where=1)  # "关 闭 火": not "关闭火"
@example(line=("2点关火", {}), word="凌", where=0)
@example(line=("turn off the stove", {}), word="office", where=2)
def test_an_unknown_word_anywhere_refuses(line: tuple[str, Any], word: str, where: int) -> None:
    assert _outcome(_insert(line[0], word, where)) is None
    assert _outcome(f"{line[0]} {word}") is None


@settings(max_examples=300, deadline=None)
@given(line=st.sampled_from(ACTING), negation=st.sampled_from(NEGATIONS), where=st.integers(0, 40))
def test_a_negation_anywhere_refuses(line: tuple[str, Any], negation: str, where: int) -> None:
    assert _outcome(_insert(line[0], negation, where)) is None
    assert _outcome(f"{negation} {line[0]}") is None


lexicon_words = st.sampled_from(sorted(w for w in BASE_LEXICON if w not in NEGATIONS))


@settings(max_examples=400, deadline=None)
@given(line=st.sampled_from(ACTING), word=lexicon_words, where=st.integers(0, 40))
@example(line=("lock the stove", {"action": "lock"}), word="release", where=0)
@example(line=("锁住燃气灶", {"action": "lock"}), word="取消", where=0)
@example(line=("release the lock on the left burner", {"action": "unlock"}), word="turn", where=0)
def test_no_word_turns_a_cut_into_a_restore_or_back(
    line: tuple[str, Any], word: str, where: int
) -> None:
    """Whatever known word is added, a cut stays a cut or is refused, and a restore
    stays a restore or is refused."""
    text, expected = line
    got = _outcome(_insert(text, word, where))
    if got is not None:
        wanted = CUTS if expected["action"] in CUTS else RESTORES
        assert got["action"] in wanted, (text, word, got)


def _zh_numeral(n: int) -> str:
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    if n < 100:
        return ("" if n < 20 else digits[n // 10]) + "十" + (digits[n % 10] if n % 10 else "")
    return str(n)


@st.composite
def durations(draw: st.DrawFn) -> tuple[str, float]:
    """A duration as people say it, zh or en, and its length in seconds."""
    h, m = draw(st.integers(0, 30)), draw(st.integers(0, 99))
    num = draw(st.sampled_from([str, _zh_numeral]))
    forms = [
        (f"{num(h)}小时{num(m)}分钟", h * 3600.0 + m * 60),
        (f"{num(m)}分钟", m * 60.0),
        (f"{num(h)}个半小时", h * 3600.0 + 1800),
        (f"{h}h{m}m", h * 3600.0 + m * 60),
        (f"{h} hours and {m} minutes", h * 3600.0 + m * 60),
        (f"{m} minutes", m * 60.0),
        (f"{h} hours", h * 3600.0),
        ("一刻钟", 900.0),
        ("a quarter of an hour", 900.0),
        ("an hour and a half", 5400.0),
    ]
    return draw(st.sampled_from(forms))


SHUTOFFS = [t for t, e in VALID if e["action"] == "shutoff"]


@settings(max_examples=400, deadline=None)
@given(
    line=st.sampled_from(SHUTOFFS),
    duration=durations(),
    marker=st.sampled_from(["", "in", "after", "过", "后", "之后", "for", "by", "at"]),
    where=st.integers(0, 40),
)
def test_no_delay_is_ever_dropped(
    line: str, duration: tuple[str, float], marker: str, where: int
) -> None:
    """A line that says a duration never parses to an immediate shutoff: it is a timer
    for exactly that long, or it is refused."""
    said, seconds = duration
    phrase = f"{said} {marker}" if marker in ("后", "之后") else f"{marker} {said}".strip()
    got = _outcome(_insert(line, phrase, where))
    if got is not None:
        assert got["action"] == "timer" and got["in"] == seconds, (line, phrase, got)


# -- through the controller: a refusal is recorded, nothing else happens -----------------


def test_refused_text_leaves_a_rejected_event_and_changes_nothing(kitchen_factory) -> None:
    async def body() -> None:
        k = kitchen_factory()
        await k.controller.start()
        await k.advance(0.5)
        for text in ("不要关火", "turn off the stove in a few minutes", "下午25点关火"):
            reply = await run_text(k.controller, text)
            assert reply["ok"] is False and "understood" in reply["error"], reply
        await k.advance(0.5)
        rejected = [e for e in k.log() if e.kind == "rejected"]
        assert [e.detail["text"] for e in rejected] == [
            "不要关火",
            "turn off the stove in a few minutes",
            "下午25点关火",
        ]
        assert all(e.source == "voice" and e.detail["code"] for e in rejected)
        assert "command" not in k.kinds()
        assert k.burner("left").flame and k.burner("right").flame
        reply = await run_text(k.controller, "关左灶")
        assert reply["ok"] and reply["understood"] == {"action": "shutoff", "burner": L}
        await k.advance(4)
        assert not k.burner("left").flame and k.burner("right").flame

    run(body())


def test_the_controller_says_now_in_the_configs_zone(kitchen_factory) -> None:
    k = kitchen_factory()
    k.controller.zone = SHANGHAI
    now = k.controller.local_now()
    assert now.tzinfo is SHANGHAI and now.timestamp() == k.clock.time()
