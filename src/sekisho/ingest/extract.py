"""Extract the text, title and structure (pages, headings) of one document.

Supported: .txt, .md, .html/.htm, .pdf (pypdf), .docx (python-docx). Every failure is an
``IngestError`` naming the file and the reason in one line.
"""

from __future__ import annotations

import io
import logging
import os
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePath

from sekisho.errors import one_line
from sekisho.ingest.chunking import Section
from sekisho.ingest.decode import UndecodableText, decode_text, looks_binary
from sekisho.ingest.errors import IngestError

DEFAULT_MAX_BYTES = 100 * 1024 * 1024

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MEDIA_TYPES = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".docx": DOCX_TYPE,
}
_TITLE_MAX = 120


@dataclass(frozen=True)
class Extracted:
    text: str  # the original text: what chunks slice and citations point into
    title: str
    media_type: str
    encoding: str | None  # source encoding of text formats; None for PDF and DOCX
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class _Heading:
    start: int  # offset of the heading line in the text
    body_start: int  # offset just after the heading line
    level: int
    title: str


def media_type_for(name: str) -> str | None:
    return MEDIA_TYPES.get(PurePath(name).suffix.lower())


def read_source(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The file's bytes, or an IngestError saying why not (missing, a folder, no permission,
    over the size cap)."""
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise IngestError(str(path), "フォルダです (ファイルを指定してください) / is a directory")
        if size > max_bytes:
            raise IngestError(
                str(path), f"ファイルが大きすぎます ({size / 2**20:.1f} MB > 上限 {max_bytes / 2**20:.1f} MB) / file too large"
            )
        with path.open("rb") as fp:
            return fp.read(max_bytes + 1)
    except FileNotFoundError:
        raise IngestError(str(path), "ファイルが見つかりません / file not found") from None
    except PermissionError:
        raise IngestError(str(path), "読み取り権限がありません / permission denied") from None
    except OSError as exc:
        raise IngestError(str(path), f"読み込めません / unreadable: {exc.strerror or exc}") from None


def extract(
    source: str | os.PathLike[str] | bytes,
    *,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Extracted:
    """Text, title and sections of a file (a path) or of raw bytes (``name`` then decides the
    type and is used in messages)."""
    if isinstance(source, bytes) and not name:
        raise ValueError("extract(bytes) needs name= to decide the file type")
    label = name or str(source)
    media = media_type_for(label)
    if media is None:
        raise unsupported_type(label)
    if isinstance(source, bytes):
        data = source
        if len(data) > max_bytes:
            raise IngestError(label, f"ファイルが大きすぎます (上限 {max_bytes / 2**20:.1f} MB) / file too large")
    else:
        data = read_source(Path(source), max_bytes)
    stem = PurePath(label).stem
    if not data.strip():
        raise IngestError(label, "空のファイルです / empty file")
    if media == "application/pdf":
        extracted = _pdf(data, label, stem)
    elif media == DOCX_TYPE:
        extracted = _docx(data, label, stem)
    else:
        extracted = _text_format(data, label, stem, media)
    if not extracted.text.strip():
        raise IngestError(label, "抽出できるテキストがありません / no extractable text")
    return extracted


def unsupported_type(label: str) -> IngestError:
    """The error for a file type sekisho cannot read, listing the ones it can."""
    suffix = PurePath(label).suffix or "(拡張子なし)"
    supported = " ".join(sorted(MEDIA_TYPES))
    return IngestError(label, f"未対応の形式です {suffix} (対応: {supported}) / unsupported file type")


def _short_title(line: str) -> str:
    line = " ".join(line.split())
    return line if len(line) <= _TITLE_MAX else line[: _TITLE_MAX - 1] + "…"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _sections(text: str, headings: Sequence[_Heading], *, start: int = 0) -> tuple[Section, ...]:
    """One section per heading body (heading path outermost first), plus any text before the
    first heading. A heading with no body of its own, straight followed by its first
    sub-heading, joins that sub-heading's section rather than becoming a chunk of one line."""
    sections: list[Section] = []
    first = headings[0].start if headings else len(text)
    if text[start:first].strip():
        sections.append(Section(start, first))
    stack: list[tuple[int, str]] = []
    pending: int | None = None
    for i, h in enumerate(headings):
        while stack and stack[-1][0] >= h.level:
            stack.pop()
        stack.append((h.level, h.title))
        end = headings[i + 1].start if i + 1 < len(headings) else len(text)
        begin = h.start if pending is None else pending
        if not text[h.body_start:end].strip() and i + 1 < len(headings) and headings[i + 1].level > h.level:
            pending = begin
            continue
        pending = None
        sections.append(Section(begin, end, tuple(t for _, t in stack)))
    return tuple(sections)


