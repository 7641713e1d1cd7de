"""The leak corpus (#19): the forms people use to slip a protected value past a filter, the
documents whose passages hold such values, and a detector, independent of the guard, that finds a
value in whatever a model server received. Shared by tests/test_server_leaks.py and
bench/hardening.py."""

from __future__ import annotations

import json
import unicodedata

MY_NUMBER = "123456789018"  # valid check digit (server_fixtures.support)
CARD = "4111111111111111"  # passes Luhn
PHONE = "09087654321"
ADDRESS = "東京都千代田区千代田1丁目1番1号"

# (family, the text as a user would slip it through, the value that must not arrive)
EVASIONS = [
    ("my number spaced", "マイナンバーは 1 2 3 4 5 6 7 8 9 0 1 8 です", MY_NUMBER),
    ("my number 、", "マイナンバー：1234、5678、9018", MY_NUMBER),
    ("my number .", "マイナンバー：1234.5678.9018", MY_NUMBER),
    ("my number /", "マイナンバー 1234/5678/9018", MY_NUMBER),
    ("my number mixed", "マイナンバー 1234 / 5678 - 9018", MY_NUMBER),
    ("my number kanji", "マイナンバーは一二三四五六七八九〇一八です", MY_NUMBER),
    ("my number zero-width", "マイナンバー 1234\u200b5678\u200b9018", MY_NUMBER),
    ("my number arabic-indic", "マイナンバー ١٢٣٤٥٦٧٨٩٠١٨", MY_NUMBER),
    ("my number two lines", "マイナンバー：12345678\n9018", MY_NUMBER),
    ("card spaced", "カード番号 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", CARD),
    ("card 、", "カード番号 4111、1111、1111、1111", CARD),
    ("card mixed", "カード 4111-1111 1111/1111", CARD),
    ("card kanji", "カード番号は四一一一 一一一一 一一一一 一一一一", CARD),
    ("card zero-width", "カード 4111\u200b1111\u200b1111\u200b1111", CARD),
    ("card arabic-indic", "カード ٤١١١١١١١١١١١١١١١", CARD),
    ("card two lines", "カード番号\n4111 1111\n1111 1111", CARD),
    ("phone kanji", "電話は〇九〇・八七六五・四三二一", PHONE),
    ("phone spaced", "連絡先 0 9 0 8 7 6 5 4 3 2 1", PHONE),
    ("phone 、", "連絡先 090、8765、4321", PHONE),
    ("phone .", "連絡先 090.8765.4321", PHONE),
    ("phone /", "連絡先 090/8765/4321", PHONE),
    ("phone mixed", "連絡先 090-8765 4321", PHONE),
    ("phone zero-width", "連絡先 090\u200b8765\u200b4321", PHONE),
    ("phone arabic-indic", "連絡先 ٠٩٠٨٧٦٥٤٣٢١", PHONE),
    ("phone two lines", "連絡先 090-8765\n4321", PHONE),
    ("address spaced", "住所は 東 京 都 千 代 田 区 千 代 田 一 丁 目 一 番 一 号 です", ADDRESS),
]
MARKED = "【社 外 秘】来年度の組織改編案について要点を教えてください"

# What the documents say: one passage holding a phone number and a My Number in kanji numerals,
# no context word next to either.
# The staff register is tagged 人事: keys without the tag never retrieve it.
DOCUMENTS = {
    "gomi.txt": ("粗大ごみ受付センターのご案内\n粗大ごみの収集は電話で申し込みます。"
                 "受付センターの担当は〇九〇・八七六五・四三二一です。受付時間は平日の午前9時から午後5時までです。\n", ()),
    "daicho.txt": ("職員台帳の抜粋\n山田花子の控えは一二三四五六七八九〇一八、当番の携帯は〇九〇・八七六五・四三二一。\n"
                   "山田花子は市民課に所属しています。\n", ("人事",)),
}
GOMI = "粗大ごみの申し込み先を教えてください。"
DAICHO = "山田花子の所属と控えを教えてください。"

_KANJI_DIGITS = str.maketrans("〇零一二三四五六七八九", "00123456789")


def digits_of(value: object) -> str:
    """Every digit in every string of a request body, in order, whatever its script (kanji
    numerals too), with everything else dropped: a value split by separators, zero-width
    characters, words or message boundaries reappears whole here."""
    if isinstance(value, dict):
        return "".join(digits_of(v) for v in value.values())
    if isinstance(value, list):
        return "".join(digits_of(v) for v in value)
    if not isinstance(value, str):
        return ""
    text = unicodedata.normalize("NFKC", value).translate(_KANJI_DIGITS)
    return "".join(str(unicodedata.digit(c)) for c in text if unicodedata.digit(c, None) is not None)


def leaks(bodies: list[dict], value: str) -> list[str]:
    """The bodies in which `value` arrived in any form."""
    found = []
    for body in bodies:
        if value.isdigit():
            if value in digits_of(body):
                found.append(json.dumps(body, ensure_ascii=False)[:300])
        else:
            flat = unicodedata.normalize("NFKC", json.dumps(body, ensure_ascii=False)).translate(_KANJI_DIGITS)
            if "".join(value.split()) in "".join(flat.split()):
                found.append(flat[:300])
    return found
