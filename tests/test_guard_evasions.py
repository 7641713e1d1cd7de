"""Numbers and markings written to slip past the guard (the red team's forms, #19), and the
ordinary numbers that must still pass: the canonical view may only join digits that then
validate, never amounts, page ranges, dates or codes."""

from __future__ import annotations

import pytest

from sekisho.guard import scan, scan_many
from sekisho.guard.textview import NormalizedText
from test_guard_recognizers import found

# 123456789018 and 531428067458 carry valid My Number check digits; 4111111111111111 and
# 5105105105105100 pass Luhn with Visa / Mastercard prefixes; 090-8765-4321 is a mobile number.


@pytest.mark.parametrize("text, expected", [
    # spaced out, one digit at a time (ASCII and ideographic spaces)
    ("マイナンバー：1 2 3 4 5 6 7 8 9 0 1 8", "1 2 3 4 5 6 7 8 9 0 1 8"),
    ("個人番号は５　３　１　４　２　８　０　６　７　４　５　８です", "５　３　１　４　２　８　０　６　７　４　５　８"),
    ("マイナンバー 12 34 56 78 90 18", "12 34 56 78 90 18"),
    # separated by 、 . / ・ and mixed
    ("マイナンバー：1234、5678、9018", "1234、5678、9018"),
    ("マイナンバー：1234.5678.9018", "1234.5678.9018"),
    ("マイナンバー 1234/5678/9018", "1234/5678/9018"),
    ("マイナンバー 1234・5678・9018", "1234・5678・9018"),
    ("マイナンバー 1234-5678 9018", "1234-5678 9018"),
    ("マイナンバー 1234 / 5678 - 9018", "1234 / 5678 - 9018"),
    ("１２３４‐５６７８‐９０１８", "１２３４‐５６７８‐９０１８"),
    # kanji numerals
    ("マイナンバーは一二三四五六七八九〇一八です", "一二三四五六七八九〇一八"),
    ("個人番号 五三一四 二八〇六 七四五八", "五三一四 二八〇六 七四五八"),
    # zero-width characters and soft hyphens inside
    ("マイナンバー 123４\u200b5678９018", "123４\u200b5678９018"),
    ("マイナンバー 1234\u00ad5678\u2060901\ufeff8", "1234\u00ad5678\u2060901\ufeff8"),
    # other digit systems
    ("マイナンバー ١٢٣٤٥٦٧٨٩٠١٨", "١٢٣٤٥٦٧٨٩٠١٨"),
    ("マイナンバー ۱۲۳۴۵۶۷۸۹۰۱۸", "۱۲۳۴۵۶۷۸۹۰۱۸"),
    ("マイナンバー 𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗𝟎𝟏𝟖", "𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗𝟎𝟏𝟖"),
    ("マイナンバー ❶❷❸❹❺❻❼❽❾⓿❶❽", "❶❷❸❹❺❻❼❽❾⓿❶❽"),
    # split across two lines
    ("マイナンバー：12345678\n9018", "12345678\n9018"),
    ("マイナンバー：1234 5678\n9018 です", "1234 5678\n9018"),
])
def test_my_number_evasions(text, expected):
    assert found(text, "MY_NUMBER") == [expected]


@pytest.mark.parametrize("text, expected", [
    ("カード番号 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"),
    ("カード番号 4111、1111、1111、1111", "4111、1111、1111、1111"),
    ("カード 4111.1111.1111.1111", "4111.1111.1111.1111"),
    ("カード 5105/1051/0510/5100", "5105/1051/0510/5100"),
    ("カード 4111-1111 1111/1111", "4111-1111 1111/1111"),
    ("カード番号は四一一一 一一一一 一一一一 一一一一", "四一一一 一一一一 一一一一 一一一一"),
    ("カード 4111\u200b1111\u200b1111\u200b1111", "4111\u200b1111\u200b1111\u200b1111"),
    ("カード ٤١١١١١١١١١١١١١١١", "٤١١١١١١١١١١١١١١١"),
    ("カード番号\n4111 1111\n1111 1111", "4111 1111\n1111 1111"),
])
def test_card_evasions(text, expected):
    assert found(text, "CREDIT_CARD") == [expected]


@pytest.mark.parametrize("text, expected", [
    ("電話は〇九〇・八七六五・四三二一", "〇九〇・八七六五・四三二一"),
    ("携帯 〇九〇八七六五四三二一", "〇九〇八七六五四三二一"),
    ("携帯 〇九〇 八千七百六十五 四千三百二十一", "〇九〇 八千七百六十五 四千三百二十一"),
    ("連絡先 0 9 0 8 7 6 5 4 3 2 1", "0 9 0 8 7 6 5 4 3 2 1"),
    ("連絡先 090、8765、4321", "090、8765、4321"),
    ("連絡先 090.8765.4321", "090.8765.4321"),
    ("連絡先 090/8765/4321", "090/8765/4321"),
    ("連絡先 090-8765 4321", "090-8765 4321"),
    ("連絡先 090\u200b8765\u200b4321", "090\u200b8765\u200b4321"),
    ("連絡先 ٠٩٠٨٧٦٥٤٣٢١", "٠٩٠٨٧٦٥٤٣٢١"),
    ("連絡先 090-8765\n4321", "090-8765\n4321"),
    # a fixed line keeps its groups, so it needs no context word, as 03-1234-5678 does not
    ("折り返しは 03.1234.5678 まで", "03.1234.5678"),
])
def test_phone_evasions(text, expected):
    assert found(text, "PHONE_NUMBER") == [expected]


