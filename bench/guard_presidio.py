"""PII guard accuracy and speed: sekisho's recognisers vs Microsoft Presidio on the same Japanese text.

Runs in the separate benchmark venv (GiNZA pins an older sudachipy than sekisho's retrieval), see
docs/benchmarks.md "Guard" for the exact setup; without presidio installed it reports sekisho only.

    .venv-presidio/bin/python bench/guard_presidio.py            # --docs 2000 --presidio-docs 200

Accuracy: entity-level precision / recall / F1 on the labelled set of bench/guard_dataset.py and on
the hand-written sentences of bench/guard_handset.txt (a prediction counts when it overlaps an
unmatched gold span of the same entity). Throughput:
UTF-8 MB/s of document text, per-document calls as a request would make them and all documents
joined into one text as a long file, best of --repeats.
Presidio is its default analyzer for language "ja" (the predefined recognisers it loads for ja,
plus spaCy NER with ja_ginza, whose labels are mapped to Presidio's entities); it has no Japanese
identifiers, so only PHONE_NUMBER, EMAIL_ADDRESS, CREDIT_CARD and ADDRESS (from LOCATION) can score.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from guard_dataset import ENTITIES, generate, handset  # noqa: E402
from sekisho.guard import scan  # noqa: E402

# Presidio entity -> ours, for the entities Presidio can produce at all.
PRESIDIO_TO_OURS = {"PHONE_NUMBER": "PHONE_NUMBER", "EMAIL_ADDRESS": "EMAIL_ADDRESS", "CREDIT_CARD": "CREDIT_CARD",
                    "LOCATION": "ADDRESS", "ADDRESS": "ADDRESS"}
# GiNZA's Extended Named Entity labels -> Presidio entities (Presidio drops labels it cannot map).
GINZA_TO_PRESIDIO = {"Person": "PERSON", "Phone_Number": "PHONE_NUMBER", "Email": "EMAIL_ADDRESS",
                     "Postal_Address": "ADDRESS", "Province": "LOCATION", "City": "LOCATION", "GPE": "LOCATION",
                     "Country": "LOCATION", "Date": "DATE_TIME", "Company": "ORGANIZATION",
                     "Organization": "ORGANIZATION"}


def score(docs: list[dict], predictions: list[list[tuple[str, int, int]]]) -> dict[str, dict[str, float]]:
    """Per-entity and micro-averaged precision / recall / F1 with overlap matching."""
    tp = {e: 0 for e in ENTITIES}
    fp = {e: 0 for e in ENTITIES}
    fn = {e: 0 for e in ENTITIES}
    for doc, predicted in zip(docs, predictions):
        gold = [(s["entity"], s["start"], s["end"]) for s in doc["spans"]]
        used = [False] * len(gold)
        for entity, start, end in predicted:
            if entity not in tp:
                continue
            for i, (g_entity, g_start, g_end) in enumerate(gold):
                if not used[i] and g_entity == entity and start < g_end and g_start < end:
                    used[i] = True
                    tp[entity] += 1
                    break
            else:
                fp[entity] += 1
        for i, (g_entity, _, _) in enumerate(gold):
            if not used[i]:
                fn[g_entity] += 1

    def prf(t: int, f_p: int, f_n: int) -> dict[str, float]:
        p = t / (t + f_p) if t + f_p else 0.0
        r = t / (t + f_n) if t + f_n else 0.0
        return {"p": round(p, 4), "r": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4),
                "tp": t, "fp": f_p, "fn": f_n}

    out = {e: prf(tp[e], fp[e], fn[e]) for e in ENTITIES}
    out["micro"] = prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return out


def sekisho_predict(docs: list[dict]) -> list[list[tuple[str, int, int]]]:
    return [[(f.entity, f.start, f.end) for f in scan(d["text"])] for d in docs]


def timed(fn, docs: list[dict], repeats: int) -> tuple[float, list]:
    best, result = float("inf"), []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn(docs)
        best = min(best, time.perf_counter() - t0)
    return best, result


def bulk_mb_s(docs: list[dict], repeats: int) -> float:
    """MB/s scanning all documents joined into one text (a long file, as `sekisho guard scan` sees it)."""
    joined = "\n".join(d["text"] for d in docs)
    seconds, _ = timed(lambda _: scan(joined), docs, repeats)
    return len(joined.encode("utf-8")) / 1e6 / seconds


def nfkc_mb_s(docs: list[dict], repeats: int) -> float:
    """Baseline in the same process: unicodedata's NFKC over the same joined text (what any
    Japanese matcher must at least do), so load on the machine cancels out of the ratio."""
    import unicodedata

    joined = "\n".join(d["text"] for d in docs)
    seconds, _ = timed(lambda _: unicodedata.normalize("NFKC", joined), docs, repeats)
    return len(joined.encode("utf-8")) / 1e6 / seconds


def megabytes(docs: list[dict]) -> float:
    return sum(len(d["text"].encode("utf-8")) for d in docs) / 1e6


def presidio_analyzer():
    """Presidio's default analyzer for Japanese, offline, or None when presidio is not installed."""
    try:
        import tldextract
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider
    except ImportError:
        return None
    # The e-mail recogniser validates domains with tldextract, which would fetch the public suffix
    # list from the internet on first use; the bundled snapshot is used instead.
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    conf = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "ja", "model_name": "ja_ginza"}],
        "ner_model_configuration": {"model_to_presidio_entity_mapping": GINZA_TO_PRESIDIO},
    }
    nlp_engine = NlpEngineProvider(nlp_configuration=conf).create_engine()
    registry = RecognizerRegistry(supported_languages=["ja"])
    registry.load_predefined_recognizers(languages=["ja"], nlp_engine=nlp_engine)
    return AnalyzerEngine(nlp_engine=nlp_engine, registry=registry, supported_languages=["ja"])


