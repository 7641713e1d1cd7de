"""BM25 inside PostgreSQL over the analyser's own tokens.

Each chunk's terms (whitespace-separated, as retrieval/tokenize.py cut them) are lower-cased and
stored as a `tsvector` built here, term by term with their positions: no text search
configuration re-splits them (PostgreSQL's parsers do not segment Japanese), and lower-casing
matches what tantivy and FTS5 do in the SQLite store. A GIN index finds the chunks holding a
term; the score is Okapi BM25 (k1 1.2, b 0.75, tantivy's idf) computed in SQL from each matched
chunk's term frequencies (the number of positions of a term), its token count, the store's chunk
and token totals kept in `meta`, and how many chunks hold each term (`term_stats`, kept by every
write: counting a common term's chunks at query time walked its whole posting list, tens of ms).

Each server also keeps a tantivy index of these tokens in a local folder (store/lexical_index.py,
DatabaseChanges below), which answers instead whenever it reflects the database's generation:
PostgreSQL walks about 5 us a posting here, tantivy skips the postings that cannot rank.

How a search reads as little as it can: see _SEARCH. As in the SQLite store's FTS5 path, only
the rarer query terms are walked (store/terms.py; POSTINGS_BUDGET below): a term found in most
chunks costs a scan of most of the index for almost no weight.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sekisho.db import Connection
from sekisho.db.postgres import PostgresDatabase
from sekisho.store.changelog import changes_since, current_generation
from sekisho.store.lexical_index import Changes
from sekisho.store.terms import ranking_terms

K1 = 1.2
B = 0.75
# PostgreSQL's limits for one lexeme: what is longer is left out of the index (no query matches
# a 2 KB token anyway), positions past the last one a tsvector can hold are dropped.
_MAX_LEXEME_BYTES = 2046
_MAX_POSITION = 16383
_MAX_POSITIONS_PER_LEXEME = 256


def _quoted(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def terms_of(tokens: str) -> list[str]:
    return [t for t in tokens.lower().split() if len(t.encode("utf-8")) <= _MAX_LEXEME_BYTES]


@dataclass(frozen=True)
class LexicalRow:
    """A chunk's tokens as chunk_lexical stores them."""

    tsv: str  # tsvector input text: each term with its positions
    length: int  # how many tokens (BM25's document length)
    terms: frozenset[str]  # its distinct terms (term_stats counts chunks per term)


def lexical_row(tokens: str) -> LexicalRow:
    terms = terms_of(tokens)
    positions: dict[str, list[int]] = {}
    for position, term in enumerate(terms[:_MAX_POSITION], start=1):
        slot = positions.setdefault(term, [])
        if len(slot) < _MAX_POSITIONS_PER_LEXEME:
            slot.append(position)
    tsv = " ".join(f"{_quoted(t)}:{','.join(map(str, p))}" for t, p in positions.items())
    return LexicalRow(tsv, len(terms), frozenset(positions))


def term_deltas(added: Iterable[LexicalRow], removed: Iterable[str]) -> dict[str, int]:
    """How many more chunks hold each term after a write: `added` rows in, chunks with the
    `removed` token texts out."""
    deltas: Counter[str] = Counter()
    for row in added:
        deltas.update(row.terms)
    for tokens in removed:
        deltas.subtract(frozenset(terms_of(tokens)))
    return {term: n for term, n in deltas.items() if n}


def tsquery_literal(terms: Sequence[str]) -> str:
    """Any of the terms, each matched as one literal lexeme (user input is never query syntax)."""
    return " | ".join(_quoted(t) for t in terms)


def idf(chunks: int, containing: int) -> float:
    return math.log(1.0 + (chunks - containing + 0.5) / (containing + 0.5))


