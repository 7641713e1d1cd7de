"""Japanese text primitives shared by the extractive answerer and the faithfulness checker:
sentence boundaries, citation markers, character n-grams, numbers and named entities."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Retrieval's stemmer (move, moved, moving -> move): a cruder suffix stripper split "moved" (mov)
# from "move", and "What should I bring when I move in?" quoted the sentence that said "move"
# rather than the two that say "bring".
from sekisho.ingest.normalize import english_stem

NOT_FOUND = "資料に記載がありません"

# [1], [1][2], [1,2], [1、2], ［１］ and 【1】: NFKC folds the full-width forms before matching, but
# the offsets are taken on the original text, so the pattern accepts both widths itself.
CITATION_RE = re.compile(r"[\[［【]\s*([0-9０-９]+(?:\s*[,，、・]\s*[0-9０-９]+)*)\s*[\]］】]")

_OPEN = "「『（(【［[〈《"
_CLOSE = "」』）)】］]〉》"
_ENDERS = "。！？!?"
_LOWER_NEXT = re.compile(r"[ \t]+[a-z]")
# A bracket left open longer than this is a stray bracket, not a quotation: stop protecting it.
_MAX_QUOTE = 200


def normalize(text: str) -> str:
    """NFKC and no whitespace: the form JSQuAD scores in and the form we match in."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence. Boundaries are 。！？ and newlines, but not inside 「」 or
    （）, so a quoted sentence stays with the sentence that quotes it."""
    spans: list[tuple[int, int]] = []
    start = 0
    depth = 0
    opened_at = 0
    for i, ch in enumerate(text):
        if ch in _OPEN:
            if depth == 0:
                opened_at = i
            depth += 1
        elif ch in _CLOSE and depth:
            depth -= 1
        if depth and i - opened_at > _MAX_QUOTE:
            depth = 0
        # A full stop ends an English sentence only before a space, so 3.14 stays whole, and not
        # when a lower-case word follows: "from 8:30 a.m. to 5:15 p.m." and "e.g. the" go on.
        english_stop = ch == "." and i + 1 < len(text) and text[i + 1].isspace() and not _LOWER_NEXT.match(text, i + 1)
        if ch == "\n" or ((ch in _ENDERS or english_stop) and depth == 0):
            # Keep runs of closing punctuation ("。」", "！？") with the sentence they end.
            end = i + 1
            spans.append((start, end))
            start = end
            depth = 0
    spans.append((start, len(text)))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            out.append((s, e))
    return out


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def strip_citations(text: str) -> str:
    return CITATION_RE.sub("", text).strip()


def citation_numbers(marker_body: str) -> list[int]:
    return [int(unicodedata.normalize("NFKC", n)) for n in re.split(r"[,，、・\s]+", marker_body) if n.strip()]


def char_ngrams(text: str, n: int) -> set[str]:
    t = normalize(text)
    return {t[i : i + n] for i in range(len(t) - n + 1)}


LATIN_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")


def match_units(text: str) -> set[str]:
    """What two texts are compared by: character bigrams of Japanese (no tokeniser needed, robust
    to compounds and spelling variants) and whole lower-cased words of Latin script (letter
    bigrams of English would match nearly anything)."""
    t = unicodedata.normalize("NFKC", text)
    units = {english_stem(w.lower()) for w in LATIN_WORD.findall(t)}
    for run in LATIN_WORD.sub(" ", t).split():
        run = "".join(ch for ch in run if ch.isalnum() or ch in "々〆ー・")
        units |= {run[i : i + 2] for i in range(len(run) - 1)} if len(run) > 1 else ({run} if run else set())
    return units


_KANA_OR_SPACE = re.compile(r"[ぁ-ゖ\s、。，．,.!?！？「」『』（）()\[\]【】［］:：;；/／~〜\-]+")


def content_runs(text: str) -> list[str]:
    """Runs of kanji, katakana and digits (Latin words removed): the terms of a Japanese text."""
    return [r for r in _KANA_OR_SPACE.split(LATIN_WORD.sub(" ", unicodedata.normalize("NFKC", text))) if r]


def content_units(text: str) -> set[str]:
    """Like match_units, but Japanese bigrams only within runs of kanji, katakana and digits:
    hiragana are mostly endings and particles, which a faithful paraphrase is free to change."""
    units = {english_stem(w.lower()) for w in LATIN_WORD.findall(unicodedata.normalize("NFKC", text))}
    for run in content_runs(text):
        units |= {run[i : i + 2] for i in range(len(run) - 1)} if len(run) > 1 else {run}
    return units


@lru_cache(maxsize=1)
def _tokenizer():
    from sudachipy import Dictionary, SplitMode

    return Dictionary(dict="core").tokenizer(mode=SplitMode.C)


def morphemes(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """(surface, part of speech) with Sudachi's core dictionary, mode C (whole compounds)."""
    return [(m.surface(), tuple(m.part_of_speech()[:3])) for m in _tokenizer().tokenize(text)]


