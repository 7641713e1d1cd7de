"""Each recogniser: positives (incl. full-width forms), look-alike negatives, spans in the original text."""

from __future__ import annotations

import datetime as dt

import pytest

from sekisho.guard import Finding, GuardError, scan
from sekisho.guard.findings import ENTITY_LABELS
from sekisho.guard.scan import resolve_overlaps


def found(text: str, entity: str) -> list[str]:
    """The matched original-text strings of one entity (and a check that spans index `text`)."""
    out = []
    for f in scan(text):
        assert text[f.start:f.end] == f.text
        if f.entity == entity:
            out.append(f.text)
    return out


# --- マイナンバー -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("マイナンバー：123456789018", "123456789018"),
    ("個人番号 1234-5678-9018 を記入", "1234-5678-9018"),
    ("個人番号 1234 5678 9018", "1234 5678 9018"),
    ("マイナンバーは１２３４５６７８９０１８です", "１２３４５６７８９０１８"),
    ("個人番号：１２３４－５６７８－９０１８", "１２３４－５６７８－９０１８"),
    ("番号は 100000000005 です", "100000000005"),  # valid check digit, no context: still reported
])
def test_my_number_positives(text, expected):
    assert found(text, "MY_NUMBER") == [expected]


@pytest.mark.parametrize("text", [
    "マイナンバー：123456789012",  # check digit should be 8
    "注文番号 123456789018 の商品",  # valid check digit but an order number
    "お問い合わせ伝票番号 1234-5678-9018",  # tracking number
    "合計 ¥1,234,567,890,123",
    "売上高 123456789018円",
    "1234-5678-9018-3456",  # part of a longer code
    "ID123456789018",
    "2024-01-15 と 20240115",
])
def test_my_number_lookalikes(text):
    assert found(text, "MY_NUMBER") == []


def test_my_number_context_raises_confidence():
    bare = [f for f in scan("番号 123456789018") if f.entity == "MY_NUMBER"]
    labelled = [f for f in scan("マイナンバー 123456789018") if f.entity == "MY_NUMBER"]
    assert bare[0].score < labelled[0].score


# --- 法人番号 ----------------------------------------------------------------------------------

def test_corporate_number():
    assert found("法人番号 7000012050002", "CORPORATE_NUMBER") == ["7000012050002"]
    assert found("登録番号 T7000012050002", "CORPORATE_NUMBER") == ["7000012050002"]
    assert found("法人番号：７０００ー０１２０５ー０００２", "CORPORATE_NUMBER") == []  # not 1-4-4-4
    assert found("法人番号：7-0000-1205-0002", "CORPORATE_NUMBER") == ["7-0000-1205-0002"]
    assert found("法人番号 1000012050002", "CORPORATE_NUMBER") == []  # first digit should be 7
    # An ISBN that happens to pass the 法人番号 check (see test_guard_checkdigits) is a book.
    assert found("ISBN 9784000000055 の書籍", "CORPORATE_NUMBER") == []
    assert found("AT7000012050002", "CORPORATE_NUMBER") == []


# --- 電話番号 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("number", [
    "03-1234-5678", "06-1234-5678", "045-123-4567", "0123-45-6789", "01267-2-3456",
    "090-1234-5678", "080 1234 5678", "070-1234-5678", "050-1234-5678",
    "0120-123-456", "0800-123-4567", "0570-123-456",
    "+81-3-1234-5678", "+81 90 1234 5678", "+81(0)3-1234-5678",
    "03(1234)5678", "(03)1234-5678", "03（1234）5678",
    "０３－１２３４－５６７８", "０９０ー１２３４ー５６７８", "03−1234−5678",
])
def test_phone_positives(number):
    assert found(f"お電話は {number} まで", "PHONE_NUMBER") == [number]


def test_phone_without_hyphens_needs_context_unless_mobile():
    assert found("携帯 09012345678", "PHONE_NUMBER") == ["09012345678"]
    assert found("電話 0312345678", "PHONE_NUMBER") == ["0312345678"]
    assert found("コード 0312345678 を入力", "PHONE_NUMBER") == []


