"""Dates of birth: Western and era (明治〜令和, 元年, kanji numerals) dates next to 生年月日/生まれ."""

from __future__ import annotations

import datetime as dt
import re
from typing import Iterator

from sekisho.guard.recognizers.base import Candidate, matches_near, words_pattern
from sekisho.guard.textview import NormalizedText, register_anchor

# First and last day of each era (the last era is open-ended).
ERAS: dict[str, tuple[dt.date, dt.date | None]] = {
    "明治": (dt.date(1868, 10, 23), dt.date(1912, 7, 29)),
    "大正": (dt.date(1912, 7, 30), dt.date(1926, 12, 24)),
    "昭和": (dt.date(1926, 12, 25), dt.date(1989, 1, 7)),
    "平成": (dt.date(1989, 1, 8), dt.date(2019, 4, 30)),
    "令和": (dt.date(2019, 5, 1), None),
}
_ERA_LETTERS = {"M": "明治", "T": "大正", "S": "昭和", "H": "平成", "R": "令和",
                "明": "明治", "大": "大正", "昭": "昭和", "平": "平成", "令": "令和"}
_KANJI_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


def kanji_number(s: str) -> int | None:
    """一九 -> 19 (positional) and 三十一 -> 31 (with 十/百); None if not a kanji numeral."""
    if not s:
        return None
    if s.isdigit():
        return int(s)
    if all(ch in _KANJI_DIGITS for ch in s):
        return int("".join(str(_KANJI_DIGITS[ch]) for ch in s))
    total, current = 0, 0
    for ch in s:
        if ch in _KANJI_DIGITS:
            current = _KANJI_DIGITS[ch]
        elif ch in "十百千":
            unit = {"十": 10, "百": 100, "千": 1000}[ch]
            total += (current or 1) * unit
            current = 0
        else:
            return None
    return total + current


def era_to_gregorian(era: str, year: int) -> int:
    return ERAS[era][0].year + year - 1


def make_date(year: int, month: int, day: int, era: str | None = None) -> dt.date | None:
    """The calendar date, or None if it does not exist (2月30日, 平成32年 after 令和 began...)."""
    try:
        date = dt.date(era_to_gregorian(era, year) if era else year, month, day)
    except (ValueError, OverflowError):
        return None
    if era:
        first, last = ERAS[era]
        if date < first or (last is not None and date > last):
            return None
    return date


_N = "(?:[0-9]{1,2}|[〇一二三四五六七八九十]{1,3})"
DATE_RE = re.compile(
    "(?:"
    r"(?P<y>(?:18|19|20)[0-9]{2})[ ]?年[ ]?(?P<m>[0-9]{1,2})[ ]?月[ ]?(?P<d>[0-9]{1,2})[ ]?日"
    r"|(?<![0-9])(?P<y2>(?:18|19|20)[0-9]{2})(?P<s>[/.\-])(?P<m2>[0-9]{1,2})(?P=s)(?P<d2>[0-9]{1,2})(?![0-9])"
    # 昭和60年(1985年)4月12日: the Western year in brackets is allowed (and not checked).
    f"|(?P<era>明治|大正|昭和|平成|令和)[ ]?(?P<ey>元|{_N})[ ]?年[ ]?(?:\\((?:18|19|20)[0-9]{{2}}年?\\)[ ]?)?(?P<em>{_N})[ ]?月[ ]?(?P<ed>{_N})[ ]?日"
    r"|(?<![A-Za-z])(?P<el>[MTSHR明大昭平令])\.?(?P<ly>元|[0-9]{1,2})(?P<ls>[./])(?P<lm>[0-9]{1,2})(?P=ls)(?P<ld>[0-9]{1,2})(?![0-9])"
    ")"
)


def parse_date(m: re.Match[str]) -> dt.date | None:
    """The date a DATE_RE match denotes, if it is a real calendar date."""
    if m.group("y"):
        return make_date(int(m.group("y")), int(m.group("m")), int(m.group("d")))
    if m.group("y2"):
        return make_date(int(m.group("y2")), int(m.group("m2")), int(m.group("d2")))
    if m.group("era"):
        year = 1 if m.group("ey") == "元" else kanji_number(m.group("ey"))
        month, day = kanji_number(m.group("em")), kanji_number(m.group("ed"))
        if year is None or month is None or day is None:
            return None
        return make_date(year, month, day, m.group("era"))
    year = 1 if m.group("ly") == "元" else int(m.group("ly"))
    return make_date(year, int(m.group("lm")), int(m.group("ld")), _ERA_LETTERS[m.group("el")])


_BIRTH_WORDS = ("生年月日", "生まれ", "誕生日", "出生", "birth", "dob", "生)", "生年")
# A label right before a date that makes it some other date even inside a form that has 生年月日.
_OTHER_DATE_LABELS = ("申請日", "提出日", "作成日", "記入日", "発行日", "契約日", "交付日", "日付", "開催日", "届出日",
                      "入社日", "有効期限", "受付日", "更新日", "締切")


_LONGEST_DATE = 20  # 昭和五十五年十二月三十一日 with spaces
# 生 alone is everywhere (学生, 発生); after a date it is written 日生 (令和元年5月1日生) or 1生.# Every branch starts with a literal (生, 誕, 出, b, d...) so the engine skips other characters
# fast; "日生"/"1生" are found from their 生 looking back.
register_anchor("date_of_birth", words_pattern(_BIRTH_WORDS) + "|生(?<=[0-9日]生)|生(?<=日 生)")


class DateOfBirthRecognizer:
    """A valid, past date with a birth word just before it (only the first date after the
    label counts) or 生まれ right after it."""

    entity = "DATE_OF_BIRTH"
    name = "date_of_birth"

    def __init__(self, before: int = 16, after: int = 5) -> None:
        self.before = before
        self.after = after

    def find(self, view: NormalizedText) -> Iterator[Candidate]:
        text = view.text
        today = dt.date.today()
        previous_end = 0
        for m in matches_near(DATE_RE, view, view.anchor_hits(self.name), ahead=self.after + _LONGEST_DATE,
                                  behind=self.before, longest=_LONGEST_DATE):
            start, end = m.span()
            left = text[max(previous_end, start - self.before):start].lower()
            right = text[end:end + self.after].lower()
            previous_end = end
            if not any(w in left for w in _BIRTH_WORDS) and not right.lstrip(" ()").startswith(("生", "誕生")):
                continue
            if any(w in left[-6:] for w in _OTHER_DATE_LABELS):
                continue
            date = parse_date(m)
            if date is None or date > today:
                continue
            yield Candidate(start, end, 0.85)


DATE_OF_BIRTH = DateOfBirthRecognizer()
