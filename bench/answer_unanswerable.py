"""Questions the documents do not answer: how often does sekisho answer anyway?

Out of the documents: JSQuAD questions (Wikipedia topics) asked of the bundled city sample corpus
(samples/city), which answers none of them. In the documents: JSQuAD questions asked of an index
of their own 1,145 paragraphs. Paraphrased: hand-written questions about the city corpus in other
words than its documents use (bench/city_paraphrases.tsv, Japanese and English), the case the
floor can wrongly stop. For each, the best hit's re-scorer probability, which
`retrieval.min_score` compares against; then, for each backend, the share of out-of-documents
questions it answers instead of saying 資料に記載がありません, with the floor off and on.

    python bench/answer_unanswerable.py [DATASET] [--backends extractive,qwen15b] [--questions 400]
        [--llm-questions 60] [--store jsquad.db] [--embedder e5-small]

Backend names as in bench/answer_jsquad.py. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

from answer_jsquad import DEFAULT, REPO, build_kb, load, settings_with
from sekisho.answer import ask
from sekisho.config import RetrievalConfig, Settings, StoreConfig
from sekisho.ingest import ingest_paths
from sekisho.models import open_backend
from sekisho.retrieval import open_knowledge_base

FLOORS = (0.005, 0.01, 0.02, 0.03, 0.05)
PARAPHRASES = Path(__file__).with_name("city_paraphrases.tsv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--backends", default="extractive")
    ap.add_argument("--questions", type=int, default=400, help="questions on each side (a fixed random sample)")
    ap.add_argument("--llm-questions", type=int, default=60, help="of those, how many LLM backends answer")
    ap.add_argument("--embedder", default=RetrievalConfig().embedder)
    ap.add_argument("--store", type=Path, help="the JSQuAD index (built on the first run, then reused)")
    args = ap.parse_args()
    if not args.dataset.is_file():
        sys.exit(f"error: {args.dataset}: JSQuAD file not found (pass its path)")
    items, paragraphs = load(args.dataset)
    rng = random.Random(0)
    inside = rng.sample(items, args.questions)
    outside = [item.question for item in rng.sample(items, args.questions)]
    defaults = RetrievalConfig()
    workdir = tempfile.TemporaryDirectory()

    jsquad = build_kb(paragraphs, args.store, Path(workdir.name), args.embedder)
    best = [jsquad.search(item.question, k=1)[0] for item in inside]
    jsquad.close()
    p_inside = np.array([hit.score for hit in best])
    right = np.array([hit.document.path == item.path for hit, item in zip(best, inside)])

    city = Settings(store=StoreConfig(path="city.db"), retrieval=RetrievalConfig(embedder=args.embedder),
                    base_dir=workdir.name)
    kb = open_knowledge_base(city)
    report = ingest_paths(kb, [REPO / "samples" / "city"], progress=False)
    if report.failed:
        sys.exit(f"error: sample corpus: {report.failed}")
    p_outside = np.array([kb.search(q, k=1)[0].score for q in outside])
    paraphrases = [line.split("\t") for line in PARAPHRASES.read_text(encoding="utf-8").splitlines()
                   if line.strip() and not line.startswith("#")]
    best_city = [kb.search(question, k=1)[0] for question, _ in paraphrases]
    p_paraphrased = np.array([hit.score for hit in best_city])
    right_city = np.array([Path(hit.document.path).name == name for hit, (_, name) in zip(best_city, paraphrases)])

    floors = []
    print(f"best-hit probability, {args.questions} questions each side ({args.embedder}); paraphrased: the right "
          f"document first for {int(right_city.sum())} of {len(paraphrases)}:")
    for floor in FLOORS:
        row = {"floor": floor, "inside_below": float(np.mean(p_inside < floor)),
               "inside_below_right_first": int(np.sum((p_inside < floor) & right)),
               "outside_at_or_above": float(np.mean(p_outside >= floor)),
               "paraphrased_below": int(np.sum(p_paraphrased < floor)),
               "paraphrased_below_right_first": int(np.sum((p_paraphrased < floor) & right_city))}
        floors.append(row)
        print(f"  floor {floor:<5}  in the documents, stopped {row['inside_below']:.3f} "
              f"({row['inside_below_right_first']} of them with the right passage first)  "
              f"out of the documents, let through {row['outside_at_or_above']:.3f}  paraphrased, stopped "
              f"{row['paraphrased_below']} of {len(paraphrases)} ({row['paraphrased_below_right_first']} with the "
              f"right document first)")

    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    settings = settings_with(names)
    answered: dict[str, dict[str, float]] = {}
    for name in names:
        backend = open_backend(settings, name)
        questions = outside if backend.info().kind == "extractive" else outside[: args.llm_questions]
        answered[name] = {}
        for floor in (0.0, defaults.min_score):
            count = sum(not ask(q, kb=kb, complete=backend.complete, k=defaults.top_k,
                                min_relative_score=defaults.min_relative_score, min_score=floor).not_found
                        for q in questions)
            answered[name][str(floor)] = count / len(questions)
            print(f"{name:12s} min_score {floor:<5} answers {count}/{len(questions)} questions the documents do not "
                  f"answer ({count / len(questions):.3f})", flush=True)
    kb.close()
    print(json.dumps({"bench": "answer_unanswerable", "embedder": args.embedder, "questions": args.questions,
                      "paraphrased": len(paraphrases), "paraphrased_right_first": int(right_city.sum()),
                      "floors": floors, "answered_out_of_documents": answered}, ensure_ascii=False))


if __name__ == "__main__":
    main()