@pytest.mark.parametrize("text", [
    "03-1234-567",  # subscriber part too short
    "12-3456-7890",  # no trunk 0
    "05-1234-5678",  # 05 is not a two-digit area code
    "090-123-45678",  # mobile grouped 3-3-5
    "0120-1234-5678",  # toll-free is 10 digits
    "2024-03-15",
    "注文番号 0312345678",
])
def test_phone_lookalikes(text):
    assert found(text, "PHONE_NUMBER") == []


# --- 郵便番号・住所 -------------------------------------------------------------------------------

def test_postal_codes():
    assert found("〒100-0001", "POSTAL_CODE") == ["100-0001"]
    assert found("〒１００－０００１", "POSTAL_CODE") == ["１００－０００１"]
    assert found("〒1000001", "POSTAL_CODE") == ["1000001"]
    assert found("郵便番号：060-0001", "POSTAL_CODE") == ["060-0001"]
    assert found("530-0001 大阪府大阪市北区梅田1-1", "POSTAL_CODE") == ["530-0001"]
    assert found("部品番号 123-4567 を交換", "POSTAL_CODE") == []


@pytest.mark.parametrize("address", [
    "東京都千代田区千代田1-1",
    "大阪府大阪市北区梅田三丁目1番3号",
    "神奈川県横浜市中区山下町123番地",
    "北海道札幌市中央区北1条西2丁目",
    "埼玉県さいたま市浦和区高砂3丁目15番1号",
    "東京都港区虎ノ門１－２－３",
    "京都府京都市左京区吉田本町36番地の1",
    "東京都千代田区霞が関一丁目二番二号",
])
def test_addresses(address):
    assert found(f"住所：{address}", "ADDRESS") == [address]


def test_address_without_prefecture_needs_context():
    assert found("所在地は横浜市中区山下町1-1です", "ADDRESS") == ["横浜市中区山下町1-1"]
    assert found("対象地区3-2の工事", "ADDRESS") == []
    assert found("東京都では3番目に多い", "ADDRESS") == []


# --- メール・カード・口座・旅券・免許 ------------------------------------------------------------------

def test_email():
    assert found("連絡先 taro.yamada@example.co.jp まで", "EMAIL_ADDRESS") == ["taro.yamada@example.co.jp"]
    assert found("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ", "EMAIL_ADDRESS") == ["ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ"]
    assert found("@mention や foo@bar は対象外", "EMAIL_ADDRESS") == []


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111",
                                  "3782 822463 10005", "5555555555554444", "３５３０１１１３３３３０００００"])
def test_credit_cards(card):
    assert found(f"カード番号 {card}", "CREDIT_CARD") == [card]


@pytest.mark.parametrize("text", ["カード番号 4111 1111 1111 1112",  # Luhn fails
                                  "番号 1234 5678 1234 5670",  # Luhn passes, no issuer
                                  "4111 1111 1111"])
def test_credit_card_lookalikes(text):
    assert found(text, "CREDIT_CARD") == []


def test_bank_account_needs_banking_context():
    assert found("振込先：みずほ銀行 新宿支店 普通 1234567", "BANK_ACCOUNT") == ["1234567"]
    assert found("口座番号：１２３４５６７", "BANK_ACCOUNT") == ["１２３４５６７"]
    assert found("ゆうちょ銀行 記号番号 10120-12345671", "BANK_ACCOUNT") == ["10120-12345671"]
    assert found("会員数は 1234567 人", "BANK_ACCOUNT") == []
    assert found("資料番号 1234567", "BANK_ACCOUNT") == []


def test_passport_and_licence_need_context():
    assert found("旅券番号 TK1234567", "PASSPORT") == ["TK1234567"]
    assert found("パスポート：ＴＫ１２３４５６７", "PASSPORT") == ["ＴＫ１２３４５６７"]
    assert found("型式 TK1234567", "PASSPORT") == []
    assert found("運転免許証番号 301234567890", "DRIVERS_LICENSE") == ["301234567890"]
    assert found("品番 301234567890", "DRIVERS_LICENSE") == []


