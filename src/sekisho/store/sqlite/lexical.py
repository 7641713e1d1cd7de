"""BM25 for the SQLite store: a tantivy index beside the file answers when it is current, FTS5 in
the same database whenever it is not.

FTS5 (`chunk_fts`) commits in the same transaction as the chunks it indexes, so it is always
current; the tantivy index (`<file>.lexical/`, store/lexical_index.py) is derived from it and catches
up from the change log at the next search or at close. Both rank by BM25 with k1 1.2 and b 0.75
over the same pre-tokenised terms.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from sekisho.store.changelog import CHANGED_SINCE, changes_since, current_generation
from sekisho.store.lexical_index import Changes, DerivedLexicalIndex
from sekisho.store.sqlite.rows import chunk_ids_for_rowids, tags_by_document, visible_doc_clause
from sekisho.store.terms import POSTINGS_BUDGET, TermCounts, ranking_terms


def match_expression(terms: Sequence[str]) -> str:
    """An FTS5 MATCH expression that ORs the terms, each quoted as a string literal so user input
    (quotes, *, -, AND/OR/NOT/NEAR, parentheses, colons) can never be read as query syntax."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


class _Fts5Changes:
    """The SQLite store as the tantivy index's change source: the change log and chunk_fts."""

    errors = (sqlite3.Error,)

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._conn = connect

    def generation(self) -> int:
        return current_generation(self._conn())

    def changes(self, since: int | None) -> Changes:
        conn = self._conn()
        conn.execute("BEGIN")  # one snapshot for the generation, the log and the rows
        try:
            generation, changed = changes_since(conn, since)
            if generation == since:
                return Changes(generation, [], [])
            if changed is None:
                rows = conn.execute("SELECT c.rowid, f.tokens, c.doc_id FROM chunk_fts f "
                                    "JOIN chunks c ON c.rowid = f.rowid")
            else:
                # CROSS JOIN fixes the order: left to itself, SQLite scanned all of
                # chunk_fts (180 ms at 100k chunks) instead of looking up the changed rows.
                rows = conn.execute(
                    f"SELECT c.rowid, f.tokens, c.doc_id FROM ({CHANGED_SINCE}) l "
                    "CROSS JOIN chunks c ON c.rowid = l.rowid CROSS JOIN chunk_fts f ON f.rowid = l.rowid",
                    (since,))
            rows = rows.fetchall()
            tags = tags_by_document(conn, None if changed is None else {d for _, _, d in rows})
        finally:
            conn.execute("COMMIT")
        return Changes(generation, changed, [(rowid, tokens, tags.get(doc_id, ())) for rowid, tokens, doc_id in rows])


def index_folder(path: Path) -> Path:
    """Where the tantivy index of the store file at `path` lives: beside it."""
    return path.with_name(path.name + ".lexical")


class LexicalIndex:
    """BM25 over one store's chunks. `connect()` gives the calling thread's connection; with
    `tantivy=False` FTS5 answers alone (no folder beside the file)."""

    def __init__(self, path: Path, connect: Callable[[], sqlite3.Connection], store_id: str, *,
                 tantivy: bool = True) -> None:
        self.path = path
        self._conn = connect
        # How much of the index an FTS5 query may walk (see _ranking_terms).
        self.postings_budget: float = POSTINGS_BUDGET
        self._term_counts = TermCounts()
        # Caught up inline by the search that finds it behind: reading the local file is quick.
        self._index = (DerivedLexicalIndex(index_folder(path), store_id, _Fts5Changes(connect),
                                           fallback="FTS5") if tantivy else None)

    def close(self) -> None:
        if self._index is not None:
            self._index.close()

    def search(self, terms: Sequence[str], k: int, tags: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """BM25 over the chunks' pre-tokenised text for any of `terms`, each matched literally as
        one token (case-folded); returns (chunk id, score), best first.

        The tantivy index answers when it reflects the store's current generation (catching up
        first if it can); otherwise FTS5 does, over the rarer terms only (`_ranking_terms`).
        Both rank by BM25 with k1 1.2 and b 0.75; their idf formulas differ slightly, so scores
        are comparable within one result list, not across engines."""
        unique = list(dict.fromkeys(t for t in terms if t.strip()))
        if k <= 0 or not unique:
            return []
        found = self._index.search(unique, k, tags) if self._index is not None else None
        if found is None:
            return self._fts5_search(unique, k, tags)
        ids = chunk_ids_for_rowids(self._conn(), [rowid for rowid, _ in found])
        return [(ids[rowid], score) for rowid, score in found if rowid in ids]

    def current(self) -> bool:
        """Whether the tantivy index reflects the store as it is now (False: FTS5 would answer)."""
        return self._index is not None and self._index.current()

    def sync(self) -> bool:
        """Catch the tantivy index up now (False: it cannot at the moment; FTS5 answers)."""
        return self._index is not None and self._index.sync()

    def _fts5_search(self, terms: list[str], k: int, tags: Sequence[str] | None) -> list[tuple[str, float]]:
        """FTS5's bm25() over the rarer terms, negated so higher is better."""
        query = match_expression(self._ranking_terms(terms))
        if tags is None or "*" in tags:
            # Rank inside FTS5 first and join only the top k: joining every match before sorting
            # was 2x slower at 100k chunks (docs/benchmarks.md).
            sql = (
                "SELECT chunks.id, -f.score FROM (SELECT rowid, bm25(chunk_fts) AS score FROM chunk_fts "
                "WHERE chunk_fts MATCH ? ORDER BY score LIMIT ?) f JOIN chunks ON chunks.rowid = f.rowid "
                "ORDER BY f.score"
            )
            rows = self._conn().execute(sql, [query, k]).fetchall()
            return [(r[0], float(r[1])) for r in rows]
        visible, params = visible_doc_clause(tags)
        sql = (
            "SELECT chunks.id, -bm25(chunk_fts) AS score FROM chunk_fts "
            "JOIN chunks ON chunks.rowid = chunk_fts.rowid "
            "JOIN documents ON documents.id = chunks.doc_id "
            f"WHERE chunk_fts MATCH ? AND {visible} ORDER BY bm25(chunk_fts) LIMIT ?"
        )
        rows = self._conn().execute(sql, [query, *params, k]).fetchall()
        return [(r[0], float(r[1])) for r in rows]

    def _ranking_terms(self, terms: Sequence[str]) -> list[str]:
        """The query terms worth a posting-list walk (store/terms.py).
        A term the vocabulary does not list as given is kept: FTS5 folds case and diacritics when
        it tokenises the query, so it may still match, and an absent term costs nothing.
        `terms` are distinct and non-blank (lexical_search made them so)."""
        conn = self._conn()

        def count(term: str) -> int:
            row = conn.execute("SELECT doc FROM chunk_fts_vocab WHERE term = ?", (term,)).fetchone()
            return row[0] if row else 0

        counts = self._term_counts.get(list(terms), current_generation(conn), count)
        return ranking_terms(terms, counts, self.postings_budget)
