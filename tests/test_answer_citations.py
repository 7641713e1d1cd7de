"""Citation markers in every form models write them, resolved or reported as invented; which hits
reach the prompt."""

from __future__ import annotations

from dataclasses import replace

from sekisho.answer import cited_numbers, confident_hits, resolve_citations
from sekisho.store.records import Chunk, Document, Hit, Location


def hit(n: int, path: str, title: str, location: Location) -> Hit:
    doc = Document(id=f"d{n}", path=path, title=title, content_hash="0" * 64, media_type="text/markdown",
                   encoding="utf-8", text="本文")
    chunk = Chunk(id=f"d{n}:0", doc_id=f"d{n}", ordinal=0, text="本文", norm_text="本文", location=location)
    return Hit(chunk=chunk, document=doc, score=1.0 / n, rank=n)


def test_all_marker_forms_are_read_in_order_without_repeats():
    assert cited_numbers("Aです[1]。Bです[1][2]。Cです[3,4]。Dです[2、5]。") == [1, 2, 3, 4, 5]
    assert cited_numbers("全角です［１］。隅付き括弧【２】。") == [1, 2]
    assert cited_numbers("[ 3 , 1 ]") == [3, 1]
    assert cited_numbers("脚注のない文。配列 a[i] は数字でない。") == []


def test_citations_resolve_to_document_title_and_place_and_invented_numbers_are_reported():
    hits = [hit(1, "docs/juminhyo.md", "住民票の写しの交付", Location(0, 50, heading=("住民票の写しの交付", "手数料"))),
            hit(2, "docs/jido.pdf", "児童手当", Location(0, 40, page=3))]
    valid, invalid = resolve_citations("手数料は300円です[1]。支給は年6回です［２］。詳しくは[7]。", hits)
    assert [(c.n, c.path, c.title, c.location) for c in valid] == [
        (1, "docs/juminhyo.md", "住民票の写しの交付", "住民票の写しの交付 > 手数料"),
        (2, "docs/jido.pdf", "児童手当", "p.3"),
    ]
    assert invalid == [7]


def test_confident_hits_keep_the_best_and_those_near_it():
    hits = [hit(1, "a.md", "A", Location(0, 2)), hit(2, "b.md", "B", Location(0, 2)),
            hit(3, "c.md", "C", Location(0, 2))]
    hits = [replace(h, score=s) for h, s in zip(hits, (0.9, 0.2, 0.05))]
    assert [h.rank for h in confident_hits(hits, 0.1)] == [1, 2]
    assert [h.rank for h in confident_hits(hits, 0.5)] == [1]
    assert confident_hits(hits, 0.0) == hits
    assert confident_hits([], 0.5) == []
    assert [h.rank for h in confident_hits(hits, 0.1, limit=1)] == [1]  # a backend's max_passages
    assert [h.rank for h in confident_hits(hits, 0.0, limit=2)] == [1, 2]


def test_confident_hits_give_nothing_when_even_the_best_is_improbable():
    hits = [replace(hit(n, f"{n}.md", "T", Location(0, 2)), score=s) for n, s in ((1, 0.015), (2, 0.01))]
    assert confident_hits(hits, 0.5, min_score=0.02) == []
    assert [h.rank for h in confident_hits(hits, 0.5, min_score=0.01)] == [1, 2]  # the floor is on the best only
    assert [h.rank for h in confident_hits(hits, 0.5)] == [1, 2]  # no floor by default
