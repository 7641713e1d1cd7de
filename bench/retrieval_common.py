"""Shared by the retrieval benchmarks: JSQuAD loading, the held-out split and ranking metrics."""

from __future__ import annotations

import json
import resource
import statistics
import unicodedata
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSQUAD = REPO.parent / "shared" / "data" / "jsquad" / "valid-v1.3.json"


@dataclass(frozen=True)
class Paragraph:
    path: str  # a stable document path: jsquad/<article>/<paragraph index>
    title: str
    body: str


@dataclass(frozen=True)
class Question:
    text: str
    gold: str  # Paragraph.path
    article: str


def load_jsquad(path: Path) -> tuple[list[Paragraph], list[Question]]:
    """Every distinct paragraph (title before ' [SEP] ', body after) and every question with the
    path of its paragraph. Identical contexts collapse into one paragraph."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    paragraphs: dict[str, Paragraph] = {}
    questions: list[Question] = []
    for a, article in enumerate(data):
        for p, para in enumerate(article["paragraphs"]):
            context = para["context"]
            title, sep, body = context.partition(" [SEP] ")
            if not sep:
                title, body = article["title"], context
            if context not in paragraphs:
                paragraphs[context] = Paragraph(f"jsquad/{a:03d}/{p:03d}", title.strip(), body.strip())
            gold = paragraphs[context].path
            questions += [Question(qa["question"], gold, article["title"]) for qa in para["qas"]]
    return list(paragraphs.values()), questions


def halves(questions: list[Question]) -> tuple[list[int], list[int]]:
    """Split question indices by article (alternate articles in title order): fusion is tuned on
    the first half and reported on the second, which shares no article with it."""
    articles = sorted({q.article for q in questions})
    tune_articles = set(articles[0::2])
    tune = [i for i, q in enumerate(questions) if q.article in tune_articles]
    test = [i for i, q in enumerate(questions) if q.article not in tune_articles]
    return tune, test


def dedupe(ranked_paths: list[str]) -> list[str]:
    """A ranked list of chunk-level document paths reduced to distinct documents, order kept."""
    return list(dict.fromkeys(ranked_paths))


def metrics(rankings: list[list[str]], golds: list[str]) -> dict[str, float]:
    """Recall@1/5/10 and MRR@10 of the gold document in each ranked list of document paths."""
    n = len(golds)
    r1 = r5 = r10 = mrr = 0.0
    for ranked, gold in zip(rankings, golds, strict=True):
        top = ranked[:10]
        if gold in top:
            rank = top.index(gold) + 1
            r1 += rank == 1
            r5 += rank <= 5
            r10 += 1
            mrr += 1 / rank
    return {"R@1": r1 / n, "R@5": r5 / n, "R@10": r10 / n, "MRR@10": mrr / n}


def fmt(m: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.3f}" for k, v in m.items())


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bigrams(text: str) -> list[str]:
    """The naive baseline's terms: every overlapping pair of characters, whitespace removed."""
    s = "".join(unicodedata.normalize("NFKC", text).lower().split())
    return [s[i:i + 2] for i in range(len(s) - 1)] or ([s] if s else [])
