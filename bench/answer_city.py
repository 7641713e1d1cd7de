"""Questions a resident asks of the bundled city corpus: does `sekisho ask` answer them right?

JSQuAD's questions copy their paragraph's words; office questions do not, and office documents
are fee tables, labelled blocks and lists rather than prose. bench/city_questions.tsv holds 30
hand-written questions (Japanese and English) with what a right answer must contain and the file
that holds it. Each is asked through the request path with the shipped settings, as `sekisho ask` does.

    python bench/answer_city.py [--backends extractive,qwen15b] [--show]

Backend names as in bench/answer_jsquad.py. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from answer_jsquad import REPO, settings_with
from sekisho.config import AuditConfig, StoreConfig
from sekisho.identity import Principal, Role
from sekisho.ingest import ingest_paths
from sekisho.request import RequestPath
from sekisho.retrieval import open_knowledge_base

QUESTIONS = Path(__file__).with_name("city_questions.tsv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="extractive")
    ap.add_argument("--show", action="store_true", help="print every answer")
    args = ap.parse_args()
    rows = [line.split("\t") for line in QUESTIONS.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]
    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    workdir = tempfile.TemporaryDirectory()
    settings = settings_with(names).model_copy(update={
        "base_dir": workdir.name, "store": StoreConfig(path="city.db"),
        "audit": AuditConfig(path="audit.db", key_path="signing.key")})
    results = {}
    with open_knowledge_base(settings) as kb:
        report = ingest_paths(kb, [REPO / "samples" / "city"], progress=False)
        if report.failed:
            raise SystemExit(f"error: sample corpus: {report.failed}")
        request_path, user = RequestPath(settings), Principal("bench", Role.USER)
        for name in names:
            right = cited = 0
            latencies = []
            for question, expected, source in rows:
                started = time.perf_counter()
                answer = request_path.ask(question, principal=user, backend=name, kb=kb,
                                     k=settings.retrieval.top_k).answer
                latencies.append(time.perf_counter() - started)
                ok = answer is not None and any(e in answer.text for e in expected.split("|"))
                from_source = answer is not None and any(c.path.endswith(source) for c in answer.citations)
                right += ok
                cited += ok and from_source
                if args.show:
                    text = answer.text.replace("\n", " / ") if answer else "(no answer)"
                    print(f"  {'ok ' if ok else 'NO '} {question}\n       {text[:160]}")
            n = len(rows)
            latencies.sort()
            results[name] = {"n": n, "right": round(right / n, 3), "right_and_cited": round(cited / n, 3),
                             "latency_p50_s": round(latencies[n // 2], 3)}
            print(f"{name:12s} right {right}/{n}  right and cited to the file that says it {cited}/{n}  "
                  f"p50 {latencies[n // 2]:.2f} s", flush=True)
    print(json.dumps({"bench": "answer_city", "questions": len(rows), "backends": results}, ensure_ascii=False))


if __name__ == "__main__":
    main()
