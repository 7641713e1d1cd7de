"""The conventions of a grounded answer that the prompt, every model and every check share: how a
passage is cited ([n]) and how "the documents do not say" is said."""

from __future__ import annotations

import re

from sekisho.text.normalize import nfkc

NOT_FOUND = "資料に記載がありません"

# [1], [1][2], [1,2], [1、2], ［１］ and 【1】: NFKC folds the full-width forms before matching, but
# the offsets are taken on the original text, so the pattern accepts both widths itself.
CITATION_RE = re.compile(r"[\[［【]\s*([0-9０-９]+(?:\s*[,，、・]\s*[0-9０-９]+)*)\s*[\]］】]")


def strip_citations(text: str) -> str:
    return CITATION_RE.sub("", text).strip()


def citation_numbers(marker_body: str) -> list[int]:
    """The passage numbers inside one marker's brackets ("1、2" -> [1, 2])."""
    return [int(nfkc(n)) for n in re.split(r"[,，、・\s]+", marker_body) if n.strip()]
