"""Documents to proofread: plain text and Markdown as written (so offsets and fixes address the
file itself, in its own encoding), HTML, PDF and DOCX through ingestion's extraction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath

from sekisho.ingest import IngestError, decode_text, extract, media_type_for
from sekisho.proofread.model import ProofreadError

MAX_BYTES = 20 * 1024 * 1024
_AS_WRITTEN = ("text/plain", "text/markdown")


@dataclass(frozen=True)
class Document:
    name: str
    text: str
    media_type: str
    encoding: str | None  # of a text file; None for extracted formats
    rewritable: bool  # plain text or Markdown: a fix can be written back into the file

    def encode(self, text: str) -> bytes:
        """`text` in this file's own encoding (a Shift_JIS file stays Shift_JIS)."""
        if not self.rewritable or self.encoding is None:
            raise ProofreadError(f"{self.name}: a {self.media_type} file cannot be rewritten; write the text elsewhere")
        try:
            return text.encode(self.encoding)
        except UnicodeEncodeError as exc:
            raise ProofreadError(f"{self.name}: the corrected text has a character {self.encoding} cannot hold: "
                                 f"{exc.object[exc.start:exc.end]!r}") from None


def read_document(source: str | Path | bytes, *, name: str | None = None) -> Document:
    """The text of a file (a path) or of uploaded bytes (`name` decides the type). An empty file
    is an empty text, not an error; anything unreadable is a ProofreadError naming the file."""
    label = name or str(source)
    media = media_type_for(label)
    if media is None:
        suffix = PurePath(label).suffix or "(none)"
        raise ProofreadError(f"{label}: unsupported file type {suffix}; use .txt, .md, .html, .pdf or .docx")
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except IsADirectoryError:
            raise ProofreadError(f"{label}: is a folder, not a file") from None
        except OSError as exc:
            raise ProofreadError(f"{label}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise ProofreadError(f"{label}: larger than {MAX_BYTES // 2**20} MB")
    if not data.strip():
        return Document(label, "", media, "utf-8", media in _AS_WRITTEN)
    try:
        extracted = extract(data, name=label, max_bytes=MAX_BYTES)  # also refuses binary data posing as text
        if media not in _AS_WRITTEN:
            return Document(label, extracted.text, media, None, False)
        text, encoding = decode_text(data)
    except (IngestError, ValueError) as exc:
        raise ProofreadError(str(exc) if isinstance(exc, IngestError) else f"{label}: {exc}") from None
    return Document(label, text, media, encoding, True)
