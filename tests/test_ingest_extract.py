"""Extraction of every supported format (the bundled みなと市 samples and files built here), and
the one-line error for every kind of bad file."""

from __future__ import annotations

import io
import os
from pathlib import Path

import docx
import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from sekisho.ingest import IngestError, chunk, extract
from sekisho.ingest.extract import reflow_wrapped_lines

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "city"


def sample(name: str):
    return extract(SAMPLES / name)


def chunk_of(extracted, needle: str):
    chunks = chunk(extracted.text, doc_id="d", sections=extracted.sections)
    return next(c for c in chunks if needle in c.text)


# --- the bundled samples: one per format and encoding ------------------------------------


def test_markdown_sample_title_headings_and_fee():
    doc = sample("juminhyo.md")
    assert (doc.title, doc.media_type, doc.encoding) == ("住民票の写しの交付", "text/markdown", "utf-8")
    fee = chunk_of(doc, "1通300円")
    assert fee.location.heading == ("住民票の写しの交付", "手数料")
    hours = chunk_of(doc, "第2・第4土曜日")
    assert hours.location.heading == ("住民票の写しの交付", "受付場所と時間", "市役所本庁舎")


def test_shift_jis_sample_decodes_and_titles_itself_from_its_first_line():
    doc = sample("sodai-gomi.txt")
    assert (doc.title, doc.media_type, doc.encoding) == ("粗大ごみの出し方", "text/plain", "cp932")
    assert "1,000円：ソファー、ベッド" in doc.text
    assert "\r" not in doc.text


def test_euc_jp_sample_decodes():
    doc = sample("toshokan.txt")
    assert doc.encoding == "euc_jp"
    assert "本・雑誌は1人10冊まで" in doc.text


def test_pdf_sample_has_japanese_text_on_the_right_pages():
    doc = sample("jido-teate.pdf")
    assert (doc.title, doc.media_type, doc.encoding) == ("児童手当のご案内", "application/pdf", None)
    assert [s.page for s in doc.sections] == [1, 2]
    assert chunk_of(doc, "3歳未満：15,000円").location.page == 1
    assert chunk_of(doc, "偶数月").location.page == 2
    # Lines the layout wrapped mid-word are rejoined: the text a user is quoted and shown reads
    # as the document does, and the analyser sees 所得 and 支給 whole.
    assert "前月までの2か月分を支給します。10日が土曜日" in doc.text
    assert "所得制限がなくなりました。" in doc.text
    assert "15日を過ぎると、過ぎた月の分は支給できません。" in chunk_of(doc, "過ぎた月").text
    # ...while the lines that really are separate stay separate.
    assert "■支給日\n児童手当は" in doc.text
    assert "3歳未満：15,000円\n3歳から高校生年代まで：10,000円\n" in doc.text
    assert "・請求者名義の預金通帳またはキャッシュカード（振込先の確認のため）\n・請求者と配偶者" in doc.text


def test_reflow_joins_only_lines_the_layout_wrapped():
    page = (
        "児童手当は、年6回、偶数月の10日に、前月までの2か月分を支\n"
        "給します。10日が土曜日の場合は、その直前の平日に支給します\n"
        "。支給額は子どもの年齢によって変わり、3歳未満は月額\n"
        "15,000円です。\n"
        "■申請の方法\n"
        "1. 認定請求書を提出してください。ここまでで一行を使い切っていま\n"
        "・必要なもの"
    )
    assert reflow_wrapped_lines(page).split("\n") == [
        "児童手当は、年6回、偶数月の10日に、前月までの2か月分を支給します。10日が土曜日の場合は、"
        "その直前の平日に支給します。支給額は子どもの年齢によって変わり、3歳未満は月額15,000円です。",
        "■申請の方法",  # short: a heading, not a wrapped line
        "1. 認定請求書を提出してください。ここまでで一行を使い切っていま",  # the next line is an item
        "・必要なもの",
    ]


