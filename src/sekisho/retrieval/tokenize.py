"""Index terms for BM25: Japanese morphological analysis (SudachiPy) with English handled alongside.

The same function produces terms for chunks and for queries, so whatever normalisation it does
(NFKC width folding, Sudachi's normalised forms such as 附属→付属, lower-casing, English
Snowball stemming) matches
both sides. Particles, auxiliary verbs, symbols and whitespace carry no topic and are dropped: they
would otherwise dominate the query and match nearly every chunk. The analyser's split mode and term
form were chosen by measurement on JSQuAD (docs/benchmarks.md, ## Retrieval).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from sekisho.text import SPLIT_MODES, english_stem, nfkc, pieces, tokenizer

# Part-of-speech (first level, as Sudachi names them) whose words never decide relevance.
DROPPED_POS = frozenset({"助詞", "助動詞", "補助記号", "記号", "空白"})

# Short English function words: the Japanese side drops its equivalents by part of speech.
ENGLISH_STOPWORDS = frozenset(
    "a an the and or of to in on at by for with from as is are was were be been being it its this "
    "that these those do does did what which who whom when where why how i you he she we they".split()
)

_ASCII_WORD = re.compile(r"[0-9a-z]+(?:['.][0-9a-z]+)*")
# A run of letters/digits outside ASCII (kanji, kana, hangul...): where character pairs are cut.
_CJK_RUN = re.compile(r"[^\W\x00-\x7f_]+")


@dataclass(frozen=True)
class Term:
    term: str  # the index term
    start: int  # character offsets of the word in the analysed text
    end: int


class Analyzer:
    """SudachiPy with a fixed split mode and term form. Thread-safe: each thread analyses with its
    own tokenizer over the one shared dictionary (sekisho.text.tokenizer)."""

    def __init__(self, mode: str = "B", form: str = "normalized", dropped_pos: frozenset[str] = DROPPED_POS):
        if mode not in SPLIT_MODES:
            raise ValueError(f"unknown Sudachi split mode {mode!r} (A, B or C)")
        if form not in ("normalized", "surface", "dictionary"):
            raise ValueError(f"unknown term form {form!r} (normalized, surface or dictionary)")
        self.mode = mode
        self.form = form
        self.dropped_pos = dropped_pos

    def terms(self, text: str) -> list[Term]:
        """Index terms with their offsets in `text` (offsets refer to `text` as given, which
        highlighting relies on; Sudachi folds width and case internally)."""
        out: list[Term] = []
        analyse = tokenizer(self.mode).tokenize
        for base, piece in pieces(text):
            for m in analyse(piece):
                pos = m.part_of_speech()[0]
                if pos in self.dropped_pos:
                    continue
                term = self._term(m)
                if term:
                    out.append(Term(term, base + m.begin(), base + m.end()))
        return out

    def _term(self, m) -> str | None:
        surface = nfkc(m.surface()).lower().strip()
        if not surface:
            return None
        if _ASCII_WORD.fullmatch(surface):
            # Sudachi's normalised form turns English into katakana (running -> ランニング); keep
            # English as English so English queries meet English text.
            if surface in ENGLISH_STOPWORDS:
                return None
            return english_stem(surface)
        if self.form == "normalized":
            term = m.normalized_form()
        elif self.form == "dictionary":
            term = m.dictionary_form()
        else:
            term = surface
        return nfkc(term).lower().strip() or None

    def tokenize(self, text: str) -> list[str]:
        return [t.term for t in self.terms(text)]

    def index_terms(self, text: str) -> list[str]:
        """What the BM25 index holds for `text`, and what a query searches it with: the Sudachi
        terms followed by the character pairs (see char_bigrams)."""
        return self.tokenize(text) + char_bigrams(text)


DEFAULT_MODE = "B"
DEFAULT_FORM = "normalized"


@lru_cache(maxsize=8)
def analyzer(mode: str = DEFAULT_MODE, form: str = DEFAULT_FORM) -> Analyzer:
    """The shared analyser for a configuration (loading a Sudachi dictionary takes a moment)."""
    return Analyzer(mode, form)


def tokenize(text: str) -> list[str]:
    """Index terms of `text` with the default analyser."""
    return analyzer().tokenize(text)


def char_bigrams(text: str) -> list[str]:
    """Overlapping character pairs inside each run of non-ASCII letters and digits (NFKC,
    lower-cased). They are indexed beside the Sudachi terms: a question that copies a phrase the
    analyser splits differently from the passage (a compound, a rare name, an unknown word) still
    shares its pairs. Added to the Sudachi terms they raised BM25 R@1 on JSQuAD from 0.900 to 0.916
    (docs/benchmarks.md). ASCII is left to the English path: pairs of Latin letters are noise."""
    out: list[str] = []
    for run in _CJK_RUN.findall(nfkc(text).lower()):
        out += [run[i:i + 2] for i in range(len(run) - 1)]
    return out
