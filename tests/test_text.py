"""Text commands, Chinese and English: a table of utterances and what they must become."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from stove_ctl.commands import parse_command
from stove_ctl.errors import CommandError
from stove_ctl.text import burner_vocabulary, parse_text, zh_number

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
