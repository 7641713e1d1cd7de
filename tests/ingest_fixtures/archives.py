"""Word documents built member by member, for the archive and parser limits: python-docx's own
template with a document.xml of our making, and whatever else an attacker packs beside it.

    docx_with_body(paragraphs_xml)            # a valid .docx around the given <w:body> content
    padded_bomb(path)                         # 247 MB of paragraphs padded with 6 MB of noise
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


def padded_bomb(path: Path, *, expands_mb: int = 247, noise_mb: int = 6) -> Path:
    """A .docx whose document.xml expands to `expands_mb` MB of paragraphs (a few hundred KB
    compressed), padded with `noise_mb` MB of incompressible bytes so that the archive's expansion
    ratio (~40:1) looks like a document's. Written in pieces: the test process never holds it."""
    head = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document {W}><w:body>'.encode()
    block = paragraph("本文です。").encode() * 20_000
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as package:
        with zipfile.ZipFile(_TEMPLATE) as template:
            for member in template.infolist():
                if member.filename != "word/document.xml":
                    package.writestr(member.filename, template.read(member))
        with package.open("word/document.xml", "w", force_zip64=True) as document:
            document.write(head)
            for _ in range(expands_mb * (1 << 20) // len(block)):
                document.write(block)
            document.write(b"</w:body></w:document>")
        package.writestr("word/media/image1.bin", os.urandom(noise_mb << 20), compress_type=zipfile.ZIP_STORED)
    return path
