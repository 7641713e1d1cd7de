"""Every number a text states, as canonical digit strings: the figures a faithful answer must
not change."""

from __future__ import annotations

import re

from sekisho.text.dates import western_years
from sekisho.text.numerals import kanji_number

_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*|[〇一二三四五六七八九十百千万億兆]+")
_COUNTERS = "年月日時分秒歳人名回個件つ位倍割世紀代条章部巻万億兆円ドル%％kmmgtトン度階番号次期区市町村県国党議席"


def numbers(text: str) -> set[str]:
    """Every number the text states, as canonical digit strings (era years as Western years)."""
    t = western_years(text)
    found: set[str] = set()
    for m in _NUMBER_RE.finditer(t):
        s = m.group()
        if s[0].isdigit():
            found.add(s.replace(",", "").lstrip("0") or "0")
        elif _is_counting_context(t, m.end()):
            # Kanji digits inside words (一般, 統一, 万全) are not numbers; before a counter they are.
            found.add(str(kanji_number(s)))
    return found


def _is_counting_context(text: str, end: int) -> bool:
    """A kanji numeral counts something when a counter or another number follows it."""
    return end < len(text) and (text[end] in _COUNTERS or text[end].isdigit())
