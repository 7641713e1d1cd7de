"""Ingestion: extract text from an organisation's documents (txt, Markdown, HTML, PDF, DOCX in
UTF-8, Shift_JIS or EUC-JP), chunk it at Japanese sentence boundaries, and index it
incrementally."""

from sekisho.ingest.chunking import DEFAULT_CHUNK_CHARS, DEFAULT_CHUNK_OVERLAP, Section, chunk
from sekisho.ingest.decode import decode_text
from sekisho.ingest.docx import ArchiveTooLarge, open_docx
from sekisho.ingest.errors import IngestError
from sekisho.ingest.extract import DEFAULT_MAX_BYTES, MEDIA_TYPES, Extracted, extract, media_type_for
from sekisho.ingest.names import BadFileName, upload_name
from sekisho.ingest.pipeline import (
    ChunkSize,
    IngestOutcome,
    IngestReport,
    document_id,
    ingest_bytes,
    ingest_paths,
    ingest_text,
)

__all__ = [
    "ArchiveTooLarge", "BadFileName", "DEFAULT_CHUNK_CHARS", "DEFAULT_CHUNK_OVERLAP", "DEFAULT_MAX_BYTES", "MEDIA_TYPES", "ChunkSize",
    "Extracted", "IngestError", "IngestOutcome", "IngestReport", "Section", "chunk", "decode_text",
    "document_id", "extract", "ingest_bytes", "ingest_paths", "ingest_text", "media_type_for", "open_docx",
    "upload_name",
]