@pytest.mark.parametrize("text, entity, expected", [
    ("住所：東 京 都 千 代 田 区 霞 が 関 1 - 2 - 3", "ADDRESS", "東 京 都 千 代 田 区 霞 が 関 1 - 2 - 3"),
    ("送付先 大　阪　府　大　阪　市　北　区　梅　田　1　-　1", "ADDRESS", "大　阪　府　大　阪　市　北　区　梅　田　1　-　1"),
    ("【社 外 秘】営業資料", "CONFIDENTIAL", "社 外 秘"),
    ("社\u200b外\u200b秘", "CONFIDENTIAL", "社\u200b外\u200b秘"),
    ("極 秘 人事案", "CONFIDENTIAL", "極 秘"),
    ("取 扱 注 意", "CONFIDENTIAL", "取 扱 注 意"),
])
def test_spaced_out_words(text, entity, expected):
    assert found(text, entity) == [expected]


# --- numbers that must still pass ---------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "ご請求額 1,234,567円 をお振込みください",
    "合計 12,345,678,901,234 円",
    "売上 1.234.567.890.123 ユーロ",
    "pp. 12-34 を参照",
    "12〜34ページ",
    "第一二三号",
    "令和六年四月一日付",
    "二〇二四年一月一五日に開催",
    "2024/01/15 10:30 開始",
    "2024.01.15 - 2024.02.15 の期間",
    "注文番号 1234/5678/9018 の商品",
    "お問い合わせ伝票番号 1234 5678 9018",
    "追跡番号：０９０・８７６５・４３２１",
    "ISBN 978-4-00-310101-8",
    "部品 12 34 56 78 90 12",  # joined 123456789012 fails the check digit
    "0 1 2 3 4 5 6 7 8 9 と数える",  # 0123456789 would be a fixed line, but needs context
    "参加者 25名、30名、45名、60名",
    "1\n2\n3\n4\n5\n6\n7\n8\n9\n0\n1\n2",  # a column of digits: 123456789012 fails the check
    "平成 三十一 年 四 月",
    "山田 太郎 と 佐藤 花子",
])
def test_benign_numbers_and_words_pass(text):
    assert scan(text) == []


def test_letter_spacing_keeps_latin_words_apart():
    # Only Japanese spaced out is closed up; an English phrase keeps its spaces.
    assert NormalizedText("a b c d").text == "a b c d"
    assert NormalizedText("file é が").text == "file é が"
    assert NormalizedText("【社 外 秘】").text == "【社外秘】"


def test_view_maps_joined_digits_back_to_every_original_character():
    text = "個人番号 １ ２ ３ ４\u200b５ ６ ７ ８ ９ ０ １ ８ 以上"
    [f] = scan(text)
    assert (f.entity, f.start, text[f.end:]) == ("MY_NUMBER", text.index("１"), " 以上")


# --- conversations ------------------------------------------------------------------------------

def test_number_split_across_two_messages():
    got = scan_many({"user[0]": "前半は123456", "user[1]": "後半は789018"})
    assert [(f.entity, f.text, f.start) for f in got["user[0]"]] == [("MY_NUMBER", "123456", 3)]
    assert [(f.entity, f.text, f.start) for f in got["user[1]"]] == [("MY_NUMBER", "789018", 3)]
    assert got["user[1]"][0].detail == {"across": ["user[0]", "user[1]"]}


def test_number_split_across_user_and_assistant_turns():
    # The assistant's turn between the halves holds no digit, so it cannot hold part of the number.
    texts = {"message[0]": "私の携帯は090-8765", "message[1]": "続きをどうぞ", "message[2]": "4321です"}
    got = scan_many(texts)
    assert [f.text for f in got["message[0]"]] == ["090-8765"] and got["message[1]"] == []
    assert [f.text for f in got["message[2]"]] == ["4321"]
    assert got["message[2]"][0].detail == {"across": ["message[0]", "message[2]"]}
    texts = {"message[0]": "私の携帯は090-8765", "message[1]": "-4321 です。"}
    got = scan_many(texts)
    assert [f.text for f in got["message[0]"]] == ["090-8765"]
    assert [f.text for f in got["message[1]"]] == ["4321"]  # the dash lies between the halves


def test_number_ends_of_long_messages_are_joined_past_a_turn_without_digits():
    texts = {"message[0]": "お問い合わせありがとうございます。" * 40 + "番号は1234 5678",
             "message[1]": "はい、続けてください。" * 30,
             "message[2]": "9018 です。" + "よろしくお願いします。" * 40}
    got = scan_many(texts)
    assert [f.text for f in got["message[0]"]] == ["1234 5678"]
    assert [(f.text, f.start) for f in got["message[2]"]] == [("9018", 0)]
    # Cutting a text's ends out never invents a number: the middle of a long text is not an end.
    texts = {"a": "12345678" + "あ" * 400 + "9018", "b": "読みました", "c": "1234"}
    assert scan_many(texts) == {"a": [], "b": [], "c": []}


def test_scan_many_reports_each_text_as_scan_does():
    texts = {"a": "電話 03-1234-5678", "b": "マイナンバー 123456789018", "c": ""}
    got = scan_many(texts)
    assert got == {key: scan(text) for key, text in texts.items()}


def test_unrelated_numbers_in_neighbouring_messages_stay_apart():
    got = scan_many({"a": "会議は2024年", "b": "12345678人が参加"})
    assert got == {"a": [], "b": []}


def test_card_grouped_with_unicode_hyphens():
    assert found("カード番号：４１１１‐１１１１‐１１１１‐１１１１", "CREDIT_CARD") == ["４１１１‐１１１１‐１１１１‐１１１１"]
