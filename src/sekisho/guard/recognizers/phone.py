"""Japanese telephone numbers: fixed lines, mobiles, IP phones, toll-free, +81 and bracket forms."""

from __future__ import annotations

import re

from sekisho.guard.recognizers.base import CODE_CONTEXT, DASHES, NUM_RIGHT, SEP_OR_SPACE, PatternRecognizer
from sekisho.guard.textview import NormalizedText

# Non-geographic 11-digit services: mobiles 070/080/090, IP phones 050, FMC 060, M2M 020.
_ELEVEN_DIGIT = ("070", "080", "090", "050", "060", "020")
# 4-digit service prefixes and their total lengths: toll-free 0120 / 0800, navi dial 0570, 0990.
_SERVICE = {"0120": 10, "0800": 11, "0570": 10, "0990": 10}
# Geographic area codes of only two digits (incl. the trunk 0): 東京 03, 大阪 06, and 04 areas.
_TWO_DIGIT_AREAS = ("03", "04", "06")

# Each top-level branch starts with a literal (+, ( or 0) so the regex engine skips every other
# character at C speed (a group or lookbehind in first position defeats that); the "not glued to
# a longer code" lookbehinds come right after that first character.
_PATTERN = (
    r"\+(?<![0-9A-Za-z+]\+)(?P<intl>81[ \-]?(?:\(0\)[ \-]?)?[0-9]{1,4}" + SEP_OR_SPACE + r"?[0-9]{1,4}"
    + SEP_OR_SPACE + r"?[0-9]{4})" + NUM_RIGHT
    + r"|\((?<![0-9A-Za-z]\()0[0-9]{1,4}\)[ ]?[0-9]{1,4}" + SEP_OR_SPACE + r"?[0-9]{4}" + NUM_RIGHT
    + r"|0(?<![0-9+]0)(?<![0-9][" + DASHES + r"]0)(?:"
    r"[0-9]{1,4}\([0-9]{1,4}\)[0-9]{4}"
    r"|[0-9]{1,4}(?P<s>" + SEP_OR_SPACE + r")[0-9]{1,4}(?P=s)[0-9]{3,4}"
    r"|(?P<plain>[0-9]{9,10})"
    r")" + NUM_RIGHT
)


def classify(groups: list[str], *, grouped: bool) -> str | None:
    """'mobile', 'service' or 'fixed' when the digits form a valid Japanese number, else None.

    `groups` are the digit runs as written; when `grouped`, their lengths must fit the numbering
    plan (area code 2-5 digits incl. 0, local exchange 1-4, subscriber 4, ten digits in all).
    """
    digits = "".join(groups)
    if not digits.startswith("0") or digits[1] == "0":
        return None
    if digits[:4] in _SERVICE:  # before the 3-digit prefixes: 0800 is not 080
        if len(digits) != _SERVICE[digits[:4]]:
            return None
        return "service" if not grouped or len(groups[0]) == 4 else None
    if digits[:3] in _ELEVEN_DIGIT:
        if len(digits) != 11:
            return None
        return "mobile" if not grouped or [len(g) for g in groups] == [3, 4, 4] else None
    if len(digits) != 10 or digits[:3] in ("010",):  # 010 is the international prefix
        return None
    if grouped:
        if len(groups) != 3 or len(groups[2]) != 4 or not 2 <= len(groups[0]) <= 5:
            return None
        if len(groups[0]) == 2 and groups[0] not in _TWO_DIGIT_AREAS:
            return None
        if groups[1][0] == "0":  # a local exchange number never starts with the trunk prefix 0
            return None
    return "fixed"


# Letters may touch a number only as its label: TEL03-..., FAX0312345678 (℡ normalises to TEL).
_LABELS_BEFORE = ("tel", "fax", "phone", "mobile")
_DIGIT_GROUPS = re.compile(r"[0-9]+")


def _assess(m: re.Match[str], view: NormalizedText) -> float | None:
    start = m.start()
    if start and view.text[start - 1].isascii() and view.text[start - 1].isalpha():
        if not view.text[max(0, start - 6):start].lower().endswith(_LABELS_BEFORE):
            return None  # ID0312345678 is a code
    groups = _DIGIT_GROUPS.findall(m.group())
    if m.group("intl"):
        national = "".join(groups)[2:]  # drop the country code 81
        if not national.startswith("0"):
            national = "0" + national  # +81 3-... is 03-...; +81 (0)3 already has it
        return 0.85 if len(national) in (10, 11) and classify([national], grouped=False) else None
    if m.group("plain"):
        kind = classify(groups, grouped=False)
        if kind is None:
            return None
        return 0.6 if kind == "mobile" else 0.45  # a bare 10-digit 0... string needs context
    kind = classify(groups, grouped=True)
    if kind is None:
        return None
    return 0.85 if kind == "mobile" else 0.75


PHONE_NUMBER = PatternRecognizer(
    numeric=True,
    entity="PHONE_NUMBER",
    name="phone_jp",
    pattern=_PATTERN,
    assess=_assess,
    context=("電話", "tel", "携帯", "fax", "ファックス", "連絡先", "代表", "問い合わせ", "問合せ", "phone", "☎",
             "内線", "ダイヤル", "mobile"),
    context_score=0.95,
    negative=CODE_CONTEXT,
    before=20,
    valid_digits=lambda digits: classify([digits], grouped=False) is not None,
    digit_layout=lambda groups: classify(list(groups), grouped=True) is not None,
)
