"""Japanese dates: the eras (明治〜令和, 元年), era and Western notations, and real calendar days."""

from __future__ import annotations

import datetime as dt
import re

from sekisho.text.normalize import nfkc
from sekisho.text.numerals import kanji_number

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


# Written against NFKC text (full-width digits already folded).
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


def parse_day(text: str) -> dt.date | None:
    """One whole date written any way DATE_RE reads (2026年4月1日, 令和8年4月1日, R8.4.1,
    2026-04-01); None when `text` is not exactly one real date."""
    match = DATE_RE.fullmatch(nfkc(text).strip())
    return parse_date(match) if match else None


_ERA_YEAR_RE = re.compile(f"({'|'.join(ERAS)})(元|\\d+)年")


def western_years(text: str) -> str:
    """`text` (NFKC) with era years rewritten as Western years (令和3年 -> 2021年), so that a
    sentence and a passage agree whichever calendar each uses."""

    def western(m: re.Match[str]) -> str:
        year = 1 if m.group(2) == "元" else int(m.group(2))
        return f"{ERAS[m.group(1)][0].year - 1 + year}年"

    return _ERA_YEAR_RE.sub(western, nfkc(text))