def test_plain_text_wrapped_at_a_fixed_width_reads_as_sentences_and_keeps_its_offsets():
    text = ("Notice of office hours\n\nThe Citizen Services Division is open on weekdays from 8:30 a.m. to\n"
            "5:15 p.m. Certificates are also issued on the 2nd and 4th Saturday of\neach month, from 9:00 a.m. "
            "to noon.\nPhone: 0123-45-6701\nFax: 0123-45-6709\n")
    doc = extract(text.encode(), name="hours.txt")
    assert len(doc.text) == len(text) and doc.title == "Notice of office hours"
    assert "from 8:30 a.m. to 5:15 p.m. Certificates are also issued on the 2nd and 4th Saturday of each month" in doc.text
    assert "to noon.\nPhone: 0123-45-6701\nFax:" in doc.text  # short lines and sentence ends stay lines
    source = (SAMPLES / "sodai-gomi.txt").read_bytes().decode("cp932").replace("\r\n", "\n")
    assert sample("sodai-gomi.txt").text.count("\n") == source.count("\n")  # Japanese notices keep every line


def test_reflow_measures_width_not_characters_and_keeps_english_words_apart():
    # 30 half-width digits are as wide as 15 kanji: the second line, 19 characters against the
    # first's 38, is full width.
    page = "受付番号は123456789012345678901234567890です。\n認定請求書を提出してください本日中まで\nに。"
    assert reflow_wrapped_lines(page) == "受付番号は123456789012345678901234567890です。\n認定請求書を提出してください本日中までに。"
    english = "The fee for a copy of the certificate is 300 yen\nat the counter and 200 yen at stores.\nNext line"
    assert reflow_wrapped_lines(english) == (
        "The fee for a copy of the certificate is 300 yen at the counter and 200 yen at stores.\nNext line")


def test_html_sample_drops_scripts_styles_and_navigation():
    doc = sample("inkan-toroku.html")
    assert (doc.title, doc.media_type, doc.encoding) == ("印鑑登録 | みなと市", "text/html", "utf-8")
    assert "analytics" not in doc.text and "font-family" not in doc.text and "トップ" not in doc.text
    size = chunk_of(doc, "25ミリメートル")
    assert size.location.heading == ("印鑑登録", "登録できる印鑑")
    assert chunk_of(doc, "代理人選任届").location.heading == ("印鑑登録", "登録の手続き", "代理人が手続きする場合")
    assert "印鑑登録証明書（窓口） 1通300円\n" in doc.text  # table cells on one line per row


def test_docx_sample_title_headings_and_table():
    doc = sample("tennyu-tenshutsu.docx")
    assert doc.title == "転入届・転出届"
    assert doc.encoding is None
    deadline = chunk_of(doc, "引っ越した日から14日以内に届け出てください")
    assert deadline.location.heading == ("転入届・転出届", "転入届（市外からみなと市へ引っ越してきたとき）")
    assert "市民課 住民記録係 本庁舎1階 1番窓口 平日 午前8時30分～午後5時15分" in doc.text


def test_english_sample():
    doc = sample("foreign-residents.md")
    assert doc.title == "Guide for Foreign Residents of Minato City"
    assert chunk_of(doc, "300 yen per copy").location.heading[-1] == "Certificates"
    # The file wraps its paragraphs at 100 columns; a sentence reads whole across the wrap.
    assert "costs 300 yen per copy at the counter and 200 yen per copy at a convenience store" in doc.text


