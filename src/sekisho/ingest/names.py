"""Upload names, checked once, where every door passes (server uploads, `ingest_bytes`): a bare
file name that is safe on any file system the spool or a later export may land on. A name is
refused, never silently rewritten, so the user knows which file and why."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

from sekisho.ingest.errors import IngestError

# Windows reserves these names in every folder, with any extension (CON.txt opens the console).
_RESERVED = re.compile(r"(?:CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])(?:\..*)?", re.IGNORECASE)
# Characters Windows refuses in names; ':' also makes "C:evil.txt" a drive-relative path and
# "a.txt:x" an alternate data stream.
_WINDOWS_FORBIDDEN = re.compile(r'[<>:"|?*]')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_BYTES = 255


class BadFileName(IngestError):
    code = "bad_filename"


def upload_name(raw: str | None) -> str:
    """`raw` as the name an upload is stored under (NFC), or BadFileName saying why not."""
    if not raw or not raw.strip():
        raise BadFileName("upload", "ファイル名がありません / invalid file name: the file has no name")
    name = unicodedata.normalize("NFC", raw)
    shown = repr(name)
    if _CONTROL.search(name):
        raise BadFileName(shown, "ファイル名に制御文字は使えません / invalid file name: control characters")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if len(parts) != 1 or name.startswith(("/", "\\")) or parts[0] in (".", ".."):
        raise BadFileName(shown, "ファイル名にフォルダや '..' は使えません / invalid file name: folders or '..' "
                                 "(path traversal)")
    if _WINDOWS_FORBIDDEN.search(name):
        raise BadFileName(shown, '< > : " | ? * は使えません / invalid file name: a drive letter, a stream '
                                 'or a character Windows refuses')
    if _RESERVED.fullmatch(name):
        raise BadFileName(shown, "Windows の予約名です / invalid file name: reserved by Windows (CON, NUL, COM1...)")
    if name != name.strip() or name.endswith("."):
        raise BadFileName(shown, "先頭・末尾の空白や末尾の '.' は使えません / invalid file name: leading or trailing "
                                 "space, or a trailing dot")
    if name.startswith("."):
        raise BadFileName(shown, "'.' で始まる名前は使えません / invalid file name: hidden (starts with '.')")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise BadFileName(shown, f"ファイル名が長すぎます / invalid file name: longer than {MAX_NAME_BYTES} bytes")
    return name
