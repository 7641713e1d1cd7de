"""Upload checks before anything reaches ingestion: a safe file name, an allowed extension, and
content that really is what the extension claims (a renamed executable or a ZIP bomb posing as
.txt is refused). Each refusal is one line naming the file and the reason."""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from pathlib import PurePosixPath

from sekisho.ingest import MEDIA_TYPES
from sekisho.server.errors import ApiError

ALLOWED = frozenset(MEDIA_TYPES)  # exactly what ingestion can extract
_TEXT = frozenset(s for s, media in MEDIA_TYPES.items() if media.startswith("text/"))
# Magic numbers of formats that must never pass as text.
_BINARY_MAGIC = (b"%PDF-", b"PK\x03\x04", b"\x7fELF", b"MZ", b"\x89PNG", b"\xff\xd8\xff", b"GIF8",
                 b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"7z\xbc\xaf", b"Rar!", b"\xd0\xcf\x11\xe0")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_name(raw: str | None) -> str:
    """The upload's name, refused (not silently rewritten) when it tries to leave its folder."""
    if not raw:
        raise ApiError(400, "upload: ファイル名がありません / the file has no name", code="bad_filename")
    name = unicodedata.normalize("NFC", raw).strip()
    if _CONTROL.search(name):
        raise ApiError(400, f"{name!r}: control characters are not allowed in file names", code="bad_filename")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if len(parts) != 1 or name.startswith(("/", "\\")) or parts[0] in (".", ".."):
        raise ApiError(400, f"{name!r}: ファイル名にフォルダや '..' は使えません / file names may not contain folders or '..' (path traversal)",
                       code="bad_filename")
    if name.startswith(".") or len(name.encode("utf-8")) > 255:
        raise ApiError(400, f"{name!r}: not an acceptable file name", code="bad_filename")
    return name


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
    if not data.startswith(b"PK\x03\x04"):
        raise ApiError(415, f"{name}: 内容が .docx ではありません / content is not a .docx (not a ZIP container)", code="type_mismatch")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            expanded = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise ApiError(415, f"{name}: content is not a readable .docx archive", code="type_mismatch") from None
    if "word/document.xml" not in names:
        raise ApiError(415, f"{name}: ZIP archive without word/document.xml is not a .docx", code="type_mismatch")
    if expanded > 50 * max(len(data), 1 << 20):
        raise ApiError(413, f"{name}: archive expands {expanded} bytes, suspiciously large", code="too_large")


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