def test_licence_context_wins_over_a_valid_my_number_shape():
    findings = scan("運転免許証 番号 123456789018")
    assert [(f.entity, f.text) for f in findings] == [("DRIVERS_LICENSE", "123456789018")]


# --- 生年月日 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("生年月日：1985年4月12日", "1985年4月12日"),
    ("生年月日 1985/04/12", "1985/04/12"),
    ("昭和60年4月12日生まれ", "昭和60年4月12日"),
    ("生年月日：平成元年1月8日", "平成元年1月8日"),
    ("令和元年5月1日生", "令和元年5月1日"),
    ("生年月日 昭和五十五年三月一日", "昭和五十五年三月一日"),
    ("誕生日は１９９０年１２月３１日です", "１９９０年１２月３１日"),
    ("生年月日 S55.3.1", "S55.3.1"),
    ("生年月日：㍼55年3月1日", "㍼55年3月1日"),
])
def test_date_of_birth(text, expected):
    assert found(text, "DATE_OF_BIRTH") == [expected]


@pytest.mark.parametrize("text", [
    "会議は2024年4月1日に開催",  # no birth context
    "生年月日：2023年2月29日",  # not a leap year
    "生年月日：平成32年1月1日",  # 平成 ended on 2019-04-30
    "生年月日：昭和64年1月8日",  # 昭和 ended on 1989-01-07
    "生年月日：平成元年1月7日",  # 平成 began on 1989-01-08
    "生年月日：1985年13月1日",
    "生年月日：1980年1月1日　申請日：2024年4月1日",  # only the first date is the birth date
])
def test_date_of_birth_lookalikes(text):
    dates = found(text, "DATE_OF_BIRTH")
    assert dates in ([], ["1980年1月1日"])
    assert "2024年4月1日" not in dates


def test_future_birth_date_is_rejected():
    next_year = dt.date.today().year + 1
    assert found(f"生年月日 {next_year}年1月1日", "DATE_OF_BIRTH") == []


# --- 機密表示 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("【社外秘】営業資料", "社外秘"),
    ("部外秘", "部外秘"),
    ("極秘：人事異動案", "極秘"),
    ("【秘】人事評価", "【秘】"),
    ("〔秘〕", "〔秘〕"),
    ("「秘」人事資料", "「秘」"),
    ("議事録\n 『秘』 第3回", "『秘』"),
    ("資料【秘】について", "【秘】"),
    ("秘 人事資料", "秘"),
    ("本資料は㊙です", "㊙"),
    ("取扱注意", "取扱注意"),
    ("機密性２情報", "機密性２情報"),
    ("機密性3", "機密性3"),
    ("CONFIDENTIAL", "CONFIDENTIAL"),
    ("Confidential - internal", "Confidential"),
])
def test_confidential_markings(text, expected):
    assert found(text, "CONFIDENTIAL") == [expected]


@pytest.mark.parametrize("text", ["社長秘書の山田です", "秘密保持契約", "漢字「秘」の成り立ち", "便秘の薬", "極秘裏に進める", "極秘のうちに会合した", "機密性1情報",
                                  "confidentiality agreement", "神秘的な秘境"])
def test_confidential_lookalikes(text):
    assert found(text, "CONFIDENTIAL") == []


# --- spans, overlaps, entity selection ---------------------------------------------------------

def test_spans_point_into_the_original_text_when_nfkc_changes_lengths():
    # ㈱ becomes (株) (1 -> 3 chars), ﾃﾞ becomes デ (2 -> 1), ㍻ becomes 平成 (1 -> 2).
    text = "㈱ﾃﾞｰﾀ ﾃﾞｰﾀ 電話０３－１２３４－５６７８ ㍻元年1月8日生まれ マイナンバー１２３４５６７８９０１８"
    got = {(f.entity, f.start, f.end) for f in scan(text)}
    phone = text.index("０３")
    born = text.index("㍻")
    my = text.index("１２３４５６７８９０１８")
    assert got == {
        ("PHONE_NUMBER", phone, phone + 12),
        ("DATE_OF_BIRTH", born, born + len("㍻元年1月8日")),
        ("MY_NUMBER", my, my + 12),
    }


