"""Normalising an utterance, and reading numbers said in Chinese or English."""

from __future__ import annotations

import re
import unicodedata

# Traditional characters the grammar's words use, to their simplified forms. A small
# explicit table: a full converter would change words the grammar never reads.
TRADITIONAL = str.maketrans(
    "關鐘後時頭計點滅開別燈爐氣個兩倆內鎖請幫邊側間閉狀態麼樣嗎設長遲緩過萬億煩謝給們"
    "還現馬電臺啟規則暫續銷刪對讓這條鬆撥掛動廚濾屬際聽說會",
    "关钟后时头计点灭开别灯炉气个两俩内锁请帮边侧间闭状态么样吗设长迟缓过万亿烦谢给们"
    "还现马电台启规则暂续销删对让这条松拨挂动厨滤属际听说会",
)
# Punctuation and quotes become spaces; an apostrophe inside a word is kept ("don't").
_PUNCTUATION = re.compile(
    r"[，。！？!?,;；、\"“”‘《》()（）\[\]【】~～…·.](?![0-9])|(?<![a-z])'|'(?![a-z])|(?<![0-9]):|:(?![0-9])"
)


def normalise(text: str) -> str:
    """NFKC (full-width digits and colons), lower case, simplified characters,
    punctuation to spaces, runs of spaces to one."""
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    text = text.translate(TRADITIONAL)
    text = _PUNCTUATION.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "四": 4, "五": 5,
             "六": 6, "七": 7, "八": 8, "九": 9}  # fmt: skip
ZH_UNITS = {"十": 10, "百": 100, "千": 1000}
ZH_BIG = {"万": 10_000, "亿": 100_000_000}
# A Chinese or Arabic numeral, as a regular expression.
ZH_NUM = r"[0-9]+(?:\.[0-9]+)?|[零〇一二两俩三四五六七八九十百千万亿]+"


def zh_number(text: str) -> float:
    """Chinese or Arabic numerals: 十五 -> 15, 二十五 -> 25, 两 -> 2, 1.5 -> 1.5,
    一千零五 -> 1005, 一亿 -> 100000000, and the spoken short forms 一百五 -> 150,
    两千五 -> 2500. Raises ValueError for anything else (二二十, 十十)."""
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", text):
        return float(text)
    if not text or not re.fullmatch(ZH_NUM, text):
        raise ValueError(text)
    total, section, current, seen_digit = 0, 0, 0, False
    for ch in text:
        if ch in ZH_DIGITS:
            if seen_digit and ZH_DIGITS[ch] != 0 and current != 0:
                raise ValueError(text)  # two digits in a row: 二三
            current, seen_digit = ZH_DIGITS[ch], True
        elif ch in ZH_UNITS:
            section += (current or (0 if seen_digit else 1)) * ZH_UNITS[ch]
            current, seen_digit = 0, False
        else:
            total = (total + section + current or 1) * ZH_BIG[ch]
            section, current, seen_digit = 0, 0, False
    if len(text) > 1 and text[-2] in "百千万" and text[-1] in ZH_DIGITS:  # 一百五
        current *= {"百": 10, "千": 100, "万": 1000}[text[-2]]
    return float(total + section + current)


EN_ONES = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
EN_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
           "eighty": 80, "ninety": 90}  # fmt: skip
_ONES = "|".join(sorted(EN_ONES, key=len, reverse=True))
_TENS = "|".join(EN_TENS)
_BELOW_100 = rf"(?:(?:{_TENS})(?:[- ](?:{_ONES}))?|(?:{_ONES}))"
# An English number: "a", "twenty five", "forty-five", "a hundred and twenty", or digits.
EN_NUM = (
    rf"(?:[0-9]+(?:\.[0-9]+)?(?![0-9.])"
    rf"|(?:(?:(?:a|one|two|three|four|five|six|seven|eight|nine|ten) hundred(?: and)?"
    rf"(?: {_BELOW_100})?)|{_BELOW_100}|an?)(?![a-z0-9-]))"
)


def en_number(text: str) -> float:
    """An English number as matched by EN_NUM: "twenty five" -> 25, "an" -> 1."""
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", text):
        return float(text)
    total, current = 0, 0
    for word in re.split(r"[- ]+", text):
        if word in ("a", "an"):
            current = 1
        elif word in EN_ONES:
            current += EN_ONES[word]
        elif word in EN_TENS:
            current += EN_TENS[word]
        elif word == "hundred":
            total, current = total + (current or 1) * 100, 0
        elif word != "and":
            raise ValueError(text)
    return float(total + current)
