"""The parsers under Hypothesis (#19): whatever bytes arrive as .txt, .md, .html, .pdf or .docx,
`extract` returns the text or raises IngestError (one line naming the file), never anything else,
and within a time bound per file. Text in every supported encoding round-trips. Seeded (the same
examples each run) and bounded (a few hundred files)."""

from __future__ import annotations

import io
import signal
import zipfile
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from ingest_fixtures.archives import docx_with_body
from sekisho.ingest import IngestError, extract
from server_fixtures.support import CITY

SECONDS_PER_FILE = 10
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)

# Japanese as office notices write it, some Latin and digits, and the characters parsers trip on.
_JAPANESE = st.characters(codec="shift_jis", categories=["Lo", "Nd", "Lu", "Ll", "Po", "Ps", "Pe", "Zs"],
                          exclude_characters="\u203e\u00a5")  # they decode back as ~ and a backslash
_ODD = st.sampled_from(["\n", "\r\n", "\t", "<", ">", "&", "#", "*", "|", "\u3000", "〜", "①", "㈱", "ｶﾞ", "\u200b"])
TEXT = st.lists(st.one_of(_JAPANESE, _ODD), max_size=200).map("".join)


@contextmanager
def bounded(seconds: int):
    """TimeoutError if the block runs longer than `seconds` (SIGALRM: pytest runs in the main thread)."""
    def expire(signum, frame):  # noqa: ANN001
        raise TimeoutError(f"a file took more than {seconds} s to extract")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def extracted_or_refused(data: bytes, name: str):
    """The Extracted, or None when refused with IngestError; anything else fails the test."""
    with bounded(SECONDS_PER_FILE):
        try:
            return extract(data, name=name)
        except IngestError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(name)
            return None


@pytest.mark.slow
@seed(19)
@FUZZ
@given(text=TEXT, encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp932", "euc_jp", "iso2022_jp"]),
       suffix=st.sampled_from([".txt", ".md"]))
def test_text_in_every_encoding(text, encoding, suffix):
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        return  # not writable in that encoding (a character it lacks)
    got = extracted_or_refused(data, f"memo{suffix}")
    if got is not None and encoding in ("utf-8-sig", "utf-16") and suffix == ".txt" and text.strip():
        # With a byte-order mark the encoding is certain: the text must come back as written
        # (line endings unified; plain-text wraps of Latin lines may become spaces).
        expected = text.replace("\r\n", "\n").replace("\r", "\n")
        assert got.text.replace(" ", "").replace("\n", "") == expected.replace(" ", "").replace("\n", "")


_TAGS = st.sampled_from(["div", "p", "span", "h1", "h2", "h3", "table", "tr", "td", "th", "ul", "li", "pre", "br",
                         "script", "style", "nav", "b", "a", "section", "form", "iframe", "title"])


@st.composite
def html_documents(draw) -> str:
    parts, opened = ["<html><body>"], []
    for _ in range(draw(st.integers(0, 60))):
        choice = draw(st.integers(0, 3))
        if choice == 0 or not opened:
            tag = draw(_TAGS)
            parts.append(f"<{tag}>")
            opened.append(tag)
        elif choice == 1:
            parts.append(f"</{opened.pop()}>")
        else:
            parts.append(draw(TEXT))
    if draw(st.booleans()):
        nested = draw(st.integers(1, 3000))  # deeper than Python's recursion limit
        parts.append("<div>" * nested + draw(TEXT) + "</div>" * nested)
    return "".join(parts + [f"</{t}>" for t in reversed(opened)])


@pytest.mark.slow
@seed(19)
@FUZZ
@given(page=html_documents(), encoding=st.sampled_from(["utf-8", "cp932", "euc_jp"]))
def test_html_of_any_shape(page, encoding):
    extracted_or_refused(page.encode(encoding, "replace"), "page.html")


@pytest.mark.slow
@seed(19)
@FUZZ
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".txt", ".md", ".html", ".pdf", ".docx"]))
def test_arbitrary_bytes_under_any_name(data, suffix):
    extracted_or_refused(data, f"file{suffix}")


def _mutations(original: bytes):
    """Flip bytes, cut the file short, or splice in garbage: damaged copies of a real file."""
    return st.one_of(
        st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)), min_size=1, max_size=20).map(
            lambda flips: _flipped(original, flips)),
        st.integers(1, len(original) - 1).map(lambda cut: original[:cut]),
        st.tuples(st.integers(0, len(original)), st.binary(min_size=1, max_size=200)).map(
            lambda at: original[:at[0]] + at[1] + original[at[0]:]),
    )


