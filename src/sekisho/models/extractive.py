"""The extractive backend: answers by quoting the passage sentence(s) that best support an answer
to the question, always cited, with no model weights. It is the default backend so that sekisho
gives grounded answers on any machine, and the floor every generative backend must beat.

Selection, tuned on the even-numbered JSQuAD articles (bench/answer_jsquad.py reports the rest):
1. Score each sentence by the IDF-weighted character bigrams it shares with the question (the
   interrogative words removed); IDF is over the sentences of all given passages, so words every
   sentence repeats (the topic) count little.
2. Guess the expected answer type from the interrogative (いつ/何年 -> date, 開館時間 -> clock
   times, 電話番号 -> a phone number, 何人/何位 -> a number with that counter, いくら -> an amount,
   誰 -> person, どこ -> place) and prefer sentences whose *unmatched* part (the characters the
   question did not already say) holds a candidate of that type. When the question names nothing but the document's topic
   (「児童手当はいくら…」 of 『児童手当のご案内』), the type decides alone.
3. When the best sentence restates the question but its unmatched part holds no candidate, the
   answer is usually in a neighbouring sentence ("...が承認された。名称は〇〇。"): add the
   neighbour that does.
4. Passages sharing under a quarter of the question's content terms are not evidence at all; with
   none left the answer is 「資料に記載がありません」.
5. A quote that names neither its topic nor the question's is labelled with the passage title
   (【梅雨】この時期に…), because a sentence lifted out of its document often leans on it.
Office documents: Markdown headings are never quoted, nor are sentences that speak to the model
rather than the reader (text.is_instruction: an instruction injected into a document); label
lines (【休館日】, ■手数料) are read together with the line they label; a block whose label names
what is asked (■支給日 for いつ支給, ■手数料 for いくら) comes first; an answer of the asked type
further down the chosen block is quoted with it; a chosen list item or table row brings the rest
of its list or table.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sekisho.config import BackendConfig
from sekisho.models.protocol import Capability, ChatRequest, Completion, ModelInfo, Passage
from sekisho.models.summary import summarise, summary_sentences
from sekisho.text import (
    LATIN_WORD,
    NOT_FOUND,
    compact,
    content_units,
    english_stem,
    is_instruction,
    match_units,
    morphemes,
    question_content,
    split_sentences,
    without_interrogatives,
)

NO_DOCUMENTS = (
    "この抽出型バックエンドは文書から回答を抜き出す方式のため、資料を伴わない質問にはお答えできません。"
    "`sekisho ask` で知識ベースに質問してください。"
    " (The extractive backend only answers from documents; ask through the knowledge base.)"
)

_DATE = re.compile(r"\d+\s*(年|月|日|世紀)|(令和|平成|昭和|大正|明治|元禄|江戸|鎌倉|室町)|[一二三四五六七八九十]+世紀")
_NUMBER = re.compile(r"\d|[一二三四五六七八九十百千万億]+(?=[^\s]?)")


@dataclass(frozen=True)
class AnswerType:
    kind: str  # "date" | "time" | "phone" | "count" | "person" | "place" | "any"
    counter: str = ""  # for "count": pattern of the counter the number must precede (位, 人, 円|ドル)


def answer_type(question: str) -> AnswerType:
    q = compact(question)
    if _HOURS.search(q):
        return AnswerType("time")
    if _PHONE_QUESTION.search(q):
        return AnswerType("phone")
    english = _english_type(q.lower())
    if english:
        return english
    if re.search(r"いつ|何年|何月|何日|何世紀|何時代|西暦|何年代|いつ頃|何時頃|時期", q):
        return AnswerType("date")
    m = re.search(r"何([^\sのがをはでにとかもや、。?!]{1,3})", q)
    if m and re.match(r"[人名位個回件歳倍割度条章部巻種曲議席カヶヵか所%年月日時分秒ドル円]", m.group(1)):
        return AnswerType("count", re.escape(m.group(1)[0]))  # 何人いますか -> 人; the number precedes it
    if re.search(r"いくら|金額|費用|料金|手数料|値段|価格", q) and not re.search(r"何[^円]", q):
        return AnswerType("count", "円|ドル|ユーロ|元")  # an amount of money
    if re.search(r"いくつ|どのくらい|どれくらい|どれほど|何パーセント|何%", q):
        return AnswerType("count")
    if re.search(r"誰|だれ|人物|何という人", q):
        return AnswerType("person")
    if re.search(r"どこ|何処|場所|どの国|どの地域|どの都市", q):
        return AnswerType("place")
    return AnswerType("any")


# Hours of service, the commonest question an office document answers: 「開館時間は？」 wants
# 午前9時から午後8時, not the sentence that merely repeats 開館時間 (「開館時間外は…返却ポストに」).
_HOURS = re.compile(r"(?:開館|閉館|受付|営業|診療|開庁|窓口|利用|取扱|取り扱い)時間|何時から|何時まで|何時に|"
                    r"(?i:openinghours|businesshours|officehours|whattime|openuntil)")  # compact() drops spaces
_PHONE_QUESTION = re.compile(r"電話番号|連絡先|問い合わせ先|問合せ先|(?i:phonenumber|whomdoicall|whodoicall)")
_PHONE = re.compile(r"\d{2,5}-\d{1,4}-\d{3,4}|\d{10,11}")
_CLOCK = re.compile(r"\d+\s*時|午前|午後|正午|\d{1,2}:\d{2}|(?i:\b[ap]\.?m\b\.?)")


def _english_type(q: str) -> AnswerType | None:
    if q.startswith(("when", "whatyear", "whichyear")):
        return AnswerType("date")
    if q.startswith(("howmany", "howmuch", "howlong", "howold")):
        return AnswerType("count")
    if q.startswith(("who", "whom")):
        return AnswerType("person")
    if q.startswith("where"):
        return AnswerType("place")
    return None


def _has_candidate(text: str, kind: AnswerType) -> bool:
    if not text.strip():
        return False
    if kind.kind == "date":
        return bool(_DATE.search(text) or re.search(r"\b1\d{3}\b|\b20\d{2}\b", text))
    if kind.kind == "time":
        return bool(_CLOCK.search(text))
    if kind.kind == "phone":
        return bool(_PHONE.search(text))
    if kind.kind == "count":
        digits = r"[\d一二三四五六七八九十百千万億数]"
        if kind.counter:
            return bool(re.search(digits + r"[\d.,万億]*(?:" + kind.counter + ")", text))
        return bool(re.search(digits, text))
    if kind.kind in ("person", "place") and re.search(r"[A-Z][a-z]+", text):
        return True  # English: a capitalised word is the closest cheap sign of a name
    if kind.kind in ("person", "place"):
        wanted = "人名" if kind.kind == "person" else "地名"
        return any(pos[:2] == ("名詞", "固有名詞") and (pos[2] == wanted or kind.kind == "place" and pos[2] == "一般")
                   for _, pos in morphemes(text))
    return True


@dataclass(frozen=True)
class _Sentence:
    passage: Passage
    index: int  # position within its passage
    start: int  # character offsets into passage.text
    end: int
    grams: frozenset[str]  # the sentence's own units and those of the heading it stands under
    heading: str
    labelled: bool  # opens with a label line (【休館日】, ■支給額): the start of a labelled block

    @property
    def text(self) -> str:
        return self.passage.text[self.start : self.end]


def _relevance(content: set[str], passage: Passage) -> float:
    if not content:
        return 1.0  # a question of kana alone: let the sentence scores decide
    return len(content & content_units(passage.title + "\n" + passage.text)) / len(content)


def _names_only_topic(content: set[str], passage: Passage) -> bool:
    """「児童手当はいくらもらえますか」 asked of 『児童手当のご案内』: every term of the question is in
    the title, so every sentence of the document matches it alike (its words weigh nothing) and only
    the kind of answer asked for, an amount, tells the sentences apart."""
    return bool(content) and content <= content_units(passage.title)


_HEADING = re.compile(r"#{1,6}\s")


def _candidate_spans(text: str, headings: Sequence[str] = ()) -> list[tuple[int, int, str, bool]]:
    """Sentences with the heading they stand under, each label line joined to the sentence after it
    ("【休館日】" + "毎週月曜日…"): the label or heading says what the line is about, the line says
    it. A fee table under "## 手数料" answers "手数料はいくら" without repeating the word. Headings
    are Markdown's "#" lines and the lines that are one of the passage's `headings` (an HTML <h2>
    or a DOCX heading style is plain text by then)."""
    spans: list[tuple[int, int, str, bool]] = []
    label_start: int | None = None
    heading = ""
    named = {h.strip() for h in headings if h.strip()}
    for s, e in split_sentences(text):
        if _HEADING.match(text, s) or text[s:e].strip() in named and _own_line(text, s, e):
            heading = text[s:e]
            label_start = None
            continue
        if _is_label(text, s, e):
            label_start = s if label_start is None else label_start
            continue
        spans.append((s if label_start is None else label_start, e, heading, label_start is not None))
        label_start = None
    return spans


def _is_label(text: str, start: int, end: int) -> bool:
    """A label line names a topic, it does not answer: "【休館日】" matches a question about closing
    days well and says nothing by itself. Labels are short bracketed or bulleted lines (【…】, ■…,
    "…：") standing alone before a line break; a plain line without 。 is content ("毎週月曜日")."""
    line = text[start:end]
    return text[end : end + 1] == "\n" and len(line) <= 30 and bool(_LABEL.fullmatch(line))


_LABEL = re.compile(r"【[^】]+】|[■□◆◇●○▼▽][^。]*|[^。：:]+[：:]")

# Office documents are built of labelled blocks, and a label often names the answer itself:
# ■支給日 answers 「いつ支給されますか」 even when the introduction repeats 「支給される」 word for
# word. A block answers by its label when the label names the kind of thing asked for and shares
# a term with the question (■受付窓口 alone answers no どこ question about 粗大ごみ).
_ANSWERING_LABELS = (
    (re.compile(r"いつ|何日|何月|時期|期限|期間"), re.compile(r"日|期限|期間|時期")),
    (_HOURS, re.compile(r"時間")),
    (re.compile(r"いくら|金額|料金|費用|手数料"), re.compile(r"額|料|金|費")),
    (re.compile(r"どこ|場所"), re.compile(r"場所|窓口|先")),
    # 手続 asks for a procedure only as the thing asked (「手続きの流れは」), not as the occasion
    # (「手続きには何を持っていけば」 wants what to bring, not the block ■代理人が手続きする場合).
    (re.compile(r"どうやって|どのように|どうすれば|方法|やり方|手順|手続き?(?:は|を教え|の(?:方法|流れ|仕方))"),
     re.compile(r"方法|方|手続|手順|流れ")),
    (re.compile(r"必要なもの|何が必要|持ち物|何を持って|持参"), re.compile(r"必要なもの|持ってくるもの|持ち物|書類")),
)


def _label_words_asked(question: str) -> list[re.Pattern[str]]:
    """What a label must name to answer `question` (one pattern per kind of thing it asks for)."""
    q = compact(question)
    return [names for asks, names in _ANSWERING_LABELS if asks.search(q)]


def _answers_by_label(asked: list[re.Pattern[str]], content: set[str], s: _Sentence) -> bool:
    if not asked:
        return False
    label = (s.text.split("\n", 1)[0] if s.labelled else s.heading).strip("#■□◆◇●○▼▽【】：: ")
    if not label or not content & content_units(label):
        return False
    return any(names.search(label) for names in asked)


def _unmatched(text: str, question_grams: set[str]) -> str:
    """The sentence with every character the question's bigrams cover blanked out: where the answer is."""
    t = compact(text)
    covered = [False] * len(t)
    for i in range(len(t) - 1):
        if t[i : i + 2] in question_grams:
            covered[i] = covered[i + 1] = True
    for m in LATIN_WORD.finditer(t):
        if english_stem(m.group().lower()) in question_grams:
            covered[m.start() : m.end()] = [True] * (m.end() - m.start())
    return "".join(" " if c else ch for ch, c in zip(t, covered))


