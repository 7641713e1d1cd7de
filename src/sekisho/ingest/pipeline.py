"""Ingest files, uploads and in-memory texts into a knowledge base, incrementally.

Each file is read, hashed, extracted and chunked completely before the knowledge base is touched,
and ``kb.index`` replaces a document and its chunks in one transaction, so a failure leaves the
previous version intact and never a half-written one.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Literal, Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sekisho.ingest.chunking import DEFAULT_CHUNK_CHARS, DEFAULT_CHUNK_OVERLAP, chunk
from sekisho.ingest.errors import IngestError
from sekisho.ingest.extract import DEFAULT_MAX_BYTES, Extracted, extract, media_type_for, read_source, unsupported_type
from sekisho.ingest.names import upload_name
from sekisho.store.protocol import Store
from sekisho.store.records import Chunk, Document


class KnowledgeBase(Protocol):
    """What ingestion needs of a knowledge base (sekisho.retrieval.KnowledgeBase is one): its
    store, and a way to index a document's chunks (tokenise, embed, replace atomically)."""

    store: Store

    def index(self, document: Document, chunks: Sequence[Chunk]) -> None: ...

    def delete(self, doc_id: str) -> None: ...

Status = Literal["added", "updated", "unchanged"]
UPLOAD_PREFIX = "upload/"


@dataclass(frozen=True)
class ChunkSize:
    """settings.retrieval.chunk_chars / chunk_overlap."""

    chars: int = DEFAULT_CHUNK_CHARS
    overlap: int = DEFAULT_CHUNK_OVERLAP

    @classmethod
    def from_settings(cls, settings) -> ChunkSize:  # noqa: ANN001 (sekisho.config.Settings)
        return cls(settings.retrieval.chunk_chars, settings.retrieval.chunk_overlap)

    @property
    def recipe(self) -> str:
        """Document.recipe for files extracted now and chunked at this size."""
        return f"extract-{EXTRACTOR_VERSION}/chunk-{self.chars}-{self.overlap}"


# Raised whenever extraction or chunking turns the same bytes into different text or chunks, so
# that stores filled by an older sekisho re-read their files on the next ingest instead of
# skipping them as unchanged. 2: PDF line wraps, Markdown soft wraps and fixed-width wraps of
# Latin plain text joined (session 5).
EXTRACTOR_VERSION = 2


@dataclass(frozen=True)
class IngestOutcome:
    document: Document
    status: Status
    chunks: int  # chunks written (0 when unchanged)


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # pruned: the file is gone
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    ignored: list[str] = field(default_factory=list)  # unsupported types met while walking a folder
    chunks: int = 0  # chunks written in this run

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        return (
            f"追加 {len(self.added)} / 更新 {len(self.updated)} / 変更なし {len(self.unchanged)} / "
            f"削除 {len(self.removed)} / 失敗 {len(self.failed)} / 対象外 {len(self.ignored)} / "
            f"チャンク {self.chunks}  (added / updated / unchanged / removed / failed / ignored / chunks)"
        )


def document_id(key: str) -> str:
    """Stable id of a document: the same source path always maps to the same id, so a changed
    file replaces its previous version instead of adding a second one."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def _same_tags(a: Iterable[str], b: Iterable[str]) -> bool:
    return sorted(set(a)) == sorted(set(b))


def _unchanged(existing: Document | None, digest: str, tags: tuple[str, ...], size: ChunkSize) -> bool:
    """Same bytes, same tags, made the same way: nothing to do."""
    return (existing is not None and existing.content_hash == digest and _same_tags(existing.tags, tags)
            and existing.recipe == size.recipe)


def _clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.strip() for t in tags if t.strip()))


def _prepare(data: bytes, *, key: str, label: str, digest: str, tags: tuple[str, ...], size: ChunkSize) -> tuple[Document, list[Chunk]]:
    """Extract and chunk completely, before anything is written."""
    try:
        extracted: Extracted = extract(data, name=label)
    except IngestError:
        raise
    except Exception as exc:  # a parser choking on a malformed file must not stop the batch
        raise IngestError(label, f"解析できません / could not parse: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}") from None
    doc_id = document_id(key)
    chunks = chunk(extracted.text, doc_id=doc_id, sections=extracted.sections, max_chars=size.chars, overlap=size.overlap)
    if not chunks:
        raise IngestError(label, "抽出できるテキストがありません / no extractable text")
    document = Document(
        id=doc_id,
        path=key,
        title=extracted.title,
        content_hash=digest,
        media_type=extracted.media_type,
        encoding=extracted.encoding,
        text=extracted.text,
        tags=tags,
        ingested_at=time.time(),
        recipe=size.recipe,
    )
    return document, chunks


def _ingest_data(kb: KnowledgeBase, data: bytes, *, key: str, label: str, tags: tuple[str, ...], size: ChunkSize) -> IngestOutcome:
    digest = hashlib.sha256(data).hexdigest()
    existing = kb.store.document_by_path(key)
    if _unchanged(existing, digest, tags, size):
        return IngestOutcome(existing, "unchanged", 0)
    document, chunks = _prepare(data, key=key, label=label, digest=digest, tags=tags, size=size)
    kb.index(document, chunks)
    return IngestOutcome(document, "added" if existing is None else "updated", len(chunks))


def _walk(root: Path) -> Iterable[Path]:
    """Files under root in a stable order, skipping hidden entries and Office lock files (~$)."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith((".", "~$")):
                yield Path(folder) / name