# --- text formats -------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def _decode(data: bytes, label: str, declared: str | None = None) -> tuple[str, str]:
    try:
        text, encoding = decode_text(data, declared)
    except UndecodableText as exc:
        raise IngestError(label, str(exc)) from None
    if looks_binary(text):
        raise IngestError(label, "テキストではなくバイナリのようです / looks like binary data")
    # Windows line endings would make offsets differ between platforms' readers; one convention.
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding


def _text_format(data: bytes, label: str, stem: str, media: str) -> Extracted:
    if media == "text/html":
        match = _META_CHARSET.search(data[:4096])
        text, encoding = _decode(data, label, match.group(1).decode("ascii") if match else None)
        return _html(text, stem, encoding)
    text, encoding = _decode(data, label)
    if media == "text/markdown":
        return _markdown(text, stem, encoding)
    return _plain(text, stem, encoding)


def _plain(text: str, stem: str, encoding: str) -> Extracted:
    # A short first line without a sentence ending is how plain-text notices state their title.
    first = _first_line(text)
    has_body = len(text.strip()) > len(first)
    title = first if first and has_body and len(first) <= 60 and first[-1] not in "。．.!?！？" else stem
    text = _latin_breaks_to_spaces(text, 0, _layout_wraps)
    return Extracted(text, _short_title(title), "text/plain", encoding, (Section(0, len(text)),))


_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)
_NOT_SETEXT_TEXT = re.compile(r"^ {0,3}(?:[-*+>|]|\d+[.)])(?:[ \t]|$)")  # list items, quotes, tables


def _markdown(text: str, stem: str, encoding: str) -> Extracted:
    headings: list[_Heading] = []
    # YAML front matter is metadata (its title is the document's), not text to index.
    front = _FRONT_MATTER.match(text)
    body_start = front.end() if front else 0
    front_title = _FRONT_TITLE.search(front.group(1)) if front else None
    offset = body_start
    fence: str | None = None
    previous: tuple[int, str] | None = None  # (offset, line) of the last plain paragraph line
    for line in text[body_start:].splitlines(keepends=True):
        bare = line.rstrip("\n")
        next_offset = offset + len(line)
        fence_match = _FENCE.match(bare)
        if fence:
            if fence_match and fence_match.group(1) == fence:
                fence = None
        elif fence_match:
            fence = fence_match.group(1)
        elif atx := _ATX.match(bare):
            headings.append(_Heading(offset, next_offset, len(atx.group(1)), atx.group(2).strip()))
            previous = None
            offset = next_offset
            continue
        elif (setext := _SETEXT.match(bare)) and previous is not None:
            level = 1 if setext.group(1).startswith("=") else 2
            headings.append(_Heading(previous[0], next_offset, level, previous[1].strip()))
            previous = None
            offset = next_offset
            continue
        plain = bare.strip() and not fence and not fence_match and not _NOT_SETEXT_TEXT.match(bare)
        previous = (offset, bare) if plain else None
        offset = next_offset
    if front_title:
        title = front_title.group(1).strip("'\"")
    else:
        title = headings[0].title if headings else stem
    sections = _sections(text, headings, start=body_start)
    text = _latin_breaks_to_spaces(text, body_start, _soft_wraps)
    return Extracted(text, _short_title(_strip_inline_markdown(title)), "text/markdown", encoding, sections)


