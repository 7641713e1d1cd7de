"""The records the proofreader hands out: findings, rule families, guideline sources, and the
organisation's dictionary."""

from __future__ import annotations

from dataclasses import dataclass, field


class ProofreadError(Exception):
    """A dictionary, rule file or document the proofreader cannot use; the message is one line
    naming the file and the reason."""


@dataclass(frozen=True)
class Family:
    id: str  # stable, used in rule ids and in the dictionary's `disable`
    ja: str
    en: str

    @property
    def label(self) -> str:
        return f"{self.ja} / {self.en}"


# Display order: the word-choice families first (most findings), then the text-wide checks.
FAMILIES: dict[str, Family] = {f.id: f for f in (
    Family("conjunction", "接続詞", "conjunction"),
    Family("adverb", "副詞", "adverb"),
    Family("adnominal", "連体詞", "adnominal"),
    Family("pronoun", "代名詞", "pronoun"),
    Family("formal-noun", "形式名詞", "formal noun"),
    Family("subsidiary", "補助動詞・補助形容詞", "subsidiary verb or adjective"),
    Family("auxiliary", "助動詞・助詞", "auxiliary verb or particle"),
    Family("kana-verb", "仮名で書く動詞・形容詞", "verb or adjective written in kana"),
    Family("okurigana", "送り仮名", "okurigana"),
    Family("width", "全角英数字", "full-width digits and letters"),
    Family("punctuation", "句読点", "punctuation"),
    Family("style", "文体の混在", "mixed sentence styles"),
    Family("loanword", "外来語の言い換え", "loanword to reword"),
    Family("long-sentence", "長い文", "long sentence"),
    Family("organisation", "組織の用語", "organisation's term"),
)}


@dataclass(frozen=True)
class Source:
    document: str  # e.g. 公用文における漢字使用等について（平成22年内閣訓令第1号）
    section: str  # e.g. 1(2)キ, or a descriptive title where the number is not certain
    summary: str = ""  # what the passage says, in one line

    def __str__(self) -> str:
        return f"「{self.document}」{self.section}"


@dataclass(frozen=True)
class Finding:
    rule: str  # "<family>:<word or check>", e.g. "formal-noun:とき"
    family: str  # a key of FAMILIES
    start: int  # character offsets into the proofread text
    end: int
    text: str  # the flagged text as written
    suggestion: str | None  # replacement text; None when the finding is advice only
    message: str  # Japanese first, English second
    source: Source

    @property
    def family_label(self) -> str:
        return FAMILIES[self.family].label

    def to_json(self) -> dict:
        return {"rule": self.rule, "family": self.family, "family_label": self.family_label,
                "start": self.start, "end": self.end, "text": self.text, "suggestion": self.suggestion,
                "message": self.message, "source": str(self.source)}


@dataclass(frozen=True)
class Replacement:
    find: str
    suggest: str
    note: str = ""


@dataclass(frozen=True)
class Dictionary:
    """An organisation's additions: its own preferred terms, words never to flag (names of its
    own places and programmes), rules switched off, and its sentence-length limit."""

    replace: tuple[Replacement, ...] = ()
    keep: tuple[str, ...] = ()
    disable: frozenset[str] = field(default_factory=frozenset)  # family ids or full rule ids
    max_sentence_chars: int | None = None
    path: str = ""

    def disabled(self, rule: str, family: str) -> bool:
        return family in self.disable or rule in self.disable
