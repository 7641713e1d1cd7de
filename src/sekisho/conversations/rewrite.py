"""Follow-up questions made standalone, so retrieval finds what the conversation is about.

「住民票の写しの交付手数料はいくらですか？」 then 「コンビニだと？」: asked alone, the second finds the
opening-hours section; what it means is the first question, for the convenience-store counter.
A generative backend condenses the conversation into one question (`condense_request`, a governed
call of its own); with the extractive default a rule carries the subject over: a short follow-up
that names no question of its own, or points back (それ, その場合, だと, では, what about...), is read
together with the previous standalone question.
"""

from __future__ import annotations

import re

from sekisho.models import ChatRequest, Message
from sekisho.text import content_units, nfkc, question_content

# A follow-up this short or shorter is usually elliptical (「土曜日は？」「コンビニだと？」).
SHORT = 16
# Words that point back at what was said, or ask about a variant of it.
_POINTING = re.compile(
    r"それ|その|これ|この|そこ|あれ|同じ|ほかに|他に|場合|だと|では|なら|でも|だったら|の方は|のほうは|も[?？]?$|"
    r"(?i:\b(?:what about|how about|and (?:for|if|the)|in that case|same|it|they|that)\b)")
# A question word the follow-up brings itself.
_ASKS = re.compile(r"何|なに|なん|いつ|どこ|誰|だれ|いくら|いくつ|どう|どの|どれ|どちら|なぜ|どんな|"
                   r"(?i:\b(?:what|when|where|who|how|which|why)\b)")

CONDENSE_SYSTEM = ("会話の最後の質問を、それまでの会話を読まなくても意味が通じる一つの質問に書き換えてください。"
                   "質問だけを出力し、答えないでください。")


def standalone_question(question: str, previous: list[str]) -> str:
    """`question` as a question retrieval can answer alone, given the previous standalone
    questions of the conversation (oldest first). Unchanged when it already stands alone."""
    if not previous:
        return question
    text = nfkc(question).strip()
    elliptical = _POINTING.search(text) is not None or (len(text) <= SHORT and _ASKS.search(text) is None)
    if not elliptical:
        return question
    return f"{previous[-1]}（{question.strip()}）"


def condense_request(question: str, history: list[tuple[str, str]], *, turns: int = 4) -> ChatRequest:
    """The request asking a generative model to make `question` standalone from the last `turns`
    (question, answer) pairs."""
    lines = []
    for asked, answered in history[-turns:]:
        lines += [f"利用者: {asked}"] + ([f"回答: {answered[:400]}"] if answered else [])
    lines += [f"利用者（最後の質問）: {question}", "書き換えた質問:"]
    return ChatRequest(messages=[Message("system", CONDENSE_SYSTEM), Message("user", "\n".join(lines))],
                       max_tokens=96, temperature=0.0)


def condensed(text: str, question: str, fallback: str) -> str:
    """The model's rewrite, one line, without quotes or labels; `fallback` if it gave none, only
    echoed the follow-up back, or dropped what the follow-up asks about (small models do both:
    「コンビニだと？」 came back as the previous question alone), either of which leaves retrieval lost."""
    line = next((s.strip() for s in text.splitlines() if s.strip()), "")
    line = re.sub(r"^(書き換えた質問|質問|question)\s*[:：]\s*", "", line, flags=re.IGNORECASE).strip("「」\"' ")
    if not 2 <= len(line) <= 400 or _bare(line) in _bare(question):
        return fallback
    asked = question_content(question)
    if asked and not asked & content_units(line):
        return fallback
    return line


def _bare(text: str) -> str:
    """`text` without spaces or punctuation, to tell an echo from a rewrite."""
    return re.sub(r"[\W_]+", "", nfkc(text)).lower()
