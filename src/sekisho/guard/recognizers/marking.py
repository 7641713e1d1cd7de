"""Confidentiality markings: 社外秘, 部外秘, 極秘, 【秘】, 取扱注意, 機密性2/3, CONFIDENTIAL."""

from __future__ import annotations

import re
from typing import Iterator

from sekisho.guard.recognizers.base import Candidate
from sekisho.guard.textview import NormalizedText

_KANJI = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々"
_KANA = "ぁ-ゖァ-ヺ"
_BRACKETS = ("【】", "〔〕", "「」", "『』", "［］", "[]", "()", "<>", "＜＞", "《》", "〈〉")
_ENGLISH = ("STRICTLY CONFIDENTIAL", "Strictly Confidential", "CONFIDENTIAL", "Confidential")

# Most markings contain 秘, a rare character: the regex jumps between 秘, 意, 密 and C/S (common
# kanji such as 取 or 機 as first characters would make it try at every 取得 or 機能), and the
# word around a 秘 (社外秘, 【秘】, 秘書...) is read in Python.
_HANDLE_WITH_CARE = ("取扱注意", "取扱い注意", "取り扱い注意")
MARKING_RE = re.compile(
    "秘|意(?:" + "|".join(f"(?<={w})" for w in _HANDLE_WITH_CARE) + ")|密(?<=機密)性[23](?:情報)?|"
    + "|".join(e + "(?![A-Za-z])" for e in _ENGLISH)
)
_BEFORE_HI = ("社外", "部外", "関係者外", "厳", "マル", "極")  # 社外秘, 部外秘, 関係者外秘, 厳秘, マル秘, 極秘
_OPENERS = {o: c for o, c in _BRACKETS}
_SECRETLY = ("裏", "のうち", "に", "で")
_QUOTES = "「『"
_WORD_CHAR = re.compile(f"[{_KANJI}{_KANA}]")


class ConfidentialMarkingRecognizer:
    entity = "CONFIDENTIAL"
    name = "confidential_marking"
    anchor = MARKING_RE.pattern  # found in the registry's one-pass anchor scan

    def find(self, view: NormalizedText) -> Iterator[Candidate]:
        text = view.text
        for start, end in view.anchor_hits(self.name):
            if text[start] == "秘":
                span = self._around_hi(view, start)
                if span is not None:
                    yield Candidate(*span, 0.95)
            elif text[start] == "意":  # ends 取扱注意 and its spellings
                word = next(w for w in _HANDLE_WITH_CARE if text.startswith(w, end - len(w)))
                yield Candidate(end - len(word), end, 0.95)
            elif text[start] == "密":  # 機密性2 / 機密性3, found from 密
                yield Candidate(start - 1, end, 0.95)
            elif not (start > 0 and text[start - 1].isascii() and text[start - 1].isalpha()):
                yield Candidate(start, end, 0.9)  # CONFIDENTIAL, not inside a longer word

    def _around_hi(self, view: NormalizedText, i: int) -> tuple[int, int] | None:
        """The marking a 秘 at i belongs to, if any: 社外秘, 極秘 (not 極秘裏), 【秘】, 秘 alone."""
        text = view.text
        for word in _BEFORE_HI:
            if text.startswith(word, i - len(word)):
                if word == "極" and text.startswith(_SECRETLY, i + 1):
                    return None  # 極秘裏に, 極秘のうちに, 極秘に: "in secret", not a marking
                return i - len(word), i + 1
        if i > 0 and _OPENERS.get(text[i - 1]) == text[i + 1:i + 2]:
            # 【秘】〔秘〕 mark a document wherever they stand; 「秘」 mid-sentence usually quotes the
            # character (「秘」という字), so quotation brackets count only at the start of a line.
            if text[i - 1] not in _QUOTES or not text[text.rfind("\n", 0, i - 1) + 1:i - 1].strip():
                return i - 1, i + 2
            return None
        return (i, i + 1) if self._solo_is_marking(view, i, i + 1) else None

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
