"""Reading a .docx: the archive checked before anything is decompressed, then the main document
read as a stream of XML events.

python-docx looked each paragraph's style up with an XPath over the whole style sheet (about 20 s
per MB of document.xml: a 196 KB upload did not finish in 300 s, and every later upload waited
behind it) and loaded every part of the package into memory, pictures included. Here the style
sheet is read once into a map, the body is parsed incrementally (each paragraph or table dropped
once read), and nothing but the document, its styles and its properties is decompressed. The
text is python-docx's: runs and hyperlinks in order, w:tab and w:ptab as tabs, line breaks and
w:cr as line breaks (page and column breaks as nothing), w:noBreakHyphen as "-", a table cell
as its paragraphs joined by line breaks, a vertically merged cell as the cell it continues.

The archive check (`open_docx`) reads only the ZIP's directory: every member's uncompressed
size, whatever the archive holds, against absolute limits. A ratio would not do: padding the
archive with incompressible data raises its size, and with it any allowance proportional to it
(a 6 MB file expanding to 247 MB passed that way). Python's zipfile stops a member at its
declared size, so the sizes checked are the most that can come out.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sekisho.errors import one_line
from sekisho.ingest.errors import IngestError

# No part of a Word document needs more: the largest document.xml of a 1,000-page report is tens
# of MB, and pictures are stored compressed already.
MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_EXPANDED_BYTES = 256 * 1024 * 1024

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_OFFICE_DOCUMENT = "/officeDocument"
_STYLES = "/styles"
_CORE = "/core-properties"


class ArchiveTooLarge(IngestError):
    """An archive that would expand past what a document may hold: refused like a file too large."""

    http_status = 413
    code = "too_large"


@dataclass(frozen=True)
class Block:
    """A paragraph (with its style's name) or a table row, as one line of text."""

    text: str
    style: str | None = None  # paragraphs only


def open_docx(data: bytes, label: str) -> zipfile.ZipFile:
    """The archive, once its directory shows nothing that expands past the limits and it holds a
    main document; IngestError (ArchiveTooLarge for a bomb) otherwise."""
    return _opened(data, label)[0]


def read_docx(data: bytes, label: str) -> tuple[list[Block], str]:
    """The body's paragraphs and table rows in order, and the title from the document properties."""
    archive, main = _opened(data, label)
    with _reading(label):
        styles = _style_names(archive, _related(archive, main, _STYLES))
        blocks = list(_body(archive, main, styles))
        title = _core_title(archive)
    return blocks, title


def _opened(data: bytes, label: str) -> tuple[zipfile.ZipFile, str]:
    """(the checked archive, the name of its main document part)."""
    with _reading(label):
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    total = 0
    for member in members:
        total += member.file_size
        if member.file_size > MAX_MEMBER_BYTES:
            raise ArchiveTooLarge(label, f"展開すると大きすぎます / archive member {member.filename!r} expands to "
                                         f"{member.file_size:,} bytes (limit {MAX_MEMBER_BYTES:,})")
        if total > MAX_EXPANDED_BYTES:
            raise ArchiveTooLarge(label, f"展開すると大きすぎます / archive expands past {MAX_EXPANDED_BYTES:,} bytes")
    with _reading(label):
        main = _main_part(archive)
    if main is None:
        raise IngestError(label, "Word文書ではありません / ZIP archive without a main document is not a .docx")
    return archive, main


@contextmanager
def _reading(label: str) -> Iterator[None]:
    """A damaged member (bad deflate data, a wrong CRC, an unknown compression method, an
    encrypted part, XML that does not parse) surfaces only as it is read: one IngestError."""
    from lxml import etree

    try:
        yield
    except (etree.LxmlError, zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, OSError,
            NotImplementedError, RuntimeError) as exc:
        raise IngestError(label, f"DOCXが壊れているか読めません / corrupt DOCX: {one_line(exc, 200)}") from None


# --- the package: which part is which -----------------------------------------------------------

def _relationships(archive: zipfile.ZipFile, source: str) -> dict[str, str]:
    """Relationship type suffix -> target part name, for the part `source` ("" is the package)."""
    from lxml import etree

    folder, name = posixpath.split(source)
    rels = posixpath.join(folder, "_rels", f"{name}.rels")
    if rels not in archive.NameToInfo:
        return {}
    root = etree.fromstring(archive.read(rels), _parser())
    found = {}
    for rel in root.iter(f"{_REL}Relationship"):
        kind, target = rel.get("Type", ""), rel.get("Target", "")
        if rel.get("TargetMode") == "External" or not target:
            continue
        part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
        found.setdefault(kind[kind.rfind("/"):], part)
    return found


def _main_part(archive: zipfile.ZipFile) -> str | None:
    part = _relationships(archive, "").get(_OFFICE_DOCUMENT, "word/document.xml")
    return part if part in archive.NameToInfo else None


def _related(archive: zipfile.ZipFile, source: str, kind: str) -> str | None:
    part = _relationships(archive, source).get(kind)
    return part if part in archive.NameToInfo else None


def _style_names(archive: zipfile.ZipFile, part: str | None) -> dict[str | None, str]:
    """Paragraph style id -> name; the key None is the default paragraph style's name."""
    from lxml import etree

    if part is None:
        return {}
    names: dict[str | None, str] = {}
    for style in etree.fromstring(archive.read(part), _parser()).iter(f"{_W}style"):
        if style.get(f"{_W}type", "paragraph") != "paragraph":
            continue
        name_element = style.find(f"{_W}name")
        name = name_element.get(f"{_W}val", "") if name_element is not None else ""
        names[style.get(f"{_W}styleId")] = name
        if style.get(f"{_W}default") in ("1", "true", "on"):
            names.setdefault(None, name)
    return names


def _core_title(archive: zipfile.ZipFile) -> str:
    from lxml import etree

    part = _relationships(archive, "").get(_CORE)
    if part is None or part not in archive.NameToInfo:
        return ""
    element = etree.fromstring(archive.read(part), _parser()).find(_DC_TITLE)
    return (element.text or "") if element is not None else ""


def _parser():  # noqa: ANN202 (lxml parser)
    from lxml import etree

    # No entities, no DTD, no network: a document's XML is data, never instructions to the parser.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


# --- the body ------------------------------------------------------------------------------------

def _body(archive: zipfile.ZipFile, part: str, styles: dict[str | None, str]) -> Iterator[Block]:
    """Paragraphs and tables directly under w:body, each read when its end tag is parsed and then
    dropped, so the parsed tree never holds more than one of them."""
    from lxml import etree

    with archive.open(part) as stream:
        depth = 0
        for event, element in etree.iterparse(stream, events=("start", "end"), resolve_entities=False,
                                              no_network=True, load_dtd=False):
            if event == "start":
                depth += 1
                continue
            depth -= 1
            if depth != 2:  # w:document > w:body > (w:p | w:tbl | ...)
                continue
            if element.tag == f"{_W}p":
                yield Block(_paragraph_text(element), _style_of(element, styles))
            elif element.tag == f"{_W}tbl":
                yield from (Block(row) for row in _table_rows(element))
            element.clear()
            parent = element.getparent()
            while parent is not None and element.getprevious() is not None:
                del parent[0]


def _style_of(paragraph, styles: dict[str | None, str]) -> str | None:  # noqa: ANN001 (lxml element)
    style = paragraph.find(f"{_W}pPr/{_W}pStyle")
    style_id = style.get(f"{_W}val") if style is not None else None
    return styles.get(style_id, styles.get(None))


_RUN_TEXT = {f"{_W}tab": "\t", f"{_W}ptab": "\t", f"{_W}cr": "\n", f"{_W}noBreakHyphen": "-"}


def _paragraph_text(paragraph) -> str:  # noqa: ANN001 (lxml element)
    parts = []
    for child in paragraph:
        if child.tag == f"{_W}r":
            parts.append(_run_text(child))
        elif child.tag == f"{_W}hyperlink":
            parts.extend(_run_text(run) for run in child.iterchildren(f"{_W}r"))
    return "".join(parts)


def _run_text(run) -> str:  # noqa: ANN001 (lxml element)
    parts = []
    for child in run:
        tag = child.tag
        if tag == f"{_W}t":
            parts.append(child.text or "")
        elif tag == f"{_W}br":
            parts.append("\n" if child.get(f"{_W}type", "textWrapping") == "textWrapping" else "")
        elif tag in _RUN_TEXT:
            parts.append(_RUN_TEXT[tag])
    return "".join(parts)


def _table_rows(table) -> Iterator[str]:  # noqa: ANN001 (lxml element)
    """Each row as its cells' texts, whitespace collapsed, a cell spanning several grid columns
    (or continuing the one above) shown once."""
    above: dict[int, str] = {}  # grid column -> text of the cell starting there in the row above
    for row in table.iterchildren(f"{_W}tr"):
        cells: list[str] = []
        here: dict[int, str] = {}
        column = _int_value(row.find(f"{_W}trPr/{_W}gridBefore"), 0, minimum=0)
        for cell in row.iterchildren(f"{_W}tc"):
            properties = cell.find(f"{_W}tcPr")
            span = _int_value(properties.find(f"{_W}gridSpan") if properties is not None else None, 1, minimum=1)
            merge = properties.find(f"{_W}vMerge") if properties is not None else None
            if merge is not None and merge.get(f"{_W}val", "continue") == "continue":
                text = above.get(column, "")
            else:
                text = "\n".join(_paragraph_text(p) for p in cell.iterchildren(f"{_W}p"))
            here[column] = text
            value = " ".join(text.split())
            if value and (not cells or cells[-1] != value):
                cells.append(value)
            column += span
        above = here
        yield " ".join(cells)


def _int_value(element, default: int, *, minimum: int) -> int:  # noqa: ANN001 (lxml element or None)
    if element is None:
        return default
    try:
        return max(minimum, int(element.get(f"{_W}val", default)))
    except ValueError:
        return default