_BLOCK_START = re.compile(r" {0,3}(?:[-*+>|#]|\d+[.)]|```|~~~|=+[ \t]*$|-+[ \t]*$)| {4}|\t")


def _soft_wraps(lines: Sequence[str]) -> set[int]:
    """Indexes of the Markdown lines whose line break falls inside a paragraph: in Markdown a single
    line break there is a space ("...at the counter and 200 yen per\ncopy at a convenience store"
    is one sentence). Not in code, not next to a block (heading, list, quote, table, fence), not
    after a hard break (two spaces or a backslash)."""
    wraps = set()
    fence = False
    for i, (line, following) in enumerate(zip(lines, lines[1:])):
        if _FENCE.match(line):
            fence = not fence
        if (
            not fence and line.strip() and following.strip() and not _BLOCK_START.match(line)
            and not _BLOCK_START.match(following) and not line.endswith(("  ", "\\"))
        ):
            wraps.add(i)
    return wraps


def _strip_inline_markdown(title: str) -> str:
    return re.sub(r"[*_`]+", "", title).strip() or title


# Navigation menus repeat on every page of a site and say nothing about this page's subject.
_SKIP_TAGS = {"script", "style", "noscript", "template", "head", "svg", "iframe", "object", "nav"}
_BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "caption", "dd", "details", "dialog", "div", "dl",
    "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "li", "main",
    "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "thead", "tfoot", "tr", "ul",
}
_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_CJK = r"\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef"
_CJK_BREAK = re.compile(rf"(?<=[{_CJK}])\s*\n\s*(?=[{_CJK}])")
_WS = re.compile(r"\s+")


class _HtmlText:
    """Rendered text of an HTML body with the offsets of its headings, the way a reader sees it:
    blocks on their own lines, table cells separated by spaces, scripts and styles gone."""

    def __init__(self) -> None:
        from bs4 import Comment, NavigableString, Tag  # bs4 takes ~0.2 s to import: only for HTML

        self._comment, self._string, self._tag = Comment, NavigableString, Tag
        self.parts: list[str] = []
        self.length = 0
        self.headings: list[_Heading] = []

    def _emit(self, s: str) -> None:
        self.parts.append(s)
        self.length += len(s)

    def _last(self) -> str:
        return next((part[-1] for part in reversed(self.parts) if part), "\n")

    def newline(self) -> None:
        if self.parts and self.parts[-1].endswith(" "):  # a table row's last cell separator
            trimmed = self.parts[-1].rstrip(" ")
            self.length -= len(self.parts[-1]) - len(trimmed)
            self.parts[-1] = trimmed
        if self._last() != "\n":
            self._emit("\n")

    def inline(self, raw: str, pre: bool) -> None:
        if pre:
            self._emit(raw)
            return
        # Source line breaks between Japanese characters are not spaces in the rendered text.
        s = _WS.sub(" ", _CJK_BREAK.sub("", raw))
        if self._last() in "\n ":
            s = s.lstrip(" ")
        if s:
            self._emit(s)

    def walk(self, root) -> None:  # noqa: ANN001 (bs4 node)
        """Render `root`'s content. Iterative, with a stack of the elements open around the
        current one: an HTML document nested thousands of levels deep is read like any other
        (a recursive walk stopped at Python's recursion limit, about 1,000 levels)."""
        stack: list[tuple[Iterator, bool, Callable[[], None] | None]] = [(iter(root.children), False, None)]
        while stack:
            children, pre, close = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                if close is not None:
                    close()
                continue
            if isinstance(child, self._comment):
                continue
            if isinstance(child, self._string):
                if type(child) is self._string:  # not a Doctype, CData or declaration
                    self.inline(str(child), pre)
                continue
            if not isinstance(child, self._tag) or child.name in _SKIP_TAGS:
                continue
            name = child.name
            if name == "br":
                self.newline()
                continue
            if name in _HEADING_TAGS:
                self.newline()
                close = partial(self._heading, len(self.parts), self.length, _HEADING_TAGS[name])
            elif name in ("td", "th"):
                close = self._cell
            elif name in _BLOCK_TAGS:
                self.newline()
                pre, close = pre or name == "pre", self.newline
            else:
                close = None
            stack.append((iter(child.children), pre, close))

    def _heading(self, first_part: int, start: int, level: int) -> None:
        # The heading's text is in the parts added since it opened (newline() only ever trims the
        # last part, and the heading opened on a fresh line).
        title = " ".join("".join(self.parts[first_part:]).split()) if self.length > start else ""
        self.newline()
        if title:
            self.headings.append(_Heading(start, self.length, level, title))

    def _cell(self) -> None:
        if self._last() not in "\n ":
            self._emit(" ")

    def text(self) -> str:
        return "".join(self.parts)


