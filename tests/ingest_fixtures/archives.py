"""Word documents built member by member, for the archive and parser limits: python-docx's own
template with a document.xml of our making, and whatever else an attacker packs beside it.

    docx_with_body(paragraphs_xml)            # a valid .docx around the given <w:body> content
    padded_bomb(path)                         # 247 MB of zeros padded with 6 MB of noise
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import docx

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
_TEMPLATE = Path(docx.__file__).parent / "templates" / "default.docx"


def paragraph(text: str, style: str | None = None) -> str:
    properties = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f"<w:p>{properties}<w:r><w:t>{text}</w:t></w:r></w:p>"


def docx_with_body(body: str, extra: dict[str, bytes] | None = None) -> bytes:
    """The template's package with word/document.xml holding `body` (and `extra` members added)."""
    document = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document {W}><w:body>{body}</w:body></w:document>'
    out = io.BytesIO()
    with zipfile.ZipFile(_TEMPLATE) as template, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        for member in template.infolist():
            data = document.encode("utf-8") if member.filename == "word/document.xml" else template.read(member)
            package.writestr(member.filename, data)
        for name, data in (extra or {}).items():
            package.writestr(name, data)
    return out.getvalue()


def padded_bomb(path: Path, *, zeros_mb: int = 247, noise_mb: int = 6) -> Path:
    """A .docx whose one extra member expands to `zeros_mb` MB of zeros, padded with `noise_mb`
    MB of incompressible bytes so that its expansion ratio (~40:1) looks like a document's.
    Written in pieces: the test process never holds the expanded bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as package:
        with zipfile.ZipFile(io.BytesIO(docx_with_body(paragraph("本文です。")))) as base:
            for member in base.infolist():
                package.writestr(member.filename, base.read(member))
        with package.open("word/media/image1.bin", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(zeros_mb):
                member.write(block)
        package.writestr("word/media/image2.bin", os.urandom(noise_mb << 20), compress_type=zipfile.ZIP_STORED)
    return path