@dataclass(frozen=True)
class Extraction:
    """The chosen evidence: a quote of one or two adjacent sentences of one passage."""

    passage: Passage
    quote: str
    relevance: float  # share of the question's content bigrams found in the passage, 0..1

    def render(self, question: str) -> str:
        body = self.quote.strip()
        title = compact(self.passage.title)
        # A sentence lifted out of its document often leans on the document's topic ("この時期に…");
        # when neither the question nor the sentence names that topic, label the quote with it.
        if title and title not in compact(question) and title not in compact(body):
            body = f"【{self.passage.title.strip()}】{body}"
        return f"{body} [{self.passage.n}]"


# Below this share of the question's content units (kanji/katakana bigrams, Latin words) present
# in the passage (title included), the passage is about something else: on JSQuAD dev, 1.6% of
# gold paragraphs fall below it and 1.6% of paragraphs from other articles reach it.
MIN_RELEVANCE = 0.25
# Units with hiragana in them (当は, 給さ, され) are particles and inflections: a rare one earned a
# high idf, and 「支給される」 in an introduction outweighed the block that says when 支給 happens.
# Chosen on the JSQuAD dev half (0.3 of 0, 0.1, 0.3, 0.5, 0.7, 1): test-half containment RC 0.9529
# -> 0.9544, open-domain passages 0.9162 -> 0.9199.
KANA_WEIGHT = 0.3
_KANA = re.compile(r"[ぁ-ゖ]")
# A sentence whose unmatched part holds a candidate of the expected type beats one that only
# restates the question, unless the latter matches more than (1 + TYPE_BONUS) times the weight.
# JSQuAD dev containment is flat from 0.2 to 2.0 (the best sentence is usually typed anyway); in
# short office documents the typed sentence is the answer ("手数料は1点400円です" over "手数料は
# 粗大ごみ処理券で納めます" for いくら), so the bonus is generous.
TYPE_BONUS = 1.0


