"""Which analyser makes the best BM25 index for Japanese? Lexical-only retrieval on JSQuAD.

Every distinct paragraph becomes one document (title + body, NFKC), indexed in a fresh SQLite
FTS5 store with each analyser's terms; every question is searched against the whole corpus.
Compared: SudachiPy split modes A/B/C x term form (normalised, surface), with and without dropping
particles/auxiliaries/symbols; fugashi + unidic-lite (surface, lemma); the naive character-bigram
baseline; and, for the chosen analyser, bm25s instead of FTS5 as the BM25 engine.

    python bench/retrieval_analyzers.py [DATASET] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_common import DEFAULT_JSQUAD, bigrams, dedupe, fmt, load_jsquad, metrics  # noqa: E402
from sekisho.retrieval.tokenize import DROPPED_POS, Analyzer  # noqa: E402
from sekisho.store import Chunk, Document, Location, open_store  # noqa: E402


def fugashi_terms(form: str) -> Callable[[str], list[str]]:
    import fugashi

    tagger = fugashi.Tagger()  # unidic-lite

    def terms(text: str) -> list[str]:
        out = []
        for w in tagger(unicodedata.normalize("NFKC", text)):
            if w.feature.pos1 in DROPPED_POS:
                continue
            term = (w.feature.lemma if form == "lemma" and w.feature.lemma else w.surface).lower()
            if term.strip():
                out.append(term)
        return out

    return terms


def configurations() -> dict[str, Callable[[str], list[str]]]:
    configs: dict[str, Callable[[str], list[str]]] = {"char-bigram (baseline)": bigrams}
    for mode in "ABC":
        for form in ("normalized", "surface"):
            configs[f"sudachi {mode} {form}"] = Analyzer(mode, form).tokenize
    sudachi_b = Analyzer("B", "normalized").tokenize
    configs["sudachi B normalized + char bigrams"] = lambda text: sudachi_b(text) + bigrams(text)
    configs["sudachi B normalized, keep all POS"] = Analyzer("B", "normalized", frozenset({"空白"})).tokenize
    configs["fugashi unidic-lite surface"] = fugashi_terms("surface")
    configs["fugashi unidic-lite lemma"] = fugashi_terms("lemma")
    return configs


def run_fts(name, terms_of, paragraphs, questions, workdir: Path) -> dict:
    texts = [unicodedata.normalize("NFKC", f"{p.title}\n{p.body}") for p in paragraphs]
    t0 = time.perf_counter()
    lexical = [" ".join(terms_of(t)) for t in texts]
    analyse_s = time.perf_counter() - t0
    store = open_store(workdir / f"{abs(hash(name))}.db")
    for p, text, lex in zip(paragraphs, texts, lexical, strict=True):
        doc = Document(id=p.path, path=p.path, title=p.title, content_hash="", media_type="text/plain",
                       encoding=None, text=text)
        chunk = Chunk(id=p.path + ":0", doc_id=p.path, ordinal=0, text=text, norm_text=text,
                      location=Location(0, len(text)))
        store.replace_document(doc, [chunk], [lex], np.zeros((1, 1), dtype=np.float32))
    rankings, latencies = [], []
    for q in questions:
        t = time.perf_counter()
        ranked = store.lexical_search(terms_of(q.text), 10)
        latencies.append(time.perf_counter() - t)
        rankings.append(dedupe([cid.rsplit(":", 1)[0] for cid, _ in ranked]))
    store.close()
    m = metrics(rankings, [q.gold for q in questions])
    chars = sum(len(t) for t in texts)
    return {"name": name, **m, "analyse_chars_per_s": chars / analyse_s,
            "query_ms_mean": 1000 * sum(latencies) / len(latencies)}


def run_bm25s(terms_of, paragraphs, questions) -> dict:
    import bm25s

    texts = [unicodedata.normalize("NFKC", f"{p.title}\n{p.body}") for p in paragraphs]
    corpus_terms = [terms_of(t) for t in texts]
    retriever = bm25s.BM25()  # Lucene variant, k1=1.5, b=0.75
    retriever.index(corpus_terms, show_progress=False)
    rankings, latencies = [], []
    for q in questions:
        t = time.perf_counter()
        query_terms = [w for w in terms_of(q.text) if w in retriever.vocab_dict] or ["\x00"]
        if query_terms == ["\x00"]:
            rankings.append([])
            latencies.append(time.perf_counter() - t)
            continue
        docs, _ = retriever.retrieve([query_terms], k=10, show_progress=False)
        latencies.append(time.perf_counter() - t)
        rankings.append([paragraphs[i].path for i in docs[0]])
    m = metrics(rankings, [q.gold for q in questions])
    return {"name": "sudachi B normalized + bm25s", **m, "query_ms_mean": 1000 * sum(latencies) / len(latencies)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", default=str(DEFAULT_JSQUAD))
    ap.add_argument("--limit", type=int, default=0, help="use only the first N questions")
    ap.add_argument("--only", help="run only the analysers whose name contains this text")
    args = ap.parse_args()
    paragraphs, questions = load_jsquad(Path(args.dataset))
    if args.limit:
        questions = questions[: args.limit]
    print(f"{len(paragraphs)} paragraphs, {len(questions)} questions")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, terms_of in configurations().items():
            if args.only and args.only not in name:
                continue
            r = run_fts(name, terms_of, paragraphs, questions, Path(tmp))
            results.append(r)
            print(f"{name:38s} {fmt({k: r[k] for k in ('R@1', 'R@5', 'R@10', 'MRR@10')})}  "
                  f"analyse {r['analyse_chars_per_s'] / 1000:.0f}k chars/s  query {r['query_ms_mean']:.2f} ms")
    if not args.only:
        r = run_bm25s(Analyzer("B", "normalized").tokenize, paragraphs, questions)
        results.append(r)
        print(f"{r['name']:38s} {fmt({k: r[k] for k in ('R@1', 'R@5', 'R@10', 'MRR@10')})}  "
              f"query {r['query_ms_mean']:.2f} ms")
    print(json.dumps({"bench": "retrieval_analyzers", "questions": len(questions), "results": results},
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
