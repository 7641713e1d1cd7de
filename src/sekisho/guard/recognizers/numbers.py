"""Identifiers made of digits: マイナンバー, 法人番号, cards, bank accounts, passports, licences."""

from __future__ import annotations

import re

from sekisho.guard.recognizers.base import (
    CODE_CONTEXT,
    LEAD,
    NUM_RIGHT,
    SEP_OR_SPACE,
    PatternRecognizer,
    digits_of,
    group_lengths,
)
from sekisho.guard.recognizers.checkdigits import (
    ean13_valid,
    is_valid_card_number,
    is_valid_corporate_number,
    is_valid_my_number,
)
from sekisho.guard.textview import NormalizedText

_AMOUNT_BEFORE = ("¥", "$", "€", "£", "金額", "円")
_AMOUNT_AFTER = ("円", "万", "億", "兆", "ドル", "ユーロ", "yen", "%", "件", "個", "人", "回", "年")


def is_amount_or_count(m: re.Match[str], view: NormalizedText) -> bool:
    """¥123456789012 or 123456789012円: a quantity, never an identifier."""
    before = view.text[max(0, m.start() - 2):m.start()].rstrip()
    after = view.text[m.end():m.end() + 3].lstrip().lower()
    return before.endswith(_AMOUNT_BEFORE) or after.startswith(_AMOUNT_AFTER)


# 12 digits, or 4-4-4 with the same separator twice (a hyphen, a dash or a space).
TWELVE_DIGITS = LEAD + rf"(?:[0-9]{{11}}|[0-9]{{3}}({SEP_OR_SPACE})[0-9]{{4}}\1[0-9]{{4}})" + NUM_RIGHT


def _my_number(m: re.Match[str], view: NormalizedText) -> float | None:
    if is_amount_or_count(m, view) or not is_valid_my_number(digits_of(m.group())):
        return None
    return 0.6  # 1 in 11 random 12-digit strings pass the check digit: context decides the rest


MY_NUMBER = PatternRecognizer(
    numeric=True,
    entity="MY_NUMBER",
    name="my_number",
    pattern=TWELVE_DIGITS,
    assess=_my_number,
    context=("マイナンバー", "個人番号", "my number", "mynumber", "通知カード", "番号確認"),
    context_score=0.95,
    negative=CODE_CONTEXT + ("電話", "tel", "口座", "運転免許", "免許証", "法人番号", "カード番号", "旅券"),
    before=30,
    valid_digits=is_valid_my_number,
    digit_layout=group_lengths((4, 4, 4)),
)


def _invoice_t_before(text: str, start: int) -> bool:
    """「T1234567890123」 or 「T 1234567890123」, the T not being the end of a longer word."""
    i = start - 1
    if i >= 0 and text[i] == " ":
        i -= 1
    return i >= 0 and text[i] == "T" and (i == 0 or not (text[i - 1].isascii() and text[i - 1].isalnum()))


def _corporate_number(m: re.Match[str], view: NormalizedText) -> float | None:
    digits = digits_of(m.group("digits"))
    if is_amount_or_count(m, view) or not is_valid_corporate_number(digits):
        return None
    if m.start() > 0 and view.text[m.start() - 1] == "T" and not _invoice_t_before(view.text, m.start()):
        return None  # glued to a longer code such as AT1234...
    if _invoice_t_before(view.text, m.start()):
        return 0.9  # T + 13 digits: an invoice registration number (適格請求書発行事業者登録番号)
    if digits.startswith(("978", "979", "45", "49")) and ean13_valid(digits):
        # An ISBN or a Japanese JAN barcode that happens to pass; only context can rescue it.
        return 0.3
    return 0.6


CORPORATE_NUMBER = PatternRecognizer(
    numeric=True,
    entity="CORPORATE_NUMBER",
    name="corporate_number",
    # Starts at the digits (fast scan) and lets a T sit right before them: _corporate_number
    # decides whether it is an invoice registration number's T or part of a longer code.
    pattern=r"(?P<digits>" + LEAD.replace("A-Za-z", "A-SU-Za-z") + r"(?:[0-9]{12}|(?P<s>" + SEP_OR_SPACE
    + r")[0-9]{4}(?P=s)[0-9]{4}(?P=s)[0-9]{4}))" + NUM_RIGHT,
    assess=_corporate_number,
    context=("法人番号", "登録番号", "インボイス", "適格請求書", "corporate number", "事業者番号"),
    context_score=0.95,
    negative=CODE_CONTEXT + ("電話", "tel", "口座", "カード番号"),
    before=30,
    valid_digits=is_valid_corporate_number,
    digit_layout=group_lengths((1, 4, 4, 4)),
)


def _card(m: re.Match[str], view: NormalizedText) -> float | None:
    return 0.85 if is_valid_card_number(digits_of(m.group())) else None


CREDIT_CARD = PatternRecognizer(
    numeric=True,
    entity="CREDIT_CARD",
    name="credit_card",
    pattern=LEAD
    + r"(?:[0-9]{12,18}"
    # Grouped with one and the same separator: a space or any dash (‐ and ー too, as for 4-4-4).
    + r"|[0-9]{3}(?P<a>" + SEP_OR_SPACE + r")[0-9]{4}(?P=a)[0-9]{4}(?P=a)[0-9]{4}(?:(?P=a)[0-9]{3})?"  # 4-4-4-4(-3)
    + r"|[0-9]{3}(?P<b>" + SEP_OR_SPACE + r")[0-9]{6}(?P=b)[0-9]{4,5})"  # Amex 4-6-5, Diners 4-6-4
    + NUM_RIGHT,
    assess=_card,
    context=("カード", "card", "クレジット", "visa", "master", "jcb", "amex", "有効期限"),
    context_score=0.99,
    negative=CODE_CONTEXT,  # 会員番号 5105...: a membership number unless カード is said
    before=30,
    valid_digits=is_valid_card_number,
    digit_layout=group_lengths((4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4)),
)


BANK_ACCOUNT = PatternRecognizer(
    numeric=True,
    entity="BANK_ACCOUNT",
    name="bank_account",
    # 7-digit account numbers; ゆうちょ 記号(5)-番号(up to 8).
    pattern=LEAD + r"(?:[0-9]{6}|(?<=1)[0-9]{4}" + SEP_OR_SPACE + r"[0-9]{6,8})" + NUM_RIGHT,
    assess=lambda m, view: None if is_amount_or_count(m, view) else 0.8,
    context=("口座", "普通", "当座", "預金", "銀行", "支店", "信用金庫", "信金", "信用組合", "振込", "ゆうちょ",
             "記号番号", "account"),
    context_score=0.85,
    requires_context=True,
    before=30,
)

PASSPORT = PatternRecognizer(
    numeric=True,
    entity="PASSPORT",
    name="passport",
    pattern=r"(?<![0-9A-Za-z])[A-Z]{2}[0-9]{7}(?![0-9A-Za-z])",
    longest=9,
    context=("旅券", "パスポート", "passport"),
    context_score=0.85,
    requires_context=True,
    before=30,
)

DRIVERS_LICENSE = PatternRecognizer(
    numeric=True,
    entity="DRIVERS_LICENSE",
    name="drivers_license",
    # 12 digits: 公安委員会 code (2), year of first licence (2), serial (6), check (1), reissues (1).
    pattern=TWELVE_DIGITS,
    assess=lambda m, view: None if is_amount_or_count(m, view) else 0.85,
    context=("運転免許", "免許証", "免許番号", "driver", "licence", "license"),
    context_score=0.9,
    requires_context=True,
    before=30,
)