def _html(source: str, stem: str, encoding: str) -> Extracted:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(source, "lxml")
    rendered = _HtmlText()
    rendered.walk(soup.body or soup)
    text = rendered.text().rstrip()
    headings = [h for h in rendered.headings if h.start < len(text)]
    title_tag = soup.title.get_text(" ", strip=True) if soup.title else ""
    h1 = next((h.title for h in headings if h.level == 1), "")
    return Extracted(text, _short_title(title_tag or h1 or stem), "text/html", encoding, _sections(text, headings))


# --- PDF and DOCX -------------------------------------------------------------------------


def _pdf(data: bytes, label: str, stem: str) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    # pypdf logs its repair attempts ("EOF marker not found") as warnings; the user gets our one
    # line per file instead of library chatter.
    logging.getLogger("pypdf").setLevel(logging.ERROR)

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            # An owner password alone (empty user password) opens; a user password does not.
            raise IngestError(label, "パスワードで暗号化されたPDFです / encrypted PDF (password required)")
        pages = [reflow_wrapped_lines((page.extract_text() or "").strip()) for page in reader.pages]
        meta_title = (reader.metadata.title or "").strip() if reader.metadata else ""
    except IngestError:
        raise
    except FileNotDecryptedError:
        raise IngestError(label, "パスワードで暗号化されたPDFです / encrypted PDF (password required)") from None
    except Exception as exc:  # noqa: BLE001 - pypdf on a damaged file raises anything (found by fuzzing:
        # LimitReachedError on a self-referencing object, NotImplementedError on a mangled filter
        # name, besides its read errors); each is a PDF that cannot be read.
        raise IngestError(label, f"PDFが壊れているか読めません / corrupt PDF: {one_line(exc, 200)}") from None
    if not any(pages):
        raise IngestError(
            label, "PDFから文字を抽出できません (スキャン画像のみのPDF?) / no extractable text (scanned PDF?)"
        )
    parts: list[str] = []
    sections: list[Section] = []
    offset = 0
    for number, page_text in enumerate(pages, start=1):
        if not page_text:
            continue
        if parts:
            parts.append("\n\n")
            offset += 2
        parts.append(page_text)
        sections.append(Section(offset, offset + len(page_text), (), number))
        offset += len(page_text)
    text = "".join(parts)
    return Extracted(text, _short_title(meta_title or _first_line(text) or stem), "application/pdf", None, tuple(sections))


# A line starting like this begins a new item even when the line before ran to full width.
# (A bare digit does not: "前月までの\n2か月分" is one sentence wrapped before a number.)
_ITEM_START = re.compile(r"[・●○■□◆◇※\-*•|]|[0-9０-９]+[.)）．]|[（(][0-9０-９]+[)）]|[①-⑳]")
_SENTENCE_END = frozenset("。！？!?.．｡」』）)】〕〉》］]｝}”’\"'：:")


def _is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in "WF"