def _flipped(original: bytes, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(original)
    for position, value in flips:
        data[position] = value
    return bytes(data)


PDF = (CITY / "jido-teate.pdf").read_bytes()
DOCX = (CITY / "tennyu-tenshutsu.docx").read_bytes()


@pytest.mark.slow
@seed(19)
@FUZZ
@given(data=_mutations(PDF))
def test_damaged_pdfs(data):
    extracted_or_refused(data, "teate.pdf")


@pytest.mark.slow
@seed(19)
@FUZZ
@given(data=_mutations(DOCX))
def test_damaged_docx_archives(data):
    extracted_or_refused(data, "tennyu.docx")


@st.composite
def word_bodies(draw) -> str:
    """document.xml bodies built from the elements the reader handles, in any arrangement, with
    attributes that may be missing or wrong (a span of zero, a merge with nothing above)."""
    def run() -> str:
        inner = draw(st.lists(st.sampled_from(["t", "tab", "br", "brpage", "cr", "hyphen", "ptab"]), max_size=4))
        xml = {"t": lambda: f"<w:t>{_escape(draw(TEXT))}</w:t>", "tab": lambda: "<w:tab/>", "br": lambda: "<w:br/>",
               "brpage": lambda: '<w:br w:type="page"/>', "cr": lambda: "<w:cr/>",
               "hyphen": lambda: "<w:noBreakHyphen/>", "ptab": lambda: "<w:ptab/>"}
        return "<w:r>" + "".join(xml[k]() for k in inner) + "</w:r>"

    def paragraph() -> str:
        style = draw(st.sampled_from(["", '<w:pPr><w:pStyle w:val="Heading1"/></w:pPr>',
                                      '<w:pPr><w:pStyle w:val="Title"/></w:pPr>', '<w:pPr><w:pStyle w:val="Nope"/></w:pPr>']))
        runs = "".join(run() if draw(st.booleans()) else f"<w:hyperlink>{run()}</w:hyperlink>"
                       for _ in range(draw(st.integers(0, 3))))
        return f"<w:p>{style}{runs}</w:p>"

    def cell() -> str:
        props = draw(st.sampled_from(["", '<w:tcPr><w:gridSpan w:val="2"/></w:tcPr>', '<w:tcPr><w:gridSpan w:val="0"/></w:tcPr>',
                                      '<w:tcPr><w:gridSpan w:val="x"/></w:tcPr>', '<w:tcPr><w:vMerge/></w:tcPr>',
                                      '<w:tcPr><w:vMerge w:val="restart"/></w:tcPr>']))
        return f"<w:tc>{props}{paragraph()}</w:tc>"

    def table() -> str:
        rows = "".join("<w:tr>" + "".join(cell() for _ in range(draw(st.integers(0, 3)))) + "</w:tr>"
                       for _ in range(draw(st.integers(0, 4))))
        return f"<w:tbl>{rows}</w:tbl>"

    return "".join(table() if draw(st.integers(0, 4)) == 0 else paragraph() for _ in range(draw(st.integers(0, 12))))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@pytest.mark.slow
@seed(19)
@FUZZ
@given(body=word_bodies())
def test_word_documents_of_any_structure(body):
    with bounded(SECONDS_PER_FILE):
        try:
            extract(docx_with_body(body), name="kozo.docx")
        except IngestError as exc:
            # Well-formed XML of the elements the reader knows: only a document without text is refused.
            assert "no extractable text" in str(exc)


def test_the_fuzzed_samples_are_whole_to_begin_with():
    """The damaged copies start from files that extract: a broken sample would test nothing."""
    assert extract(PDF, name="teate.pdf").text and extract(DOCX, name="tennyu.docx").text
    with zipfile.ZipFile(io.BytesIO(DOCX)) as archive:
        assert "word/document.xml" in archive.namelist()


def test_a_pdf_with_a_filter_pypdf_does_not_know_is_one_line():
    """Found by the fuzzing above: pypdf raised NotImplementedError (and, on a self-referencing
    object, LimitReachedError) out of extract instead of a corrupt-PDF line."""
    damaged = PDF.replace(b"/FlateDecode", b"/FlateDecodX")
    with pytest.raises(IngestError, match="corrupt PDF: Unsupported filter"):
        extract(damaged, name="teate.pdf")
