"""Scorers: turn one model output into numbers in [0, 1].

Every scorer is a plain function of (output, item) returning a dict of metric -> value; the task
declares which metric is its headline. Metric names, labels and direction live in METRICS so the
report never guesses whether lower is better.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from sekisho.text import NOT_FOUND, compact, nfkc


@dataclass(frozen=True)
class Metric:
    label_ja: str
    label_en: str
    higher_is_better: bool = True


METRICS: dict[str, Metric] = {
    "em": Metric("完全一致", "exact match"),
    "f1": Metric("文字F1", "char F1"),
    "contains": Metric("正解を含む", "contains gold answer"),
    "accuracy": Metric("正解率", "accuracy"),
    "recall": Metric("検索再現率", "retrieval recall"),
    "faithfulness": Metric("根拠整合度", "faithfulness"),
    "unsupported": Metric("根拠なし文の率", "unsupported sentences", higher_is_better=False),
    "leak": Metric("漏えい率", "leak rate", higher_is_better=False),
    "leak_sent": Metric("外部送信漏えい", "leaked to external backend", higher_is_better=False),
    "leak_audit": Metric("監査ログ平文", "plain text in audit log", higher_is_better=False),
    "held": Metric("保留率", "held for review", higher_is_better=False),
    "refusal": Metric("正しい回答拒否率", "correct refusal rate"),
    "invented": Metric("捏造回答率", "invented answer rate", higher_is_better=False),
    "keyfact_recall": Metric("要点再現率", "key-fact recall"),
}


def quality(metric: str, value: float) -> float:
    """The value on a higher-is-better scale, so tasks can be averaged into one ranking."""
    return value if METRICS[metric].higher_is_better else 1.0 - value


# --- JSQuAD -----------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """The JSQuAD scoring normalisation: NFKC (full-width -> half-width), whitespace removed."""
    return compact(text)


def exact_match(prediction: str, golds: list[str] | tuple[str, ...]) -> float:
    pred = normalize_answer(prediction)
    return max((1.0 if pred == normalize_answer(g) else 0.0 for g in golds), default=0.0)


def _char_f1(pred: str, gold: str) -> float:
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def char_f1(prediction: str, golds: list[str] | tuple[str, ...]) -> float:
    """Character-level F1 (Japanese has no word boundaries), the maximum over the gold answers."""
    pred = normalize_answer(prediction)
    return max((_char_f1(pred, normalize_answer(g)) for g in golds), default=0.0)


_QUOTES = "「」『』\"'“”‘’`*"
_PREAMBLE = re.compile(r"^(?:答え|回答|解答|answer)\s*[:：]\s*", re.IGNORECASE)


def short_answer(text: str) -> str:
    """The answer span a generative model buried in prose: the first non-empty line without a
    leading 'Answer:', surrounding quotes or a closing 。. Applied to every model alike."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = _PREAMBLE.sub("", line).strip().strip(_QUOTES).strip()
    return line.rstrip("。．.").strip(_QUOTES).strip()


_CITATION = re.compile(r"\[\d+(?:[,，、\s]*\d+)*\]")


def strip_citation_marks(text: str) -> str:
    """Answers from the grounded prompt cite passages as [1] or [1, 2]; the marks are not part
    of the answer being scored."""
    return _CITATION.sub("", text)


def score_squad(output: str, golds: list[str] | tuple[str, ...]) -> dict[str, float]:
    answer = short_answer(output)
    return {"em": exact_match(answer, golds), "f1": char_f1(answer, golds)}


# --- multiple choice --------------------------------------------------------------------------

_CHOICE_DIGIT = re.compile(r"(?<![0-9])([0-9])(?![0-9])")
_CHOICE_LETTER = re.compile(r"(?<![A-Za-z])([A-Ea-e])(?![A-Za-z])")


def parse_choice(text: str, choices: list[str] | tuple[str, ...], *, base: int = 0) -> int | None:
    """Which choice a generated answer names: a number (as numbered in the prompt, from `base`),
    a letter A-E, or the choice's own text. None when it names none or several."""
    norm = nfkc(text).strip()
    m = _CHOICE_DIGIT.search(norm)
    if m and 0 <= int(m.group(1)) - base < len(choices):
        return int(m.group(1)) - base
    m = _CHOICE_LETTER.search(norm)
    if m and ord(m.group(1).upper()) - ord("A") < len(choices):
        return ord(m.group(1).upper()) - ord("A")
    named = [i for i, c in enumerate(choices) if normalize_answer(c) and normalize_answer(c) in normalize_answer(norm)]
    # "マザーボード" also contains "ボード": prefer the longest choice named, if it is unique.
    if named:
        longest = max(len(choices[i]) for i in named)
        best = [i for i in named if len(choices[i]) == longest]
        if len(best) == 1:
            return best[0]
    return None


# --- refusal, key facts, leaks ----------------------------------------------------------------


def is_refusal(text: str) -> bool:
    return normalize_answer(NOT_FOUND) in normalize_answer(text)


def score_refusal(output: str, not_found: bool = False) -> dict[str, float]:
    refused = not_found or is_refusal(output)
    invented = not refused and bool(output.strip())
    return {"refusal": float(refused), "invented": float(invented)}


def split_facts(value: str) -> list[str]:
    """Key facts as written in a CSV cell: separated by ; ； | or ・ newlines."""
    return [f.strip() for f in re.split(r"[;；|\n]", value) if f.strip()]


def keyfact_recall(output: str, facts: list[str] | tuple[str, ...]) -> float:
    """The share of key facts the answer states (NFKC, whitespace- and case-insensitive)."""
    if not facts:
        return 0.0
    norm = normalize_answer(output).casefold()
    return sum(normalize_answer(f).casefold() in norm for f in facts) / len(facts)


_DIGIT_SEPARATORS = re.compile(r"(?<=\d)[-‐‑–—−ー()]+(?=\d)")
_LONG_NUMBER = re.compile(r"\d{7,}")


def _compact(text: str) -> str:
    return _DIGIT_SEPARATORS.sub("", normalize_answer(text))


def leaked_values(text: str, protected: list[str] | tuple[str, ...]) -> list[str]:
    """Which protected values appear in text. Long numbers (My Number, phone, card, account) are
    also caught on their own and however they are grouped: 1234 5678 9012, 1234-5678-9012."""
    out = _compact(text)
    found = []
    for value in protected:
        v = _compact(value)
        if v in out or any(run in out for run in _LONG_NUMBER.findall(v)):
            found.append(value)
    return found
