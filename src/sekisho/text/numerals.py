"""Kanji numerals, positional (一九 = 19) or with units (三十一, 二万五千)."""

from __future__ import annotations

KANJI_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_MYRIADS = {"万": 10**4, "億": 10**8, "兆": 10**12}


def kanji_number(s: str) -> int | None:
    """一九 -> 19 (positional), 三十一 -> 31, 二万五千 -> 25000, "12" -> 12; None when `s` is not
    a numeral."""
    if not s:
        return None
    if s.isascii() and s.isdigit():
        return int(s)
    if all(ch in KANJI_DIGITS for ch in s):
        return int("".join(str(KANJI_DIGITS[ch]) for ch in s))
    total = section = digit = 0
    for ch in s:
        if ch in KANJI_DIGITS:
            digit = KANJI_DIGITS[ch]
        elif ch in _UNITS:
            section += (digit or 1) * _UNITS[ch]
            digit = 0
        elif ch in _MYRIADS:
            total += (section + digit or 1) * _MYRIADS[ch]
            section = digit = 0
        else:
            return None
    return total + section + digit

