"""Upload checks before anything is queued: an allowed extension, and content that really is what
the extension claims (a renamed executable or a ZIP bomb posing as .txt is refused). The name is
checked by ingestion's own rule (ingest.upload_name), the one every door passes. Each refusal is
one line naming the file and the reason."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from sekisho.ingest import MEDIA_TYPES, ArchiveTooLarge, IngestError, open_docx
from sekisho.server.errors import ApiError

ALLOWED = frozenset(MEDIA_TYPES)  # exactly what ingestion can extract
_TEXT = frozenset(s for s, media in MEDIA_TYPES.items() if media.startswith("text/"))
# Magic numbers of formats that must never pass as text.
_BINARY_MAGIC = (b"%PDF-", b"PK\x03\x04", b"\x7fELF", b"MZ", b"\x89PNG", b"\xff\xd8\xff", b"GIF8",
                 b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"7z\xbc\xaf", b"Rar!", b"\xd0\xcf\x11\xe0")


def check_content(name: str, data: bytes) -> None:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in ALLOWED:
        raise ApiError(415, f"{name}: この形式は受け付けません / file type '{suffix or '(none)'}' is not accepted; use "
                       + ", ".join(sorted(ALLOWED)), code="unsupported_type")
    if not data:
        raise ApiError(400, f"{name}: ファイルが空です / the file is empty", code="empty_file")
    if suffix == ".pdf":
        if not data.startswith(b"%PDF-"):
            raise ApiError(415, f"{name}: 内容が PDF ではありません / content is not a PDF (no %PDF- header)", code="type_mismatch")
        return
    if suffix == ".docx":
        _check_docx(name, data)
        return
    if suffix in _TEXT:
        _check_text(name, suffix, data)


def _check_docx(name: str, data: bytes) -> None:
    """Refused at the door with the check ingestion makes anyway (ingest.open_docx): a bomb is
    413, a ZIP that is not a Word document 415."""
    if not data.startswith(b"PK\x03\x04"):
        raise ApiError(415, f"{name}: 内容が .docx ではありません / content is not a .docx (not a ZIP container)", code="type_mismatch")
    try:
        open_docx(data, name).close()
    except ArchiveTooLarge:
        raise
    except IngestError as exc:
        raise ApiError(415, f"{name}: 内容が .docx ではありません / {exc.reason}", code="type_mismatch") from None


def _check_text(name: str, suffix: str, data: bytes) -> None:
    head = data[:4096]
    if head.startswith(_BINARY_MAGIC) or (b"\x00" in head and not _utf16(head)):
        raise ApiError(415, f"{name}: 内容がテキストではありません / content is binary, not {suffix} text", code="type_mismatch")
    if suffix in (".html", ".htm"):
        sample = head.decode("utf-8", "ignore").lower() if not _utf16(head) else head.decode("utf-16", "ignore").lower()
        if "<" not in sample or not re.search(r"<\s*(!doctype|html|head|body|p|div|h[1-6]|meta|title|table|ul|section)\b",
                                              sample):
            raise ApiError(415, f"{name}: 内容が HTML ではありません / content is not HTML (no HTML tags near the start)", code="type_mismatch")


def _utf16(head: bytes) -> bool:
    return head.startswith((b"\xff\xfe", b"\xfe\xff"))