def test_markdown_soft_wraps_of_latin_text_become_spaces_and_nothing_else_moves():
    text = ("# Fees\n\nA copy costs 300 yen at the counter and 200 yen\nat a convenience store.\n"
            "Line with a hard break  \nstays.\n- item one\n- item two\n\n```\ncode line\nmore code\n```\n"
            "住民票の写しは\n窓口で交付します。\n")
    doc = extract(text.encode(), name="fees.md")
    assert len(doc.text) == len(text)  # offsets into the file still hold
    assert "200 yen at a convenience store." in doc.text
    assert "hard break  \nstays." in doc.text  # two trailing spaces: a Markdown line break
    assert "- item one\n- item two\n" in doc.text and "code line\nmore code\n" in doc.text
    assert "住民票の写しは\n窓口で交付します。" in doc.text  # Japanese lines are the writer's


# --- format details on files built here ----------------------------------------------------


def test_markdown_ignores_hashes_in_code_and_reads_setext_headings():
    text = "概要\n====\n\n本文です。\n\n```sh\n# これは見出しではない\nsekisho ingest .\n```\n\n手順\n----\n\n実行します。\n"
    doc = extract(text.encode(), name="guide.md")
    assert doc.title == "概要"
    assert [s.heading for s in doc.sections] == [("概要",), ("概要", "手順")]
    assert "# これは見出しではない" in doc.text[doc.sections[0].start:doc.sections[0].end]


def test_markdown_heading_without_body_joins_the_next_section():
    text = "# 住民票\n## 手数料\n1通300円です。\n"
    doc = extract(text.encode(), name="a.md")
    (only,) = chunk(doc.text, doc_id="d", sections=doc.sections)
    assert only.text == "# 住民票\n## 手数料\n1通300円です。"
    assert only.location.heading == ("住民票", "手数料")


def test_html_without_title_uses_h1_and_joins_source_line_breaks_in_japanese():
    html = "<html><body><h1>ごみの分別</h1><p>燃やすごみは\n  週2回です。</p><p>A\nB</p></body></html>"
    doc = extract(html.encode(), name="gomi.htm")
    assert doc.title == "ごみの分別"
    assert doc.text == "ごみの分別\n燃やすごみは週2回です。\nA B"


def test_docx_without_core_title_uses_its_first_heading(tmp_path):
    document = docx.Document()
    document.add_paragraph("前書きの段落です。")
    document.add_heading("国民健康保険", level=1)
    document.add_paragraph("加入の届出は14日以内です。")
    document.add_heading("保険料", level=2)
    document.add_paragraph("保険料は世帯ごとに計算します。")
    path = tmp_path / "kokuho.docx"
    document.save(path)
    doc = extract(path)
    assert doc.title == "国民健康保険"
    assert [s.heading for s in doc.sections] == [(), ("国民健康保険",), ("国民健康保険", "保険料")]


def english_pdf(pages: list[str], title: str | None = None) -> bytes:
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def test_pdf_title_from_metadata_else_first_line_and_pages_numbered():
    pages = ["Waste collection guide\nBurnable waste: Monday and Thursday.", "Recyclables: Wednesday."]
    with_meta = extract(english_pdf(pages, title="Minato waste guide"), name="waste.pdf")
    assert with_meta.title == "Minato waste guide"
    plain = extract(english_pdf(pages), name="waste.pdf")
    assert plain.title == "Waste collection guide"
    chunks = chunk(plain.text, doc_id="d", sections=plain.sections)
    assert [(c.location.page, c.text) for c in chunks] == [
        (1, "Waste collection guide\nBurnable waste: Monday and Thursday."),
        (2, "Recyclables: Wednesday."),
    ]


def test_pdf_with_only_an_owner_password_opens():
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(english_pdf(["Open to read."]))))
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    assert extract(buffer.getvalue(), name="open.pdf").text == "Open to read."


# --- bad files: one line naming the file and the reason -------------------------------------


def assert_one_line_error(source, reason_fragment: str, **kwargs) -> None:
    with pytest.raises(IngestError) as info:
        extract(source, **kwargs)
    message = str(info.value)
    label = kwargs.get("name") or str(source)
    assert message.startswith(f"{label}: "), message
    assert "\n" not in message
    assert reason_fragment in message, message


