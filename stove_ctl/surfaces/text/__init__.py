"""Text commands in Chinese (simplified and traditional) and English, turned into the
command model: "十分钟后关左灶", "一刻钟后关火", "下午六点半关火", "取消定时",
"把定时延长十分钟", "turn off the left burner in 1h15m", "cancel the timer".

The grammar never guesses. Every word is read, or the command is refused with what
was understood (stove_ctl/surfaces/text/grammar.py). docs/TEXT.md says what can be said.
"""

from __future__ import annotations

from collections.abc import Iterable

from stove_ctl.surfaces.text.grammar import parse_text, scan
from stove_ctl.surfaces.text.numbers import en_number, normalise, zh_number
from stove_ctl.surfaces.text.words import ALL_WORDS, NEGATIONS, SIDE_WORDS, STOVE_WORDS

__all__ = [
    "ALL_WORDS",
    "NEGATIONS",
    "SIDE_WORDS",
    "STOVE_WORDS",
    "burner_vocabulary",
    "en_number",
    "normalise",
    "parse_text",
    "scan",
    "zh_number",
]


def burner_vocabulary(burners: Iterable[tuple[str, str, str | None, list[str]]]) -> dict[str, str]:
    """Words -> burner key, from (key, id, name, aliases) of every configured burner."""
    vocabulary: dict[str, str] = {}
    for key, burner_id, name, aliases in burners:
        words = [burner_id, key, *aliases, *SIDE_WORDS.get(burner_id, ())]
        if name:
            words.append(name)
        for word in words:
            vocabulary[normalise(word)] = key
    return vocabulary