def _display_width(line: str) -> int:
    return sum(2 if _is_wide(ch) else 1 for ch in line)


def reflow_wrapped_lines(page: str) -> str:
    """A PDF page's text with the line breaks the layout made mid-sentence removed.

    A PDF stores where glyphs sit, not where sentences run, so extracted text breaks every line at
    the column edge: "前月までの2か月分を支\n給します". Left in, the break splits words for the
    analyser, cuts sentences for chunking and for the extractive answerer's quotes, and shows up
    in every snippet. A break is layout when its line ran (nearly) to the page's widest line,
    measured in display width (a kanji is two half-width digits wide), did not end a sentence,
    and the next line does not start an item (・, ■, 1., ①...). Japanese on either side joins
    with nothing, Latin text with a space."""
    lines = page.split("\n")
    wraps = _layout_wraps(lines)
    out = [lines[0]] if lines else []
    for i, following in enumerate(lines[1:]):
        if i in wraps:
            stripped, next_stripped = lines[i].rstrip(), following.lstrip()
            glue = "" if _is_wide(stripped[-1]) or _is_wide(next_stripped[0]) else " "
            out[-1] = out[-1].rstrip() + glue + next_stripped
        else:
            out.append(following)
    return "\n".join(out)


def _layout_wraps(lines: Sequence[str]) -> set[int]:
    """Indexes of the lines whose line break is layout: the line ran (nearly) to the widest line's
    display width, did not end a sentence, and the next line does not start an item."""
    widths = [_display_width(line.strip()) for line in lines]
    full = max(widths, default=0)
    wraps = set()
    for i, (line, width, following) in enumerate(zip(lines, widths, lines[1:])):
        stripped, next_stripped = line.rstrip(), following.lstrip()
        if (
            stripped and next_stripped and width >= 0.8 * full
            and stripped[-1] not in _SENTENCE_END and not _ITEM_START.match(next_stripped)
        ):
            wraps.add(i)
    return wraps


def _latin_breaks_to_spaces(text: str, start: int, breaks: Callable[[Sequence[str]], set[int]]) -> str:
    """`text` with the line breaks that `breaks` picks among the lines of text[start:] turned into
    spaces where Latin text meets Latin text: Markdown soft wraps (_soft_wraps), plain text wrapped
    at a fixed width such as mail and RFC-style notices (_layout_wraps, the PDF page test). Left
    in, such a break cuts sentences, quotes and snippets. A space for a newline keeps every offset
    as it was. Japanese lines stay the writer's: in office notices a line break separates items,
    and the indexer joins Japanese lines anyway."""
    lines = text[start:].split("\n")
    chosen = breaks(lines)
    chars = list(text)
    offset = start
    for i, (line, following) in enumerate(zip(lines, lines[1:])):
        offset += len(line)  # the newline after `line`
        if i in chosen and not _is_wide(line.rstrip()[-1]) and not _is_wide(following.lstrip()[0]):
            chars[offset] = " "
        offset += 1
    return "".join(chars)


_DOCX_HEADING = re.compile(r"^(?:heading|見出し)\s*(\d)$", re.IGNORECASE)


def _docx(data: bytes, label: str, stem: str) -> Extracted:
    from sekisho.ingest.docx import read_docx

    blocks, core_title = read_docx(data, label)
    lines: list[str] = []
    headings: list[_Heading] = []
    offset = 0
    for block in blocks:
        match = _DOCX_HEADING.match(block.style or "")
        level = 0 if block.style == "Title" else int(match.group(1)) if match else None
        if level is not None and block.text.strip():
            headings.append(_Heading(offset, offset + len(block.text) + 1, level, block.text.strip()))
        lines.append(block.text)
        offset += len(block.text) + 1
    text = "\n".join(lines).rstrip()
    first_heading = headings[0].title if headings else ""
    title = core_title.strip() or first_heading or stem
    return Extracted(text, _short_title(title), DOCX_TYPE, None, _sections(text, headings))
