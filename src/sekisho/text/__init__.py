"""Text utilities on the ground floor: every package above imports these, none of them imports
anything of sekisho but each other.

normalisation (`nfkc`, `clean` for indexing, `compact` for matching), sentences, English
stemming, kanji numerals, eras and dates, numbers a text states, Sudachi morphemes, the citation
and not-found conventions of grounded answers, and the units answers are matched by.
"""

from sekisho.text.dates import DATE_RE, ERAS, era_to_gregorian, make_date, parse_date, parse_day, western_years
from sekisho.text.grounding import CITATION_RE, NOT_FOUND, citation_numbers, is_instruction, strip_citations
from sekisho.text.matching import (
    LATIN_WORD,
    answer_context,
    content_runs,
    content_units,
    match_units,
    question_content,
    without_interrogatives,
)
from sekisho.text.morphemes import SPLIT_MODES, dictionary, morphemes, named_entities, pieces, tokenizer
from sekisho.text.normalize import clean, compact, nfkc
from sekisho.text.numbers import numbers
from sekisho.text.numerals import KANJI_DIGITS, kanji_number
from sekisho.text.sentences import sentence_spans, sentences, split_sentences, trim_span
from sekisho.text.stem import english_stem

__all__ = [
    "CITATION_RE", "DATE_RE", "SPLIT_MODES", "ERAS", "KANJI_DIGITS", "LATIN_WORD", "NOT_FOUND", "answer_context", "citation_numbers",
    "clean", "compact", "content_runs", "content_units", "dictionary", "english_stem", "era_to_gregorian", "is_instruction",
    "kanji_number", "make_date", "match_units", "morphemes", "named_entities", "nfkc", "numbers", "parse_date",
    "parse_day", "pieces", "question_content", "sentence_spans", "sentences", "split_sentences", "strip_citations",
    "tokenizer", "trim_span", "western_years", "without_interrogatives",
]
