"""Second stage of hybrid search: re-score the top of the fused list with a few explainable features.

Reciprocal-rank fusion only sees ranks. Looking at the candidates themselves separates a passage
that contains the question's phrases from one that merely shares a few frequent words: how many of
the query's terms and character pairs it contains, the longest stretch of the question it contains
verbatim, and how strong each retriever's own score was relative to its best. A logistic model over
these features (weights below) orders the top `depth` fused candidates; the rest keep their order
behind them. Costs a few milliseconds: substring tests over `depth` passages of a few hundred
characters, no model call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sekisho.retrieval.tokenize import char_bigrams
from sekisho.text import nfkc

FEATURES: tuple[str, ...] = (
    "fused",  # the RRF score the candidate came with
    "lexical_rr",  # 1 / BM25 rank (0 when BM25 did not return it)
    "dense_rr",  # 1 / dense rank (0 when absent)
    "bm25_rel",  # BM25 score / the best BM25 score for this query (0 when absent)
    "cosine_gap",  # cosine - the best cosine for this query (the worst returned when absent)
    "term_cover",  # share of the query's distinct analyser terms found in the passage
    "gram_cover",  # share of the query's distinct character pairs found in the passage
    "lcs_ratio",  # longest query substring found verbatim in the passage / query length
)


@dataclass(frozen=True)
class Rescorer:
    """Logistic weights over FEATURES (same order) and the number of fused candidates re-scored.

    depth=0 turns re-scoring off (plain fusion)."""

    weights: tuple[float, ...]
    bias: float
    depth: int = 30

    def __post_init__(self) -> None:
        if len(self.weights) != len(FEATURES):
            raise ValueError(f"a Rescorer needs {len(FEATURES)} weights ({', '.join(FEATURES)}), got {len(self.weights)}")


def _normal(text: str) -> str:
    return "".join(nfkc(text).lower().split())


def longest_common_substring(query: str, text: str) -> int:
    """Length of the longest substring of `query` that occurs in `text`. Grows the best length
    found so far from each start, so it costs about len(query) substring searches in C."""
    best = 0
    for i in range(len(query)):
        length = best + 1
        while i + length <= len(query) and query[i:i + length] in text:
            best = length
            length += 1
    return best


def features(query: str, terms: Sequence[str], candidates: Sequence[tuple[str, float]],
             lexical: Sequence[tuple[str, float]], dense: Sequence[tuple[str, float]],
             passages: dict[str, str]) -> np.ndarray:
    """(len(candidates), len(FEATURES)) for fused `candidates` (chunk id, RRF score). `passages`
    maps chunk id to the text that was indexed for it (title, headings, body)."""
    q = _normal(query)
    query_terms = {_normal(t) for t in terms if t.strip()}
    query_grams = set(char_bigrams(q))
    lexical_rank = {cid: i for i, (cid, _) in enumerate(lexical, 1)}
    dense_rank = {cid: i for i, (cid, _) in enumerate(dense, 1)}
    bm25 = dict(lexical)
    cosine = dict(dense)
    best_bm25 = max((s for _, s in lexical), default=0.0)
    best_cos = max((s for _, s in dense), default=0.0)
    worst_cos = min((s for _, s in dense), default=0.0)
    out = np.zeros((len(candidates), len(FEATURES)), dtype=np.float64)
    for row, (cid, fused) in enumerate(candidates):
        text = _normal(passages.get(cid, ""))
        out[row] = (
            fused,
            1.0 / lexical_rank[cid] if cid in lexical_rank else 0.0,
            1.0 / dense_rank[cid] if cid in dense_rank else 0.0,
            bm25[cid] / best_bm25 if cid in bm25 and best_bm25 > 0 else 0.0,
            cosine.get(cid, worst_cos) - best_cos,
            sum(t in text for t in query_terms) / len(query_terms) if query_terms else 0.0,
            # A pair of letters from a non-ASCII run is in the text only inside such a run, so a
            # substring test equals membership in the text's own pairs, without listing them.
            sum(g in text for g in query_grams) / len(query_grams) if query_grams else 0.0,
            longest_common_substring(q, text) / len(q) if q else 0.0,
        )
    return out


def rescore(rescorer: Rescorer, candidates: Sequence[tuple[str, float]], matrix: np.ndarray) -> list[tuple[str, float]]:
    """The first `rescorer.depth` candidates ordered by the model's probability (returned as the
    score), followed by the rest in their fused order with scores below every re-scored one."""
    head = list(candidates[: rescorer.depth])
    if not head:
        return []
    logits = matrix[: len(head)] @ np.asarray(rescorer.weights) + rescorer.bias
    probabilities = 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))
    order = sorted(range(len(head)), key=lambda i: -probabilities[i])
    ranked = [(head[i][0], float(probabilities[i])) for i in order]
    floor = min(p for _, p in ranked)
    tail = candidates[rescorer.depth:]
    # Below the last re-scored candidate, in fused order: a score still decreases with rank.
    ranked += [(cid, floor * math.exp(-(i + 1))) for i, (cid, _) in enumerate(tail)]
    return ranked


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iterations: int = 50) -> tuple[np.ndarray, float]:
    """Weights and bias of an L2-regularised logistic regression by Newton's method (each row
    judged alone; fit_listwise uses it to calibrate its scores)."""
    design = np.hstack([x, np.ones((x.shape[0], 1))])
    w = np.zeros(design.shape[1])
    penalty = l2 * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0  # the bias is not shrunk
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -50, 50)))
        gradient = design.T @ (p - y) + penalty @ w
        hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def fit_listwise(groups: Sequence[tuple[np.ndarray, np.ndarray]], l2: float = 1e-3,
                 iterations: int = 100) -> tuple[np.ndarray, float]:
    """Weights and bias for a Rescorer from each query's candidates: `groups` holds one (features,
    labels) pair per query, a row per candidate, label 1 for a right passage.

    The weights maximise the likelihood that the right passage wins among its own query's
    candidates (a conditional logit: softmax over each group; Newton's method with backtracking).
    That is the re-scorer's job, and it does it better than judging every candidate alone:
    JSQuAD held-out R@1 0.939 -> 0.949 with the same features (docs/benchmarks.md). A softmax is
    blind to anything shared by a query's candidates, so a scale and a bias are then fitted on all
    rows (Platt scaling) to make sigmoid(x . w + b) a probability comparable across queries,
    which `answer.confident_hits` relies on. Benchmarks call this on their tuning split only."""
    data = [(x, y / y.sum()) for x, y in groups if y.sum() > 0]
    if not data:
        raise ValueError("fit_listwise needs at least one group with a right candidate")
    dim = data[0][0].shape[1]

    def objective(w: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        loss, gradient, hessian = 0.5 * l2 * (w @ w), l2 * w, l2 * np.eye(dim)
        for x, target in data:
            z = x @ w
            top = z.max()
            e = np.exp(z - top)
            p = e / e.sum()
            loss += top + math.log(e.sum()) - target @ z
            gradient += x.T @ (p - target)
            mean = x.T @ p
            hessian += (x * p[:, None]).T @ x - np.outer(mean, mean)
        return loss, gradient, hessian

    w = np.zeros(dim)
    loss, gradient, hessian = objective(w)
    for _ in range(iterations):
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while True:  # a full Newton step can overshoot on nearly separable groups
            candidate = w - scale * step
            new_loss, new_gradient, new_hessian = objective(candidate)
            if new_loss <= loss or scale < 1e-6:
                break
            scale /= 2
        w, loss, gradient, hessian = candidate, new_loss, new_gradient, new_hessian
        if np.abs(scale * step).max() < 1e-8:
            break
    z = np.concatenate([x @ w for x, _ in groups])
    labels = np.concatenate([y for _, y in groups])
    (slope,), bias = fit_logistic(z[:, None], labels, l2=0.0)
    if slope <= 0:
        raise ValueError("fit_listwise: the fitted scores do not rise with relevance; check the labels")
    return slope * w, bias
