"""Text encodings a Japanese office produces: the decoded text is what the author wrote, or the
file is rejected; never mojibake."""

from __future__ import annotations

import codecs

import pytest

from sekisho.ingest import IngestError, extract
from sekisho.ingest.decode import UndecodableText, decode_text

NOTICE = (
    "粗大ごみは、収集日の朝8時30分までに出してください。\n"
    "手数料は1点400円または1,000円です（処理券を貼ってください）。\n"
    "問い合わせ：みなと市環境政策課"
)


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("cp932", "cp932"), ("shift_jis", "cp932"),
     ("euc_jp", "euc_jp"), ("iso2022_jp", "iso2022_jp"), ("utf-16", "utf-16")],
)
def test_japanese_notice_decodes_to_the_original_text(encoding, expected):
    text, detected = decode_text(NOTICE.encode(encoding))
    assert text == NOTICE
    assert detected == expected


def test_utf8_bom_is_not_part_of_the_text():
    text, _ = decode_text(codecs.BOM_UTF8 + "住民票".encode("utf-8"))
    assert text == "住民票"


@pytest.mark.parametrize("word", ["ごみ", "市民課", "みなと市", "印鑑登録", "転入届・転出届", "住民票の写し"])
def test_short_euc_jp_that_also_decodes_as_cp932_is_read_as_euc_jp(word):
    data = word.encode("euc_jp")
    assert data.decode("cp932") != word  # the trap: a strict CP932 decode succeeds, as mojibake
    assert decode_text(data) == (word, "euc_jp")
    assert decode_text(word.encode("cp932")) == (word, "cp932")


def test_cp932_only_characters_and_half_width_katakana_survive():
    text = "①申請書の「ﾌﾘｶﾞﾅ」欄に記入してください。㈱みなと商事"
    assert decode_text(text.encode("cp932")) == (text, "cp932")


@pytest.mark.parametrize(
    "data",
    [
        "住民票の写し".encode("cp932") + "粗大ごみの出し方".encode("euc_jp"),  # two encodings mixed
        "住民票の写し".encode("utf-8") + "粗大ごみ".encode("cp932"),
        bytes(range(0x80, 0x100)) * 4,
        b"\x82\xa0\x82\xa2\xff\xfe\xfd\xfc\x80",
    ],
    ids=["cp932+euc", "utf8+cp932", "high-bytes", "broken-sjis"],
)
def test_undecodable_bytes_are_an_error_not_mojibake(data):
    with pytest.raises(UndecodableText):
        decode_text(data)


def test_undecodable_text_file_fails_with_one_line_naming_it(tmp_path):
    path = tmp_path / "お知らせ.txt"
    path.write_bytes("住民票".encode("utf-8") + "の写し".encode("cp932") + b"\xff\xfe")
    with pytest.raises(IngestError) as info:
        extract(path)
    message = str(info.value)
    assert message.startswith(str(path) + ": ") and "\n" not in message
    assert "文字コード" in message


def test_binary_data_with_a_text_extension_is_rejected(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes(b"\x00\x01\x02\x03" * 50)
    with pytest.raises(IngestError, match="data.txt"):
        extract(path)


def test_western_english_in_windows_1252():
    text = "Café opening hours — “weekdays” only; résumé desk on the 1st floor."
    assert decode_text(text.encode("cp1252")) == (text, "cp1252")


HTML = """<html><head><meta {meta}><title>印鑑登録のご案内</title></head>
<body><h1>印鑑登録</h1><p>印鑑登録証明書は1通300円です。</p></body></html>"""


@pytest.mark.parametrize(
    ("meta", "encoding", "expected"),
    [
        ('charset="Shift_JIS"', "cp932", "cp932"),
        ('http-equiv="Content-Type" content="text/html; charset=EUC-JP"', "euc_jp", "euc_jp"),
        ('charset="utf-8"', "utf-8", "utf-8"),
    ],
)
def test_html_meta_charset_is_respected(meta, encoding, expected):
    extracted = extract(HTML.format(meta=meta).encode(encoding), name="inkan.html")
    assert extracted.encoding == expected
    assert extracted.title == "印鑑登録のご案内"
    assert "印鑑登録証明書は1通300円です。" in extracted.text


def test_html_with_a_wrong_meta_charset_is_still_decoded_correctly():
    # Declares UTF-8 (a common copy-paste mistake) but is saved in Shift_JIS.
    extracted = extract(HTML.format(meta='charset="utf-8"').encode("cp932"), name="inkan.html")
    assert extracted.encoding == "cp932"
    assert "印鑑登録証明書は1通300円です。" in extracted.text


def test_windows_line_endings_are_normalised(tmp_path):
    path = tmp_path / "gomi.txt"
    path.write_bytes(NOTICE.replace("\n", "\r\n").encode("cp932"))
    extracted = extract(path)
    assert extracted.text == NOTICE
