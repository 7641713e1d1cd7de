"""Grounded answering on JSQuAD, every backend side by side in one run.

Two settings per backend:
  rc    reading comprehension: the gold paragraph is the only passage [1]
  open  open-domain: retrieve k passages from a knowledge base of all 1,145 paragraphs, then answer
Scores (the usual JSQuAD scoring: NFKC, whitespace removed, max over the gold answers): exact
match, character F1, and "contains" (a gold answer occurs in the answer: the measure for the
extractive backend, which quotes sentences). Citation markers and a trailing 。/です are removed
before scoring. Also: latency p50/p95, the share of answer sentences check_faithfulness flags as
unsupported, and for local GGUF backends the decode rate against the memory-bandwidth bound
(every token reads the whole model once: bound = measured copy bandwidth / model bytes).

LLM backends get the short-answer prompt (JSQuAD gold answers are short spans); the extractive
backend gets the same request and quotes a sentence. The extractive rules were tuned on the
even-numbered articles: its figures are reported on all questions and on the odd-numbered half.

    python bench/answer_jsquad.py [DATASET] --backends extractive,qwen05b,qwen15b \\
        [--limit N (LLM questions; extractive always answers all)] [-k 3] [--store kb.db]

Backend names: any configured in sekisho.toml, plus qwen05b / qwen15b / gemma270m, the GGUF models
of scripts/gguf_models.py. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sekisho.answer import (
    check_faithfulness,
    confident_hits,
    no_passage_completion,
    passages_from_hits,
    request_for_passages,
)
from sekisho.answer.reading import best_reading, combined_completion, passage_policy, read_each, reads_apart
from sekisho.config import BackendConfig, RetrievalConfig, Settings, StoreConfig, load_settings
from sekisho.ingest import ingest_text
from sekisho.models import Backend, BackendError, ChatRequest, Message, Passage, open_backend
from sekisho.retrieval import open_knowledge_base
from sekisho.text import CITATION_RE, NOT_FOUND, compact

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO.parent / "shared" / "data" / "jsquad" / "valid-v1.3.json"


@dataclass(frozen=True)
class Item:
    question: str
    golds: tuple[str, ...]
    path: str  # the gold paragraph's document path, jsquad/<article>/<paragraph>
    title: str
    body: str
    half: str  # "dev" (even article: extractive rules tuned here) or "test"


def load(path: Path) -> tuple[list[Item], dict[str, tuple[str, str]]]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    items, paragraphs = [], {}
    for a, article in enumerate(data):
        for p, para in enumerate(article["paragraphs"]):
            title, _, body = para["context"].partition(" [SEP] ")
            doc_path = f"jsquad/{a:03d}/{p:03d}"  # the same paths as bench/retrieval_jsquad.py
            paragraphs.setdefault(doc_path, (title.strip(), body.strip()))
            for qa in para["qas"]:
                items.append(Item(qa["question"], tuple(x["text"] for x in qa["answers"]), doc_path,
                                  title.strip(), body.strip(), "dev" if a % 2 == 0 else "test"))
    return items, paragraphs


def clean(answer: str) -> str:
    text = CITATION_RE.sub("", answer).strip()
    return "" if compact(text).rstrip("。.") == NOT_FOUND else re.sub(r"(です)?[。.]?$", "", text).strip()


def em(pred: str, golds) -> float:
    return float(any(compact(pred) == compact(g) for g in golds))


def f1(pred: str, golds) -> float:
    p = compact(pred)
    best = 0.0
    for g in golds:
        g = compact(g)
        common = sum((Counter(p) & Counter(g)).values())
        if common:
            precision, recall = common / len(p), common / len(g)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def contains(pred: str, golds) -> float:
    p = compact(pred)
    return float(bool(p) and any(compact(g) in p for g in golds))


def _gguf_module():
    spec = importlib.util.spec_from_file_location("sekisho_gguf_models", REPO / "scripts" / "gguf_models.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


# Sub-billion models are misled by a second passage (docs/benchmarks-history.md, ## Answers, session 4):
# configured as a user should configure them.
SMALL_MODEL_PASSAGES = {"qwen05b": 1, "gemma270m": 1}


def settings_with(names: list[str], read_passages: str | None = None) -> Settings:
    """Settings with every named preset configured (GGUF assembled from its PyPI parts);
    `read_passages` overrides how the presets read their passages."""
    settings = load_settings()
    gguf = None
    for name in names:
        if name in settings.models.backends:
            continue
        gguf = gguf or _gguf_module()
        if name not in gguf.ALIASES and name not in gguf.MODELS:
            sys.exit(f"error: backend {name!r} is neither configured nor one of {', '.join(gguf.ALIASES)}")
        settings.models.backends[name] = BackendConfig(
            kind="llama.cpp", model=str(gguf.assemble(gguf.ALIASES.get(name, name))), local=True,
            context_tokens=4096, options={"n_threads": 2}, read_passages=read_passages or "together",
            # A limit guards a model that reads its passages together; read apart, none is needed.
            max_passages=None if read_passages == "each" else SMALL_MODEL_PASSAGES.get(name))
    return settings


def copy_bandwidth_gbs(mb: int = 256, repeats: int = 3) -> float:
    """Memory bandwidth as numpy sees it: bytes read + written per second copying a large array."""
    src = np.ones(mb * 2**20 // 8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return 2 * src.nbytes / best / 1e9


def decode_rate(backend: Backend) -> float:
    """Tokens per second of generation alone: time 64 tokens minus time 1 token, same prompt."""
    prompt = [Message("user", "1から100までの数字を、読点で区切って順に書いてください。")]

    def timed(n: int) -> tuple[float, int]:
        t = time.perf_counter()
        c = backend.complete(ChatRequest(prompt, max_tokens=n))
        return time.perf_counter() - t, c.completion_tokens

    timed(1)  # warm: load the model, fill caches
    t1, _ = timed(1)
    tn, n = timed(64)
    return (n - 1) / (tn - t1) if n > 1 and tn > t1 else float("nan")


def build_kb(paragraphs: dict[str, tuple[str, str]], store: Path | None, workdir: Path, embedder: str):
    path = store or workdir / "kb.db"
    settings = Settings(store=StoreConfig(path=str(path.resolve())), retrieval=RetrievalConfig(embedder=embedder),
                        base_dir=str(workdir))
    kb = open_knowledge_base(settings)
    t = time.perf_counter()
    for doc_path, (title, body) in paragraphs.items():
        ingest_text(kb, path=doc_path, title=title, text=body)  # unchanged paragraphs are skipped
    print(f"knowledge base: {len(paragraphs)} paragraphs ready in {time.perf_counter() - t:.1f} s ({path})")
    return kb


def run(backend: Backend, items: list[Item], mode: str, kb, k: int, min_relative_score: float, min_score: float,
        style: str, dump=None, config: BackendConfig | None = None) -> dict:
    share, limit = passage_policy(config, min_relative_score)  # as the request path chooses them
    apart = reads_apart(config)
    rows = []
    for item in items:
        if mode == "rc":
            passages = [Passage(1, item.path, item.title, item.body)]
            hits = []
            recall = 1.0
        else:
            hits = confident_hits(kb.search(item.question, k=k), share, limit, min_score)
            passages = passages_from_hits(hits)
            recall = float(any(h.document.path == item.path for h in hits))
        max_tokens = 64 if style == "short" else 512
        readings: list = []
        try:
            if apart and len(passages) > 1:  # as the request path does for read_passages = "each"
                started = time.perf_counter()
                readings = read_each(item.question, passages, [h.score for h in hits], backend,
                                     max_tokens=max_tokens, style=style)
                kept = best_reading(readings)
                completion = combined_completion(readings, kept, started)
                passages = readings[kept].request.passages
            else:
                # As the request path does: with no passage left, no model is asked (RequestPath.NO_PASSAGES).
                request = request_for_passages(item.question, passages, style=style, max_tokens=max_tokens)
                completion = backend.complete(request) if passages else no_passage_completion()
        except BackendError as exc:
            print(f"  {item.question[:30]}: {exc}", file=sys.stderr)
            continue
        pred = clean(completion.text)
        report = check_faithfulness(completion.text, passages)
        rows.append({"em": em(pred, item.golds), "f1": f1(pred, item.golds), "contains": contains(pred, item.golds),
                     "len": len(pred), "latency": completion.latency_s, "tokens": completion.completion_tokens,
                     "sentences": len(report.sentences), "unsupported": len(report.unsupported),
                     "not_found": float(report.not_found), "recall": recall, "half": item.half})
        if dump is not None:  # one JSON line per answer, to read what went wrong
            dump.write(json.dumps({"backend": backend.info().model, "mode": mode, "question": item.question,
                                   "golds": item.golds, "answer": completion.text, "passages": len(passages),
                                   "gold_retrieved": bool(recall), "f1": rows[-1]["f1"],
                                   # read apart: every reading, to try another selection rule offline
                                   "readings": [{"gold": h.document.path == item.path, "probability": r.probability,
                                                 "answer": r.completion.text, "answer_logprob": r.answer_logprob,
                                                 "not_found_logprob": r.not_found_logprob, "context": r.context,
                                                 "together": r.together}
                                                for r, h in zip(readings, hits)]},
                                  ensure_ascii=False) + "\n")
    return summarise(rows)


def summarise(rows: list[dict]) -> dict:
    if not rows:
        return {"n": 0}
    n = len(rows)
    lat = sorted(r["latency"] for r in rows)
    sentences = sum(r["sentences"] for r in rows)
    out = {"n": n, **{m: round(sum(r[m] for r in rows) / n, 4) for m in ("em", "f1", "contains", "not_found", "recall")},
           "avg_chars": round(sum(r["len"] for r in rows) / n, 1),
           "latency_p50_s": round(statistics.median(lat), 4),
           "latency_p95_s": round(lat[min(n - 1, int(0.95 * n))], 4),
           "tokens_per_s": round(sum(r["tokens"] for r in rows) / max(1e-9, sum(r["latency"] for r in rows)), 1),
           "unsupported_sentence_rate": round(sum(r["unsupported"] for r in rows) / sentences, 4) if sentences else 0.0}
    test = [r for r in rows if r["half"] == "test"]
    if test and len(test) < n:
        out["test_half"] = {m: round(sum(r[m] for r in test) / len(test), 4) for m in ("em", "f1", "contains")}
        out["test_half"]["n"] = len(test)
    return out


def line(name: str, mode: str, s: dict) -> str:
    return (f"{name:12s} {mode:4s} n={s['n']:5d}  EM {s['em']:.3f}  F1 {s['f1']:.3f}  contains {s['contains']:.3f}  "
            f"chars {s['avg_chars']:6.1f}  p50 {s['latency_p50_s']:.3f}s p95 {s['latency_p95_s']:.3f}s  "
            f"{s['tokens_per_s']:.1f} tok/s  unsupported {s['unsupported_sentence_rate']:.3f}  "
            f"not-found {s['not_found']:.3f}  retrieved-gold {s['recall']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--backends", default="extractive")
    ap.add_argument("--limit", type=int, default=60, help="questions for LLM backends (a fixed random sample)")
    ap.add_argument("--extractive-limit", type=int, default=0,
                    help="questions for the extractive backend, a fixed random sample (0: all)")
    ap.add_argument("-k", type=int, default=3, help="passages retrieved in the open-domain setting")
    ap.add_argument("--min-relative-score", type=float, default=RetrievalConfig().min_relative_score,
                    help="of the k, keep passages scoring at least this share of the best (0: all k)")
    ap.add_argument("--min-score", type=float, default=RetrievalConfig().min_score,
                    help="no passage at all when the best hit's probability is under this (0: off)")
    ap.add_argument("--modes", default="rc,open", help="rc, open or both (comma-separated)")
    ap.add_argument("--embedder", default=RetrievalConfig().embedder)
    ap.add_argument("--seed", type=int, default=0, help="which fixed random sample the LLMs answer")
    ap.add_argument("--dump", type=Path, help="write every answer here as JSON lines")
    ap.add_argument("--store", type=Path, help="keep the open-domain index here; re-runs reuse it")
    ap.add_argument("--style", choices=("short", "grounded"), default="short",
                    help="the LLMs' prompt: short answers (scored here) or the grounded one `sekisho ask` sends")
    ap.add_argument("--read-passages", choices=("together", "each"),
                    help="how the GGUF presets read their passages (default: together)")
    args = ap.parse_args()
    if not args.dataset.exists():
        sys.exit(f"error: {args.dataset}: JSQuAD file not found (pass its path)")
    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip() in ("rc", "open")]
    items, paragraphs = load(args.dataset)
    sample = random.Random(args.seed).sample(items, min(args.limit, len(items)))
    settings = settings_with(names, args.read_passages)
    workdir = tempfile.TemporaryDirectory()
    kb = build_kb(paragraphs, args.store, Path(workdir.name), args.embedder)
    kb.search("ウォームアップ", k=1)
    min_score = args.min_score if kb.scores_are_probabilities else 0.0  # as the request path applies it
    bandwidth = None
    results: dict[str, dict] = {}
    dump = args.dump.open("w", encoding="utf-8") if args.dump else None
    for name in names:
        backend = open_backend(settings, name)
        info = backend.info()
        extractive = info.kind == "extractive"
        subset = random.Random(1).sample(items, args.extractive_limit) if args.extractive_limit else items
        chosen = subset if extractive else sample
        style = "grounded" if extractive else args.style
        result: dict = {"kind": info.kind, "model": info.model}
        if not extractive:
            backend.check()
        for mode in modes:
            result[mode] = run(backend, chosen, mode, kb, args.k, args.min_relative_score, min_score, style, dump,
                               settings.models.backends[name])
            print(line(name, mode, result[mode]), flush=True)
        if extractive and len(chosen) > len(sample):
            # The LLMs' sample, so every backend is compared on the same questions too.
            for mode in modes:
                result[f"{mode}_llm_sample"] = run(backend, sample, mode, kb, args.k, args.min_relative_score, min_score,
                                                   style, dump)
                print(line(name, mode + "*", result[f"{mode}_llm_sample"]) + "  (* the LLM sample)")
        if info.kind == "llama.cpp":
            bandwidth = bandwidth or copy_bandwidth_gbs()
            model_bytes = Path(settings.models.backends[name].model).stat().st_size
            rate = decode_rate(backend)
            bound = bandwidth * 1e9 / model_bytes
            result["decode"] = {"tokens_per_s": round(rate, 2), "bandwidth_gbs": round(bandwidth, 2),
                                "model_bytes": model_bytes, "bound_tokens_per_s": round(bound, 2),
                                "ratio_to_bound": round(rate / bound, 3)}
            print(f"{name:12s} decode {rate:.1f} tok/s; bandwidth {bandwidth:.1f} GB/s / {model_bytes / 1e9:.2f} GB "
                  f"= bound {bound:.1f} tok/s; ratio {rate / bound:.2f}")
        if "rc" in result and "open" in result and result["rc"].get("n"):
            result["open_minus_rc_f1"] = round(result["open"]["f1"] - result["rc"]["f1"], 4)
        results[name] = result
    kb.close()
    if dump is not None:
        dump.close()
    print(json.dumps({"bench": "answer_jsquad", "k": args.k, "min_relative_score": args.min_relative_score, "min_score": min_score, "embedder": args.embedder, "llm_questions": len(sample),
                      "backends": results}, ensure_ascii=False))


if __name__ == "__main__":
    main()