def test_corrupt_pdf(tmp_path):
    path = tmp_path / "broken.pdf"
    path.write_bytes(english_pdf(["Some text."])[:300])
    assert_one_line_error(path, "corrupt PDF")


def test_not_a_pdf_at_all(tmp_path):
    path = tmp_path / "fake.pdf"
    path.write_text("this is a text file renamed to .pdf", encoding="utf-8")
    assert_one_line_error(path, "corrupt PDF")


def test_encrypted_pdf(tmp_path):
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(english_pdf(["Confidential."]))))
    writer.encrypt(user_password="user-secret", owner_password="owner-secret", algorithm="AES-256")
    path = tmp_path / "secret.pdf"
    with path.open("wb") as fp:
        writer.write(fp)
    assert_one_line_error(path, "encrypted PDF")


def test_scanned_pdf_without_text(tmp_path):
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 140, style="F")  # an image-only page has no text layer either
    path = tmp_path / "scan.pdf"
    path.write_bytes(bytes(pdf.output()))
    assert_one_line_error(path, "no extractable text")


@pytest.mark.parametrize("content", [b"", b" \n\r\n\t "], ids=["empty", "whitespace"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    assert_one_line_error(path, "empty file")


def test_html_without_text(tmp_path):
    path = tmp_path / "blank.html"
    path.write_text("<html><head><script>var x = 1;</script></head><body><img src=a.png></body></html>")
    assert_one_line_error(path, "no extractable text")


def test_corrupt_docx(tmp_path):
    path = tmp_path / "broken.docx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    assert_one_line_error(path, "corrupt DOCX")


@pytest.mark.parametrize("name", ["photo.png", "table.xlsx", "Makefile"])
def test_unsupported_extension(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"content")
    assert_one_line_error(path, "unsupported file type")


def test_file_over_the_size_cap(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("住民票の写しは1通300円です。\n" * 2000, encoding="utf-8")
    assert_one_line_error(path, "file too large", max_bytes=10_000)
    assert "住民票" in extract(path, max_bytes=1_000_000).text


def test_missing_file_and_folder(tmp_path):
    assert_one_line_error(tmp_path / "gone.md", "file not found")
    folder = tmp_path / "folder.md"
    folder.mkdir()
    assert_one_line_error(folder, "is a directory")


def test_unreadable_file(tmp_path):
    path = tmp_path / "private.txt"
    path.write_text("非公開の文書です。", encoding="utf-8")
    path.chmod(0)
    if os.geteuid() != 0:
        assert_one_line_error(path, "permission denied")
        return
    # Root reads any file, so drop to an unprivileged user in a forked child (sekisho is already
    # imported there) and report the outcome through a pipe.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                extract(path)
                outcome = "no error"
            except IngestError as exc:
                outcome = str(exc)
            os.write(write_end, outcome.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    assert outcome == f"{path}: 読み取り権限がありません / permission denied"


def test_empty_heading_followed_by_a_sibling_keeps_its_own_place():
    doc = extract("# 案内\n## 手数料\n## 受付時間\n平日のみです。\n".encode(), name="a.md")
    assert [s.heading for s in doc.sections] == [("案内", "手数料"), ("案内", "受付時間")]


def test_markdown_front_matter_gives_the_title_and_is_not_indexed():
    text = "---\ntitle: \"国民健康保険のご案内\"\nupdated: 2026-04-01\n---\n\n加入は14日以内に届け出てください。\n\n- 保険証\n- 印鑑\n---\n\n## 保険料\n\n世帯ごとに計算します。\n"
    doc = extract(text.encode(), name="kokuho.md")
    assert doc.title == "国民健康保険のご案内"
    chunks = chunk(doc.text, doc_id="d", sections=doc.sections)
    assert all("updated:" not in c.text for c in chunks)
    # "- 印鑑" followed by --- is a list item and a rule, not a heading.
    assert [s.heading for s in doc.sections] == [(), ("保険料",)]
