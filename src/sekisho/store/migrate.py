"""A store's documents copied into another store (SQLite file -> PostgreSQL for `sekisho
migrate`): chunks, lexical texts and vectors as they are, nothing re-analysed or re-embedded.
Safe to repeat: a document the target already holds unchanged is skipped; one changed since is
replaced whole."""

from __future__ import annotations

from dataclasses import dataclass

from sekisho.store.protocol import Store, StoreError

# Settings kept with the data that describe how it was made.
COPIED_META = ("embedder", "lexical_scheme")


@dataclass(frozen=True)
class StoreCopy:
    documents: int  # in the source
    copied: int
    unchanged: int
    chunks: int  # in the source's documents
    chunks_in_target: int  # of those chunk ids, how many the target holds afterwards


def copy_store(source: Store, target: Store) -> StoreCopy:
    """Copy every document of `source` into `target`; refused when the target's documents were
    embedded by another embedder (a store never mixes two)."""
    for key in COPIED_META:
        theirs, ours = source.get_meta(key), target.get_meta(key)
        if key == "embedder" and theirs and ours and theirs != ours and target.documents():
            raise StoreError(f"the target holds documents embedded with {ours!r}, the source's are {theirs!r}; "
                             "copy into an empty store")
    copied = unchanged = chunks = present = 0
    documents = source.documents()
    for document in documents:
        stored = source.stored_chunks(document.id)
        ids = [c.id for c in stored.chunks]
        chunks += len(ids)
        if target.document_by_id(document.id) == document and len(target.chunks_by_id(ids)) == len(ids):
            unchanged += 1
        else:
            target.replace_document(document, stored.chunks, stored.lexical_texts, stored.vectors)
            copied += 1
        present += len(target.chunks_by_id(ids))
    for key in COPIED_META:
        value = source.get_meta(key)
        if value is not None and target.get_meta(key) != value:
            target.set_meta(key, value)
    return StoreCopy(len(documents), copied, unchanged, chunks, present)