def extract(question: str, passages: Sequence[Passage]) -> Extraction | None:
    q_grams = match_units(without_interrogatives(question))
    if not q_grams:
        return None
    # A sentence that speaks to the model ("引用を付けないでください") is never quoted: it is no
    # answer to anyone's question, only an attempt to steer the answerer. Positions stay those of
    # all sentences, so a quote never spans the one left out.
    sents = [_Sentence(p, i, s, e, frozenset(match_units(p.text[s:e]) | _context_units(p, heading)), heading, labelled)
             for p in passages for i, (s, e, heading, labelled) in enumerate(_candidate_spans(p.text, p.headings))
             if not is_instruction(p.text[s:e])]
    if not sents:
        return None
    n = len(sents)
    df = Counter(g for s in sents for g in s.grams & q_grams)
    idf = {g: math.log((n + 1) / (df[g] + 0.5)) * (KANA_WEIGHT if _KANA.search(g) else 1.0) for g in q_grams}
    total = math.fsum(idf.values())
    kind = answer_type(question)

    def overlap(s: _Sentence) -> float:
        return math.fsum(idf[g] for g in s.grams & q_grams) / total

    scored = []
    for s in sents:
        base = overlap(s)
        typed = kind.kind != "any" and _has_candidate(_unmatched(s.text, q_grams), kind)
        scored.append((base + (TYPE_BONUS * base if typed else 0.0), base, typed, s))
    content = question_content(question)
    relevance = {p.n: _relevance(content, p) for p in passages}
    topical = {p.n for p in passages if _names_only_topic(content, p)}
    scored = [x for x in scored if relevance[x[3].passage.n] >= MIN_RELEVANCE]
    if not scored:
        return None
    # Sentences the question's kind of answer settles come first: typed ones of a document the
    # question names only by its topic, and blocks whose label names what is asked.
    asked = _label_words_asked(question)
    best_score, best_base, best_typed, best = max(scored, key=lambda x: (
        x[2] and x[3].passage.n in topical or _answers_by_label(asked, content, x[3]), x[0]))
    neighbour = None if best_typed else _answering_neighbour(question, best, sents, q_grams, kind)
    if _is_row(best):
        chosen = _list_run(best, sents)
    elif neighbour is not None and _is_row(neighbour):
        # The neighbour that holds the answer is one line of a list ("手数料は現金で…" after the
        # fee table): quote the whole list with it, as when the best sentence is a list item.
        chosen = sorted([best, *_list_run(neighbour, sents)], key=lambda s: s.index)
    else:
        chosen = sorted([best] if neighbour is None else [best, neighbour], key=lambda s: s.index)
    # One contiguous quote, line breaks as in the source (list items stay on their own lines).
    quote = best.passage.text[chosen[0].start : chosen[-1].end]
    return Extraction(best.passage, quote, relevance[best.passage.n])


