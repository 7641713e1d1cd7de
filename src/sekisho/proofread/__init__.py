"""公用文校正: an official-style proofreader for Japanese over Sudachi's morphological analysis.

    from sekisho.proofread import proofread, apply_fixes, load_dictionary
    findings = proofread("申請する時は、書類を提出して下さい。")
    # [Finding(rule="formal-noun:時", suggestion="とき", source=「公用文における漢字使用等について…」1(2)キ, ...), ...]
    apply_fixes(text, findings)

Rules are data (data/*.toml: words with part of speech, reading, context and source) where they
can be, code where they must be (checks.py: width, punctuation, sentence style and length).
"""

from sekisho.proofread.dictionary import configured_dictionary, load_dictionary, parse_dictionary
from sekisho.proofread.documents import Document, read_document
from sekisho.proofread.engine import DEFAULT_MAX_SENTENCE_CHARS, apply_fixes, proofread
from sekisho.proofread.model import FAMILIES, Dictionary, Family, Finding, ProofreadError, Replacement, Source

__all__ = [
    "DEFAULT_MAX_SENTENCE_CHARS", "FAMILIES", "Dictionary", "Document", "Family", "Finding", "ProofreadError",
    "Replacement", "Source", "apply_fixes", "configured_dictionary", "load_dictionary", "parse_dictionary", "proofread", "read_document",
]