def presidio_predict(analyzer, docs: list[dict]) -> list[list[tuple[str, int, int]]]:
    out = []
    for d in docs:
        results = analyzer.analyze(text=d["text"], language="ja")
        out.append([(PRESIDIO_TO_OURS[r.entity_type], r.start, r.end) for r in results
                    if r.entity_type in PRESIDIO_TO_OURS and r.score >= 0.3])
    return out


def jsquad_docs(path: Path) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [{"text": p["context"].split("[SEP]", 1)[-1].strip(), "spans": []}
            for article in data["data"] for p in article["paragraphs"]]


def table(name: str, scores: dict[str, dict[str, float]]) -> None:
    print(f"\n{name}: entity            P       R       F1     (tp/fp/fn)")
    for entity, s in scores.items():
        print(f"  {entity:18s} {s['p']:6.3f}  {s['r']:6.3f}  {s['f1']:6.3f}   ({s['tp']}/{s['fp']}/{s['fn']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000, help="labelled documents for sekisho")
    parser.add_argument("--presidio-docs", type=int, default=200, help="first N documents also run through Presidio")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jsquad", type=Path, default=ROOT.parent / "shared" / "data" / "jsquad" / "valid-v1.3.json",
                        help="ordinary Japanese text (JSQuAD paragraphs) for a second throughput figure")
    args = parser.parse_args()

    docs = generate(args.docs, args.seed)
    scan("ウォームアップ０１２")  # builds the NFKC tables once (~0.2 s), not part of any timing
    seconds, predicted = timed(sekisho_predict, docs, args.repeats)
    mb = megabytes(docs)
    ours = score(docs, predicted)
    table(f"sekisho on {len(docs)} documents ({mb:.2f} MB)", ours)
    result: dict = {"docs": len(docs), "mb": round(mb, 3), "sekisho_mb_s": round(mb / seconds, 2),
                    "sekisho_micro_f1": ours["micro"]["f1"], "sekisho": ours}
    bulk = bulk_mb_s(docs, args.repeats)
    baseline = nfkc_mb_s(docs, args.repeats)
    print(f"\nsekisho throughput on the labelled set: {mb / seconds:.1f} MB/s per document "
          f"({len(docs) / seconds:.0f} docs/s); {bulk:.1f} MB/s as one text "
          f"(baseline, unicodedata NFKC alone: {baseline:.1f} MB/s)")
    result.update(sekisho_bulk_mb_s=round(bulk, 2), nfkc_mb_s=round(baseline, 2))

    hand = handset()
    hand_scores = score(hand, sekisho_predict(hand))
    print(f"sekisho on the {len(hand)} hand-written sentences (bench/guard_handset.txt, "
          f"{sum(len(d['spans']) for d in hand)} entities): micro P {hand_scores['micro']['p']:.3f} "
          f"R {hand_scores['micro']['r']:.3f} F1 {hand_scores['micro']['f1']:.3f}")
    result["handset_micro"] = hand_scores["micro"]

    if args.jsquad.exists():
        plain = jsquad_docs(args.jsquad)
        plain_seconds, plain_found = timed(sekisho_predict, plain, args.repeats)
        plain_mb = megabytes(plain)
        counts: dict[str, int] = {}
        for found in plain_found:
            for entity, _, _ in found:
                counts[entity] = counts.get(entity, 0) + 1
        plain_bulk = bulk_mb_s(plain, args.repeats)
        baseline = nfkc_mb_s(plain, args.repeats)
        print(f"sekisho throughput on ordinary text ({len(plain)} JSQuAD paragraphs, {plain_mb:.2f} MB): "
              f"{plain_mb / plain_seconds:.1f} MB/s per paragraph, {plain_bulk:.1f} MB/s as one text "
              f"(baseline, unicodedata NFKC alone: {baseline:.1f} MB/s, i.e. scan = {baseline / plain_bulk:.2f}x "
              f"its time); findings {counts}")
        result.update(jsquad_mb_s=round(plain_mb / plain_seconds, 2), jsquad_bulk_mb_s=round(plain_bulk, 2),
                      jsquad_nfkc_mb_s=round(baseline, 2), jsquad_findings=counts)
    else:
        print(f"(no JSQuAD file at {args.jsquad}: ordinary-text throughput skipped)")

    t0 = time.perf_counter()
    analyzer = presidio_analyzer()
    if analyzer is None:
        print("\nPresidio is not installed in this environment: see docs/benchmarks.md (Guard) for the venv.")
        result["presidio"] = None
        print(json.dumps(result, ensure_ascii=False))
        return
    load_seconds = time.perf_counter() - t0
    subset = docs[: args.presidio_docs]
    presidio_predict(analyzer, subset[:2])  # warm-up
    p_seconds, p_predicted = timed(lambda ds: presidio_predict(analyzer, ds), subset, 1)
    s_seconds, s_predicted = timed(sekisho_predict, subset, args.repeats)
    theirs = score(subset, p_predicted)
    ours_subset = score(subset, s_predicted)
    sub_mb = megabytes(subset)
    table(f"Presidio (default analyzer, ja_ginza) on the first {len(subset)} documents", theirs)
    covered = [e for e in ENTITIES if e in PRESIDIO_TO_OURS.values()]

    def micro_over(scores: dict, entities: list[str]) -> float:
        t = sum(scores[e]["tp"] for e in entities)
        f_p = sum(scores[e]["fp"] for e in entities)
        f_n = sum(scores[e]["fn"] for e in entities)
        return round(2 * t / (2 * t + f_p + f_n), 4) if t else 0.0

    hand_theirs = score(hand, presidio_predict(analyzer, hand))
    print(f"\nPresidio on the hand-written sentences: micro P {hand_theirs['micro']['p']:.3f} "
          f"R {hand_theirs['micro']['r']:.3f} F1 {hand_theirs['micro']['f1']:.3f}")
    result["presidio_handset_micro"] = hand_theirs["micro"]
    ratio = p_seconds / s_seconds
    print(f"\nsame {len(subset)} documents ({sub_mb:.3f} MB): sekisho {s_seconds * 1000:.1f} ms "
          f"({sub_mb / s_seconds:.1f} MB/s), Presidio {p_seconds:.2f} s ({sub_mb / p_seconds:.4f} MB/s; "
          f"model load {load_seconds:.1f} s, not counted)")
    print(f"speed ratio (Presidio time / sekisho time): {ratio:.0f}x")
    print(f"micro F1 over all {len(ENTITIES)} entities: sekisho {ours_subset['micro']['f1']:.3f}, "
          f"Presidio {theirs['micro']['f1']:.3f}")
    print(f"micro F1 over the {len(covered)} entities Presidio can produce ({', '.join(covered)}): "
          f"sekisho {micro_over(ours_subset, covered):.3f}, Presidio {micro_over(theirs, covered):.3f}")
    result.update(
        presidio_docs=len(subset), speed_ratio=round(ratio, 1),
        presidio_mb_s=round(sub_mb / p_seconds, 5), sekisho_subset_mb_s=round(sub_mb / s_seconds, 2),
        presidio_micro_f1=theirs["micro"]["f1"], sekisho_subset_micro_f1=ours_subset["micro"]["f1"],
        covered_micro_f1={"sekisho": micro_over(ours_subset, covered), "presidio": micro_over(theirs, covered)},
        presidio=theirs,
    )
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
