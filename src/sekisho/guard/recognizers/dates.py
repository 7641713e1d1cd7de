"""Dates of birth: Western and era (明治〜令和, 元年, kanji numerals) dates next to 生年月日/生まれ."""

from __future__ import annotations

import datetime as dt
from typing import Iterator

from sekisho.guard.recognizers.base import Candidate, matches_near, words_pattern
from sekisho.guard.textview import NormalizedText
from sekisho.text import DATE_RE, parse_date

_BIRTH_WORDS = ("生年月日", "生まれ", "誕生日", "出生", "birth", "dob", "生)", "生年")
# A label right before a date that makes it some other date even inside a form that has 生年月日.
_OTHER_DATE_LABELS = ("申請日", "提出日", "作成日", "記入日", "発行日", "契約日", "交付日", "日付", "開催日", "届出日",
                      "入社日", "有効期限", "受付日", "更新日", "締切")


_LONGEST_DATE = 20  # 昭和五十五年十二月三十一日 with spaces


class DateOfBirthRecognizer:
    """A valid, past date with a birth word just before it (only the first date after the
    label counts) or 生まれ right after it."""

    entity = "DATE_OF_BIRTH"
    name = "date_of_birth"
    # 生 alone is everywhere (学生, 発生); after a date it is written 日生 (令和元年5月1日生) or 1生.
    # Every branch starts with a literal (生, 誕, 出, b, d...) so the engine skips other
    # characters fast; "日生"/"1生" are found from their 生 looking back.
    anchor = words_pattern(_BIRTH_WORDS) + "|生(?<=[0-9日]生)|生(?<=日 生)"

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