def _collect(paths: Sequence[str | os.PathLike[str]], report: IngestReport) -> tuple[list[tuple[Path, str]], list[Path]]:
    """(file, label) pairs to ingest and the folders given (for pruning). Named files are always
    attempted, so an unsupported one is reported; inside folders only supported types are."""
    files: dict[Path, str] = {}
    roots: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            roots.append(path.resolve())
            for found in _walk(path):
                if media_type_for(found.name) is None:
                    report.ignored.append(str(found))
                else:
                    files.setdefault(found.resolve(), str(found))
        elif path.exists():
            files.setdefault(path.resolve(), str(path))
        else:
            report.failed.append((str(path), "ファイルが見つかりません / file not found"))
    return list(files.items()), roots


def _progress(enabled: bool) -> Progress:
    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]取り込み[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ファイル · チャンク {task.fields[chunks]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled or not console.is_terminal,
        transient=True,
    )


def ingest_paths(
    kb: KnowledgeBase,
    paths: Sequence[str | os.PathLike[str]],
    *,
    prune: bool = False,
    tags: Iterable[str] = (),
    progress: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    chunk_size: ChunkSize = ChunkSize(),
) -> IngestReport:
    """Ingest files and folders (recursively). Unchanged files (same sha256, same tags) are
    skipped; changed ones replaced; with ``prune``, documents whose files under the given folders
    are gone are removed. A bad file is reported in ``failed`` and the batch goes on."""
    if isinstance(paths, (str, os.PathLike)):  # one path, not a sequence of one-letter paths
        paths = [paths]
    report = IngestReport()
    tag_tuple = _clean_tags(tags)
    files, roots = _collect(paths, report)
    with _progress(progress) as bar:
        task = bar.add_task("", total=len(files), chunks=0)
        for resolved, label in files:
            bar.update(task, description=escape(PurePath(label).name))
            try:
                data = read_source(resolved, max_bytes)
                outcome = _ingest_data(kb, data, key=str(resolved), label=label, tags=tag_tuple, size=chunk_size)
            except IngestError as exc:
                report.failed.append((label, exc.reason))
            else:
                getattr(report, outcome.status).append(label)
                report.chunks += outcome.chunks
            bar.update(task, advance=1, chunks=report.chunks)
    if prune:
        report.removed.extend(_prune(kb, roots))
    return report


def _prune(kb: KnowledgeBase, roots: Sequence[Path]) -> list[str]:
    removed = []
    prefixes = tuple(str(root) + os.sep for root in roots)
    for document in kb.store.documents():
        if prefixes and document.path.startswith(prefixes) and not Path(document.path).exists():
            kb.delete(document.id)
            removed.append(document.path)
    return removed


def ingest_bytes(
    kb: KnowledgeBase,
    name: str,
    data: bytes,
    *,
    tags: Iterable[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    chunk_size: ChunkSize = ChunkSize(),
) -> IngestOutcome:
    """Ingest an uploaded file; its name (a bare file name, no folders) decides the type, and
    re-uploading the same name replaces the earlier upload."""
    name = upload_name(name)
    if len(data) > max_bytes:
        raise IngestError(name, f"ファイルが大きすぎます (上限 {max_bytes / 2**20:.1f} MB) / file too large")
    if media_type_for(name) is None:
        raise unsupported_type(name)
    return _ingest_data(kb, data, key=UPLOAD_PREFIX + name, label=name, tags=_clean_tags(tags), size=chunk_size)


def ingest_text(
    kb: KnowledgeBase,
    *,
    path: str,
    title: str,
    text: str,
    media_type: str = "text/plain",
    tags: Iterable[str] = (),
    chunk_size: ChunkSize = ChunkSize(),
) -> Document:
    """Ingest text already in memory (benchmarks, the arena): chunked as one section; skipped
    when the same path already holds the same text and tags."""
    tag_tuple = _clean_tags(tags)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    existing = kb.store.document_by_path(path)
    if _unchanged(existing, digest, tag_tuple, chunk_size):
        return existing
    doc_id = document_id(path)
    chunks = chunk(text, doc_id=doc_id, max_chars=chunk_size.chars, overlap=chunk_size.overlap)
    if not chunks:
        raise IngestError(path, "テキストが空です / empty text")
    document = Document(
        id=doc_id, path=path, title=title, content_hash=digest, media_type=media_type,
        encoding=None, text=text, tags=tag_tuple, ingested_at=time.time(), recipe=chunk_size.recipe,
    )
    kb.index(document, chunks)
    return document