def _context_units(passage: Passage, heading: str) -> set[str]:
    """What a sentence is about beyond its own words: the heading it stands under and the document
    title that heads the path ("住民票の写しの交付 > 手数料"). On all 4,442 JSQuAD reading-comprehension
    questions this lifted containment of a gold answer from 0.937 to 0.944."""
    return match_units(passage.title + "\n" + heading)


_LIST_ITEM = re.compile(r"\s*(?:[-*+・•]|\d+[.)．]|[①-⑳])\s*")
_ROW_CHARS = 40
_LIST_QUOTE_CHARS = 400


def _is_row(s: _Sentence) -> bool:
    """A list item, or a table row: a short line of its own without a sentence end
    ("3歳未満：15,000円", "印鑑登録証明書（窓口） 1通300円")."""
    line = s.text.rsplit("\n", 1)[-1]
    if _LIST_ITEM.match(line):
        return True
    return (_own_line(s.passage.text, s.start, s.end) and 0 < len(line.strip()) <= _ROW_CHARS
            and line.strip()[-1] not in "。．.!?！？")


def _own_line(text: str, start: int, end: int) -> bool:
    return text[end : end + 1] in ("\n", "") and (start == 0 or text[start - 1] == "\n")


def _list_run(best: _Sentence, sents: list[_Sentence]) -> list[_Sentence]:
    """The whole list or table a chosen row belongs to: one line of a fee table (窓口300円) is a
    partial answer when its neighbours say コンビニ200円 and 郵送300円. The run stays under one
    heading and inside one labelled block (■支給額 and its rows, not the ■支給日 after them), and is
    bounded, so a long list stays a quote."""
    same = {s.index: s for s in sents if s.passage is best.passage}
    run = [best]
    for step in (-1, 1):
        edge, i = best, best.index + step
        while i in same and _is_row(same[i]) and same[i].heading == best.heading:
            if (same[i] if step == 1 else edge).labelled:
                break  # forwards, a new block begins; backwards, this block began at the edge
            run.append(same[i])
            edge, i = same[i], i + step
    run.sort(key=lambda s: s.index)
    while run[-1].end - run[0].start > _LIST_QUOTE_CHARS and len(run) > 1:
        run.remove(run[0] if run[0] is not best else run[-1])
    return run


