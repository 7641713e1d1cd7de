"""Is each sentence of an answer supported by the passages it cites?

A sentence is supported by a passage when (a) most of its content, weighted by rarity, occurs in
the passage (character bigrams for Japanese, words for English; IDF over the sentences of all
retrieved passages, so the topic word every passage repeats proves little), (b) it brings in no
run of new content the passage does not have, and (c) every number, date and named entity it
states occurs in the passage. (b) and (c) catch the failure that matters most in a grounded
answer: the right sentence with the wrong name or figure. Thresholds are chosen on the dev half
of bench/faithfulness_jsquad.py and reported on the other half.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sekisho.models.protocol import Passage
from sekisho.text import (
    CITATION_RE,
    LATIN_WORD,
    NOT_FOUND,
    citation_numbers,
    compact,
    content_runs,
    content_units,
    english_stem,
    match_units,
    named_entities,
    numbers,
    sentences,
    split_sentences,
    western_years,
)

# Chosen on the dev split of bench/faithfulness_jsquad.py (see docs/benchmarks.md): dev F1 is flat
# from 0.3 to 0.6 because the hard rules (numbers, names, new terms) catch most wrong answers; of
# the tied values the stricter one ships.
SUPPORT_THRESHOLD = 0.4
MAX_NOVEL_RUN = 2  # new bigrams in a row inside a term: a new name or figure, not a rewording
MIN_NEW_TERM = 2  # a term this long (characters) that the passage lacks entirely is a new claim



@dataclass(frozen=True)
class SentenceSupport:
    text: str  # the sentence without citation markers
    cited: tuple[int, ...]
    support: float  # 0..1 against the best cited passage (all passages when it cites none)
    supported: bool
    best_passage: int | None  # the passage that supports it best
    missing: tuple[str, ...] = ()  # numbers / entities / new terms absent from the best passage
    bad_citations: tuple[int, ...] = ()  # cited passages that do not support this sentence


@dataclass(frozen=True)
class FaithfulnessReport:
    sentences: tuple[SentenceSupport, ...]
    score: float  # length-weighted share of supported content, 0..1
    invalid_citations: tuple[int, ...] = ()  # numbers that name no passage
    not_found: bool = False  # the answer is the 資料に記載がありません answer

    @property
    def unsupported(self) -> list[SentenceSupport]:
        return [s for s in self.sentences if not s.supported]

    @property
    def bad_citations(self) -> list[tuple[str, int]]:
        return [(s.text, n) for s in self.sentences for n in s.bad_citations]

    @property
    def uncited(self) -> bool:
        """An answer from the documents that cites none of them: each sentence may be found in
        some passage, but the answer does not say where (a model told by a document to drop its
        citations writes just that), so nobody can check it against its source."""
        return not self.not_found and bool(self.sentences) and not any(s.cited for s in self.sentences)

    @property
    def faithful(self) -> bool:
        return not self.unsupported and not self.invalid_citations and not self.bad_citations and not self.uncited


@dataclass
class _Evidence:
    passage: Passage
    text: str  # title + body, normalised
    units: set[str]
    numbers: set[str] = field(default_factory=set)


def is_not_found(answer_text: str) -> bool:
    return compact(CITATION_RE.sub("", answer_text)).rstrip("。.") == NOT_FOUND


def answer_sentences(answer_text: str) -> list[tuple[str, tuple[int, ...]]]:
    """(sentence without markers, the passages it cites). A marker after the full stop
    ('…です。[1]') belongs to the sentence before it."""
    out: list[tuple[str, list[int]]] = []
    for s, e in split_sentences(answer_text):
        raw = answer_text[s:e]
        cited = [n for m in CITATION_RE.finditer(raw) for n in citation_numbers(m.group(1))]
        text = CITATION_RE.sub("", raw).strip()
        if not compact(text).strip("。.、,") and out:
            out[-1][1].extend(cited)
        elif text:
            out.append((text, cited))
    return [(t, tuple(dict.fromkeys(c))) for t, c in out]


def check_faithfulness(
    answer_text: str,
    passages: Sequence[Passage],
    *,
    threshold: float = SUPPORT_THRESHOLD,
    min_new_term: int = MIN_NEW_TERM,
) -> FaithfulnessReport:
    """Judge every sentence of `answer_text` against the passages it cites (all passages when it
    cites none). `threshold` is the IDF-weighted share of a sentence's content a passage must hold;
    a term of `min_new_term`+ characters absent from the passage makes the sentence unsupported."""
    if is_not_found(answer_text):
        return FaithfulnessReport((), 1.0, not_found=True)
    by_n = {p.n: p for p in passages}
    evidence = {p.n: _evidence(p) for p in passages}
    all_sentence_units = [content_units(s) for p in passages for s in sentences(p.text)]
    n_docs = max(1, len(all_sentence_units))
    df = Counter(u for units in all_sentence_units for u in units)

    def idf(unit: str) -> float:
        return math.log((n_docs + 1) / (df[unit] + 0.5))

    results: list[SentenceSupport] = []
    invalid: list[int] = []
    for text, cited in answer_sentences(answer_text):
        invalid.extend(n for n in cited if n not in by_n and n not in invalid)
        valid_cited = [n for n in cited if n in by_n]
        candidates = valid_cited or list(by_n)
        judged = {n: _judge(text, evidence[n], idf, min_new_term) for n in candidates}
        if judged:
            best = max(judged, key=lambda n: (judged[n][0] and not judged[n][1], judged[n][0]))
            support, missing = judged[best]
        else:
            best, support, missing = None, 0.0, ("(資料なし)",)
        supported = support >= threshold and not missing
        bad = tuple(n for n in valid_cited if judged[n][0] < threshold or judged[n][1]) if supported else ()
        results.append(SentenceSupport(text, cited, round(support, 3), supported, best, tuple(missing), bad))
    weights = [len(compact(r.text)) for r in results]
    score = sum(w * (r.support if r.supported else 0.0) for w, r in zip(weights, results)) / max(1, sum(weights))
    return FaithfulnessReport(tuple(results), round(score, 3), tuple(invalid))


def _evidence(p: Passage) -> _Evidence:
    whole = western_years(f"{p.title}\n{p.text}")
    return _Evidence(p, compact(whole), content_units(whole) | match_units(whole), numbers(whole))


def _judge(
    sentence: str, ev: _Evidence, idf: Callable[[str], float], min_new_term: int
) -> tuple[float, tuple[str, ...]]:
    sentence = western_years(sentence)
    units = content_units(sentence)
    if not units:
        return 1.0, ()
    total = math.fsum(idf(u) for u in units)
    support = math.fsum(idf(u) for u in units if u in ev.units) / total if total else 1.0
    missing = [n for n in sorted(numbers(sentence)) if n not in ev.numbers]
    missing += [e for e in sorted(named_entities(sentence)) if e not in ev.text]
    missing += _novel_runs(sentence, ev.units, min_new_term)
    missing += [w for w in LATIN_WORD.findall(sentence) if w[0].isupper() and english_stem(w.lower()) not in ev.units]
    return support, tuple(dict.fromkeys(missing))


def _novel_runs(sentence: str, passage_units: set[str], min_new_term: int) -> list[str]:
    """Terms of the sentence (runs of kanji, katakana and digits) the passage never says: a run
    none of whose bigrams the passage has, or MAX_NOVEL_RUN new bigrams in a row inside a longer
    run. Hiragana between terms are left out: endings and particles may be reworded freely."""
    novel: list[str] = []
    for run in content_runs(sentence):
        grams = [run[i : i + 2] for i in range(len(run) - 1)]
        if len(run) >= min_new_term and grams and all(g not in passage_units for g in grams):
            novel.append(run)
            continue
        streak = 0
        for i, gram in enumerate(grams):
            streak = streak + 1 if gram not in passage_units else 0
            if streak == MAX_NOVEL_RUN:
                novel.append(run[i + 1 - MAX_NOVEL_RUN : i + 2])
    return novel
