"""The normal forms sekisho compares text in (never the form it displays: that is the original).

- `nfkc`: width and compatibility folding (全角ＡＢＣ１ -> ABC1, ｶﾞ -> ガ, ① -> 1).
- `clean`: what chunks are indexed as: NFKC, Japanese line wraps joined, whitespace collapsed.
- `compact`: what answers are matched and scored in: NFKC with no whitespace at all (JSQuAD
  scores this way, and 「住民票 の写し」 then equals 「住民票の写し」).
"""

from __future__ import annotations

import re
import unicodedata

# A line break between two Japanese characters is layout (hard-wrapped PDF lines, narrow
# columns), not a word boundary: "住民\n票" must index as "住民票".
_JA = r"\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_WRAPPED_JA = re.compile(rf"(?<=[{_JA}])[ \t]*\n[ \t]*(?=[{_JA}])")
_SPACES = re.compile(r"\s+")


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def clean(text: str) -> str:
    """NFKC (full-width ASCII to half-width, half-width katakana to full-width, ① to 1, ...),
    Japanese line wraps joined, and whitespace runs collapsed to one space."""
    text = _WRAPPED_JA.sub("", nfkc(text))
    return _SPACES.sub(" ", text).strip()


def compact(text: str) -> str:
    """NFKC and no whitespace: the form JSQuAD scores in and the form answers are matched in."""
    return _SPACES.sub("", nfkc(text))