_ANAPHOR = re.compile(r"(これ|この|それ|その|こうした|このよう|同)")
_NAMING = re.compile(r"何と(呼|い|言|称)|名前|名称|何という")


def _answering_neighbour(
    question: str, best: _Sentence, sents: list[_Sentence], q_grams: set[str], kind: AnswerType
) -> _Sentence | None:
    """The adjacent sentence of the same passage that likely holds the answer the best sentence
    leads up to, or None when the best sentence itself says something the question did not."""
    novel = _unmatched(best.text, q_grams).replace(" ", "")
    around = [s for s in sents if s.passage is best.passage and abs(s.index - best.index) == 1]
    follow = [s for s in around if s.index > best.index and _ANAPHOR.match(compact(s.text))]
    restates = len(novel) < 0.5 * len(compact(best.text)) or kind.kind != "any"
    if not restates:
        # "...方法を探究している。これを検索エンジン最適化と呼ぶ。": the next sentence names what this one describes.
        return follow[0] if follow and _NAMING.search(compact(question)) else None
    if kind.kind != "any":
        around = [s for s in around if _has_candidate(s.text, kind)]
        if not around:
            # Further down the same labelled block: 「■自分で持ち込む場合\n…持ち込むこともできます。
            # 受付は…まで。10キログラムごとに200円です。」 answers 「持ち込む場合の料金は？」.
            around = [s for s in _rest_of_block(best, sents)
                      if _has_candidate(s.text, kind) and s.end - best.start <= _LIST_QUOTE_CHARS][:1]
    # The following sentence usually continues the thought ("名称は〇〇。"); prefer it.
    around.sort(key=lambda s: (s.index < best.index, ))
    return around[0] if around else None