_KANJI_DIGITS = {c: i for i, c in enumerate("〇一二三四五六七八九")}
_KANJI_UNITS = {"十": 10, "百": 100, "千": 1000}
_KANJI_BIG = {"万": 10**4, "億": 10**8, "兆": 10**12}
_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*|[〇一二三四五六七八九十百千万億兆]+")
_ERA_START = {"令和": 2018, "平成": 1988, "昭和": 1925, "大正": 1911, "明治": 1867}
_ERA_RE = re.compile(r"(令和|平成|昭和|大正|明治)(元|\d+)年")


def _kanji_number(s: str) -> int:
    if all(c in _KANJI_DIGITS for c in s):
        return int("".join(str(_KANJI_DIGITS[c]) for c in s))
    total = section = digit = 0
    for c in s:
        if c in _KANJI_DIGITS:
            digit = _KANJI_DIGITS[c]
        elif c in _KANJI_UNITS:
            section += (digit or 1) * _KANJI_UNITS[c]
            digit = 0
        elif c in _KANJI_BIG:
            total += (section + digit or 1) * _KANJI_BIG[c]
            section = digit = 0
    return total + section + digit


def western_years(text: str) -> str:
    """Era years rewritten as Western years (令和3年 -> 2021年), so that a sentence and a passage
    agree whichever calendar each uses."""

    def western(m: re.Match[str]) -> str:
        year = 1 if m.group(2) == "元" else int(m.group(2))
        return f"{_ERA_START[m.group(1)] + year}年"

    return _ERA_RE.sub(western, unicodedata.normalize("NFKC", text))


def numbers(text: str) -> set[str]:
    """Every number the text states, as canonical digit strings (era years as Western years)."""
    t = western_years(text)
    found: set[str] = set()
    for m in _NUMBER_RE.finditer(t):
        s = m.group()
        if s[0].isdigit():
            found.add(s.replace(",", "").lstrip("0") or "0")
        elif _is_counting_context(t, m.end()):
            # Kanji digits inside words (一般, 統一, 万全) are not numbers; before a counter they are.
            found.add(str(_kanji_number(s)))
    return found


_COUNTERS = "年月日時分秒歳人名回個件つ位倍割世紀代条章部巻万億兆円ドル%％kmmgtトン度階番号次期区市町村県国党議席"


def _is_counting_context(text: str, end: int) -> bool:
    """A kanji numeral counts something when a counter or another number follows it."""
    return end < len(text) and (text[end] in _COUNTERS or text[end].isdigit())


def named_entities(text: str) -> set[str]:
    """Proper nouns (people, places, organisations, works), consecutive ones joined: 'ジョン・ニーダム'."""
    out: set[str] = set()
    current: list[str] = []
    for surface, pos in morphemes(text):
        if pos[:2] == ("名詞", "固有名詞"):
            current.append(surface)
        elif surface == "・" and current:
            current.append(surface)
        else:
            if current:
                out.add("".join(current).strip("・"))
            current = []
    if current:
        out.add("".join(current).strip("・"))
    return {normalize(e) for e in out if e}


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
    return _INTERROGATIVE.sub(" ", unicodedata.normalize("NFKC", question))


def question_content(question: str) -> set[str]:
    """The terms a question asks about: its content units without the interrogatives. Content
    units skip hiragana (の人, 口は): particles match any passage and prove nothing."""
    return content_units(without_interrogatives(question))


def answer_context(question: str, answer: str, passage_text: str) -> float:
    """How much of what `question` asks about stands in the passage sentence that holds `answer`:
    the best share of the question's content units over the sentences quoting the answer, 0 when
    the passage does not contain the answer as written. 「1947年」 from 「1947年の第1回国会以降…」
    answers 「第1回国会はいつ？」 (1.0); 「1970年7月」 from 「1970年7月の第11回大会で…」 does not (0.25)."""
    said = normalize(strip_citations(answer))
    asked = question_content(question)
    if not said or not asked:
        return 0.0
    shares = [len(asked & content_units(passage_text[s:e])) / len(asked)
              for s, e in split_sentences(passage_text) if said in normalize(passage_text[s:e])]
    return max(shares, default=0.0)
