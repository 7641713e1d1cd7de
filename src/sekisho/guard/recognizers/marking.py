"""Confidentiality markings: 社外秘, 部外秘, 極秘, 【秘】, 取扱注意, 機密性2/3, CONFIDENTIAL."""

from __future__ import annotations

import re
from typing import Iterator

from sekisho.guard.recognizers.base import Candidate
from sekisho.guard.textview import NormalizedText

_KANJI = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々"
_KANA = "ぁ-ゖァ-ヺ"
_BRACKETS = ("【】", "〔〕", "「」", "『』", "［］", "[]", "()", "<>", "＜＞", "《》", "〈〉")
_WORDS = ("社外秘", "部外秘", "関係者外秘", "厳秘", "マル秘", "取扱注意", "取扱い注意", "取り扱い注意")
_ENGLISH = ("STRICTLY CONFIDENTIAL", "Strictly Confidential", "CONFIDENTIAL", "Confidential")

# Every branch starts with a literal (no group in front) so the engine jumps between candidate
# characters; which kind matched is read from the matched text.
MARKING_RE = re.compile(
    "|".join(
        list(_WORDS)
        + ["極秘(?!裏)", "機密性[23](?:情報)?"]
        + [e + "(?![A-Za-z])" for e in _ENGLISH]
        + [re.escape(o) + "秘" + re.escape(c) for o, c in _BRACKETS]
        + ["秘"]  # alone: judged in _solo_is_marking
    )
)


_WORD_CHAR = re.compile(f"[{_KANJI}{_KANA}]")


class ConfidentialMarkingRecognizer:
    entity = "CONFIDENTIAL"
    name = "confidential_marking"

    def find(self, view: NormalizedText) -> Iterator[Candidate]:
        text = view.text
        for m in MARKING_RE.finditer(text):
            start, end = m.span()
            english = text[start].isascii()
            if english and start > 0 and text[start - 1].isascii() and text[start - 1].isalpha():
                continue
            if end - start == 1 and not self._solo_is_marking(view, start, end):
                continue
            yield Candidate(start, end, 0.9 if english else 0.95)

    @staticmethod
    def _solo_is_marking(view: NormalizedText, start: int, end: int) -> bool:
        """秘 alone marks a document only at the start of a line (「秘 人事資料」) or written as ㊙,
        never inside a word (秘書, 秘密, 便秘)."""
        o_start, o_end = view.original_span(start, end)
        if view.original[o_start:o_end] == "㊙":
            return True
        text = view.text
        if end < len(text) and _WORD_CHAR.match(text[end]):
            return False
        line_start = text.rfind("\n", 0, start) + 1
        return not text[line_start:start].strip()


CONFIDENTIAL = ConfidentialMarkingRecognizer()