def _rest_of_block(best: _Sentence, sents: list[_Sentence]) -> list[_Sentence]:
    """The sentences after `best` in the labelled block it belongs to (none in unlabelled prose)."""
    same = [s for s in sents if s.passage is best.passage and s.heading == best.heading]
    before = [s for s in same if s.index <= best.index]
    if not any(s.labelled for s in before):
        return []
    rest = []
    for s in same:
        if s.index > best.index:
            if s.labelled:
                break
            rest.append(s)
    return rest


def approx_tokens(text: str) -> int:
    """Token count approximation, documented: one token per CJK character, one per 4 other
    characters (close to what BPE tokenisers of Japanese-capable models produce)."""
    cjk = sum(1 for c in text if ord(c) >= 0x3000)
    return cjk + math.ceil((len(text) - cjk) / 4)


class ExtractiveBackend:
    """Backend protocol implementation; deterministic, local, no weights."""

    def __init__(self, config: BackendConfig, name: str = "extractive") -> None:
        self.config = config
        self.name = name

    def info(self) -> ModelInfo:
        # Pure Python over the request's own passages: any number of threads may answer at once.
        return ModelInfo(name=self.name, kind="extractive", model="sekisho-extractive", local=True, version="1",
                         capabilities=frozenset({Capability.CONCURRENT}))

    def check(self) -> None:
        morphemes("確認")  # loads the dictionary now, so a broken install fails here, not mid-answer

    def count_tokens(self, text: str) -> int:
        return approx_tokens(text)

    def _answer(self, request: ChatRequest) -> str:
        if request.passages is None:
            return NO_DOCUMENTS
        if request.question is None:
            # Passages and no question: what the passages say, their most central sentences quoted.
            return summarise(request.passages, summary_sentences(request.max_tokens)) or NOT_FOUND
        found = extract(request.question, request.passages)
        return found.render(request.question) if found else NOT_FOUND

    def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        text = self._answer(request)
        prompt = sum(approx_tokens(m.content) for m in request.messages)
        return Completion(
            text=text,
            model=self.info().model,
            prompt_tokens=prompt,
            completion_tokens=approx_tokens(text),
            latency_s=time.perf_counter() - started,
        )

    def stream(self, request: ChatRequest) -> Iterator[str]:
        text = self._answer(request)
        # Pieces end after punctuation so a terminal shows whole phrases arriving.
        yield from (piece for piece in re.split(r"(?<=[、。！？,.])", text) if piece)