# Two stages, so that no chunk's tsvector is read unless it may rank:
# 1. every chunk holding a kept term, found through the GIN index one term at a time (rowid and
#    length only: the tsvector itself is not fetched), scored as if each term occurred once;
# 2. the best RESCORED of those scored exactly: `hit` keeps only the query's lexemes of the
#    chunk's tsvector (setweight marks them, ts_filter drops the rest), whose positions count the
#    term's occurrences. Reading a tsvector costs about 12 us, so scoring every candidate exactly
#    was 28 ms at 1,500 candidates (4,000 chunks); a term occurring more than once lifts a chunk
#    by at most the k1 saturation, so the exact top k lies inside the first stage's top RESCORED.
_SEARCH = """
    WITH q(term, idf, query) AS (SELECT * FROM unnest(?::text[], ?::float8[], ?::tsquery[])),
    rough AS (
        SELECT m.rowid, max(m.length) AS length, sum(q.idf) AS weight
        FROM q CROSS JOIN LATERAL (SELECT l.rowid, l.length FROM chunk_lexical l {join}
                                   WHERE l.tsv @@ q.query {visible}) m
        GROUP BY m.rowid
        ORDER BY sum(q.idf) * {k1_plus_1} / (1 + {k1} * (1 - {b} + {b} * max(m.length) / ?)) DESC, m.rowid
        LIMIT ?
    ),
    s AS (
        SELECT r.rowid, sum(q.idf * u.tf * {k1_plus_1} / (u.tf + {k1} * (1 - {b} + {b} * r.length / ?))) AS score
        FROM rough r JOIN chunk_lexical l ON l.rowid = r.rowid
        CROSS JOIN LATERAL (SELECT lexeme, cardinality(positions) AS tf
                            FROM unnest(ts_filter(setweight(l.tsv, 'A', ?::text[]), '{{a}}'))) u
        JOIN q ON q.term = u.lexeme
        GROUP BY r.rowid ORDER BY score DESC, r.rowid LIMIT ?
    )
    SELECT c.id, s.score FROM s JOIN chunks c ON c.rowid = s.rowid ORDER BY s.score DESC, s.rowid
"""
# Candidates scored exactly per result asked for.
RESCORED_PER_RESULT = 4
# The postings a search may walk (store/terms.py). Each costs about 5 us here against well under
# 1 us in FTS5, so the budget is a quarter of SQLite's: at 100k chunks (150 JSQuAD questions,
# e5-small, hybrid without the query embedding) 40,000 gave R@1 0.893 / R@5 0.960 at p95 298 ms,
# 10,000 gave 0.900 / 0.953 at 89 ms, 5,000 0.907 / 0.953 at 74 ms (docs/benchmarks.md, ## PostgreSQL).
POSTINGS_BUDGET = 10_000


class Lexical:
    """BM25 over one store's chunk_lexical table; document frequencies from term_stats."""

    def __init__(self) -> None:
        self.postings_budget: float = POSTINGS_BUDGET

    def search(self, conn: Connection, terms: Sequence[str], k: int, visible: tuple[str, list[str]] | None,
               chunks: int, tokens: int) -> list[tuple[str, float]]:
        """(chunk id, BM25) best first for chunks holding any of `terms`; `visible` is a condition
        on `documents.id` with its parameters (None: every chunk)."""
        unique = list(dict.fromkeys(terms_of(" ".join(terms))))
        if k <= 0 or not unique or not chunks:
            return []
        counts = dict.fromkeys(unique, 0)
        counts.update(conn.execute("SELECT term, chunks FROM term_stats WHERE term = ANY(?)", (unique,)).fetchall())
        kept = [t for t in ranking_terms(unique, counts, self.postings_budget) if counts[t] > 0]
        if not kept:
            return []
        clause, params = visible if visible is not None else ("", [])
        sql = _SEARCH.format(
            join="JOIN chunks c ON c.rowid = l.rowid JOIN documents ON documents.id = c.doc_id" if clause else "",
            visible=f"AND {clause}" if clause else "", k1=K1, b=B, k1_plus_1=K1 + 1)
        average = tokens / chunks
        rows = conn.execute(sql, [kept, [idf(chunks, counts[t]) for t in kept], [tsquery_literal([t]) for t in kept],
                                  *params, average, RESCORED_PER_RESULT * k, average, kept, k]).fetchall()
        return [(cid, float(score)) for cid, score in rows]


class DatabaseChanges:
    """The database as the change source of a server's tantivy index (store/lexical_index.py):
    the change log and chunk_lexical's token texts, read in one snapshot."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self.errors = db.errors

    def generation(self) -> int:
        with self._db.read() as conn:
            return current_generation(conn)

    def changes(self, since: int | None) -> Changes:
        with self._db.read() as conn:
            generation, changed = changes_since(conn, since)
            if generation == since:
                return Changes(generation, [], [])
            which = "" if changed is None else " WHERE l.rowid = ANY(?)"
            rows = conn.execute(f"SELECT l.rowid, l.tokens, c.doc_id FROM chunk_lexical l JOIN chunks c "
                                f"ON c.rowid = l.rowid{which}", () if changed is None else (changed,)).fetchall()
            docs = "" if changed is None else " WHERE doc_id = ANY(?)"
            tags: dict[str, list[str]] = {}
            for doc_id, tag in conn.execute(f"SELECT doc_id, tag FROM document_tags{docs}",
                                            () if changed is None else (list({d for *_, d in rows}),)):
                tags.setdefault(doc_id, []).append(tag)
        return Changes(generation, changed, [(rowid, tokens, tags.get(doc_id, ())) for rowid, tokens, doc_id in rows])