def test_overlaps_keep_the_most_confident_then_the_longest():
    a = Finding("A", 0, 10, "", 0.6, "a")
    b = Finding("B", 5, 15, "", 0.9, "b")
    c = Finding("C", 15, 20, "", 0.5, "c")
    d = Finding("D", 15, 25, "", 0.5, "d")
    assert resolve_overlaps([a, b, c, d]) == [b, d]


def test_entity_selection_and_labels():
    text = "電話 03-1234-5678 マイナンバー 123456789018"
    assert [f.entity for f in scan(text, entities=["MY_NUMBER"])] == ["MY_NUMBER"]
    assert ENTITY_LABELS["MY_NUMBER"] == "マイナンバー"
    with pytest.raises(GuardError, match="unknown entity 'NOPE'"):
        scan(text, entities=["NOPE"])


def test_person_names_need_ginza_and_say_so():
    try:
        import spacy  # noqa: F401
    except ImportError:
        with pytest.raises(GuardError, match="GiNZA"):
            scan("山田太郎です", entities=["PERSON"])
    else:
        assert "山田" in "".join(f.text for f in scan("山田太郎です", entities=["PERSON"]))


def test_clean_text_has_no_findings():
    text = "本日の会議では来年度の予算について議論した。売上は前年比12%増の1,234,567円、参加者は25名。"
    assert scan(text) == []


@pytest.mark.parametrize("text", [
    "㈱ﾃﾞｰﾀ　ＡＢＣ（株）①②ｶﾞｷﾞ ㍻ ﬁle e\u0301 か\u3099",
    "😀 emoji 電話０３－１２３４－５６７８ 𠮷野家",  # outside the BMP: the 32-bit path
    "plain ascii 03-1234-5678",
])
def test_normalised_view_is_nfkc_and_maps_back(text):
    import unicodedata

    from sekisho.guard.textview import NormalizedText

    view = NormalizedText(text)
    assert view.text == unicodedata.normalize("NFKC", text)
    # every normalised character maps back to original characters that normalise to include it
    for i, ch in enumerate(view.text):
        start, end = view.original_span(i, i + 1)
        assert ch in unicodedata.normalize("NFKC", text[start:end])


def test_span_after_characters_outside_the_bmp():
    text = "😀𠮷 電話 ０３－１２３４－５６７８"
    [f] = scan(text)
    assert f.entity == "PHONE_NUMBER" and f.text == "０３－１２３４－５６７８"


@pytest.mark.parametrize("text, entity, expected", [
    ("℡03-1234-5678", "PHONE_NUMBER", "03-1234-5678"),  # ℡ normalises to TEL (1 -> 3 chars)
    ("FAX0312345678", "PHONE_NUMBER", "0312345678"),
    ("生年月日 昭和60年（1985年）4月12日", "DATE_OF_BIRTH", "昭和60年（1985年）4月12日"),
    ("H2.4.1生", "DATE_OF_BIRTH", "H2.4.1"),
    ("郵便番号 1000001", "POSTAL_CODE", "1000001"),
])
def test_label_and_format_variants(text, entity, expected):
    assert found(text, entity) == [expected]


@pytest.mark.parametrize("text", ["ID0312345678 の端末", "大阪府立大学2-1号館", "県立病院", "番号 1000001"])
def test_more_lookalikes_stay_silent(text):
    assert scan(text) == []


def test_card_shaped_membership_number_is_not_a_card_unless_called_one():
    assert found("会員番号 5105105105105100 でログイン", "CREDIT_CARD") == []
    assert found("カード会員番号 5105105105105100", "CREDIT_CARD") == ["5105105105105100"]
