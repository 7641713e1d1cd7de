"""Morphological analysis: the one place the proofreader touches Sudachi.

Everything else works on `Token`s. Sudachi's split mode C keeps compounds whole (市役所, 事務,
取扱説明書), so a rule keyed on 所 or 事 never sees the 所 of 市役所 or the 事 of 事務; its
readings tell 時 (トキ) from the suffix 時 (ジ) of 開始時.
"""

from __future__ import annotations

from sekisho.text import dictionary, pieces
from sekisho.text import tokenizer as sudachi_tokenizer


class Token:
    """One morpheme. The dictionary form and the reading are fetched from Sudachi only when a
    rule asks for them: most tokens are looked up by written form alone."""

    __slots__ = ("_m", "_lemma", "_reading", "end", "pos", "start", "surface")

    def __init__(self, surface: str, pos: tuple[str, ...], start: int, end: int, morpheme=None,
                 lemma: str | None = None, reading: str | None = None):
        self.surface = surface  # as written (offsets below index the analysed text)
        self.pos = pos  # Sudachi's six part-of-speech fields
        self.start = start
        self.end = end
        self._m = morpheme
        self._lemma = lemma
        self._reading = reading

    @property
    def lemma(self) -> str:
        """The dictionary form (出来ない -> 出来る)."""
        if self._lemma is None:
            self._lemma = self._m.dictionary_form()
        return self._lemma

    @property
    def reading(self) -> str:
        """The reading in katakana (時 -> トキ, or ジ in 開始時)."""
        if self._reading is None:
            self._reading = self._m.reading_form()
        return self._reading

    @property
    def conjugation(self) -> str:
        return self.pos[5]

    def __repr__(self) -> str:
        return f"Token({self.surface!r}, {','.join(self.pos)}, {self.start}-{self.end})"


def analyze(text: str) -> list[Token]:
    """Sudachi (core dictionary, split mode C) tokens of `text`, offsets into `text`."""
    tokenizer = sudachi_tokenizer("C")
    pos_of = dictionary().pos_of
    pos_cache: dict[int, tuple[str, ...]] = {}
    tokens: list[Token] = []
    append = tokens.append
    for base, piece in pieces(text):
        for m in tokenizer.tokenize(piece):
            pid = m.part_of_speech_id()
            pos = pos_cache.get(pid)
            if pos is None:
                pos = pos_cache[pid] = tuple(pos_of(pid))
            append(Token(m.surface(), pos, base + m.begin(), base + m.end(), m))
    return tokens


def tokenize_only(text: str) -> int:
    """Sudachi alone over `text` (the benchmark's baseline); returns the number of morphemes."""
    tokenizer = sudachi_tokenizer("C")
    return sum(len(tokenizer.tokenize(piece)) for _, piece in pieces(text))
