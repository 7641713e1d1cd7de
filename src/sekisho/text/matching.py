"""What two texts are compared by when deciding whether one says what the other says: the
extractive answerer choosing a sentence, the faithfulness check, the reading of passages apart."""

from __future__ import annotations

import re

from sekisho.text.grounding import strip_citations
from sekisho.text.normalize import compact, nfkc
from sekisho.text.sentences import split_sentences
from sekisho.text.stem import english_stem

LATIN_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")


def match_units(text: str) -> set[str]:
    """What two texts are compared by: character bigrams of Japanese (no tokeniser needed, robust
    to compounds and spelling variants) and whole lower-cased words of Latin script (letter
    bigrams of English would match nearly anything)."""
    t = nfkc(text)
    units = {english_stem(w.lower()) for w in LATIN_WORD.findall(t)}
    for run in LATIN_WORD.sub(" ", t).split():
        run = "".join(ch for ch in run if ch.isalnum() or ch in "々〆ー・")
        units |= {run[i : i + 2] for i in range(len(run) - 1)} if len(run) > 1 else ({run} if run else set())
    return units


_KANA_OR_SPACE = re.compile(r"[ぁ-ゖ\s、。，．,.!?！？「」『』（）()\[\]【】［］:：;；/／~〜\-]+")


def content_runs(text: str) -> list[str]:
    """Runs of kanji, katakana and digits (Latin words removed): the terms of a Japanese text."""
    return [r for r in _KANA_OR_SPACE.split(LATIN_WORD.sub(" ", nfkc(text))) if r]


def content_units(text: str) -> set[str]:
    """Like match_units, but Japanese bigrams only within runs of kanji, katakana and digits:
    hiragana are mostly endings and particles, which a faithful paraphrase is free to change."""
    units = {english_stem(w.lower()) for w in LATIN_WORD.findall(nfkc(text))}
    for run in content_runs(text):
        units |= {run[i : i + 2] for i in range(len(run) - 1)} if len(run) > 1 else {run}
    return units


# Interrogatives and question endings carry no evidence; removing them keeps them from matching.
# The particles of いつまでに / どこから belong to the question word: left in, 「…までに届け出て」 in
# another section outscored the sentence that answers (the README's 転入届 example).
_INTERROGATIVE = re.compile(
    r"いつまでに|いつまで|いつから|どこまで|どこから|何|なに|なん|どこ|何処|どの|どれ|どちら|どんな|どう|どのよう|どのくらい|どれくらい|誰|だれ|いつ|"
    r"いくつ|いくら|ですか|ますか|でしょうか|でしたか|だろうか|のか|か[?？]|[?？!！。、,．.]|"
    r"(?i:\b(?:what|who|whom|whose|when|where|which|why|how|is|are|was|were|does|do|did|the|a|an|of)\b)"
)


def without_interrogatives(question: str) -> str:
    """`question` (NFKC) with its interrogatives and question endings blanked out."""
    return _INTERROGATIVE.sub(" ", nfkc(question))


def question_content(question: str) -> set[str]:
    """The terms a question asks about: its content units without the interrogatives. Content
    units skip hiragana (の人, 口は): particles match any passage and prove nothing."""
    return content_units(without_interrogatives(question))


def answer_context(question: str, answer: str, passage_text: str) -> float:
    """How much of what `question` asks about stands in the passage sentence that holds `answer`:
    the best share of the question's content units over the sentences quoting the answer, 0 when
    the passage does not contain the answer as written. 「1947年」 from 「1947年の第1回国会以降…」
    answers 「第1回国会はいつ？」 (1.0); 「1970年7月」 from 「1970年7月の第11回大会で…」 does not (0.25)."""
    said = compact(strip_citations(answer))
    asked = question_content(question)
    if not said or not asked:
        return 0.0
    shares = [len(asked & content_units(passage_text[s:e])) / len(asked)
              for s, e in split_sentences(passage_text) if said in compact(passage_text[s:e])]
    return max(shares, default=0.0)
