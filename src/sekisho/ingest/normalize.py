"""Text normalisation for indexing and matching (never for display)."""

from __future__ import annotations

import re
import unicodedata

# A line break between two Japanese characters is layout (hard-wrapped PDF lines, narrow
# columns), not a word boundary: "住民\n票" must index as "住民票".
_JA = r"\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_WRAPPED_JA = re.compile(rf"(?<=[{_JA}])[ \t]*\n[ \t]*(?=[{_JA}])")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFKC (full-width ASCII to half-width, half-width katakana to full-width, ① to 1, ...),
    Japanese line wraps joined, and whitespace runs collapsed to one space."""
    text = unicodedata.normalize("NFKC", text)
    text = _WRAPPED_JA.sub("", text)
    return _SPACES.sub(" ", text).strip()
