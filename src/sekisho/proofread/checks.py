"""Text-wide checks: full-width digits and letters, 「、」「。」, sentence length, and である /
です・ます mixed in one text. Also where sentences are, and which quotations name a document
(and so keep their original notation)."""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from sekisho.proofread.analysis import Token
from sekisho.proofread.lexicon import Lexicon
from sekisho.proofread.model import Finding

# --- quotations that name a law or a document ----------------------------------------------------

_QUOTE = re.compile(r"「([^「」\n]{1,200})」|『([^『』\n]{1,200})』")
_TRAILING_PAREN = re.compile(r"[（(][^（）()]*[）)]$")
_DOCUMENT_ENDINGS = (
    "法", "法律", "令", "規則", "規程", "規定", "条例", "要綱", "要領", "要項", "告示", "訓令", "通知", "通達", "通則",
    "指針", "方針", "基準", "計画", "大綱", "戦略", "ガイドライン", "ガイドブック", "マニュアル", "手引", "手引き",
    "報告", "答申", "建議", "提言", "白書", "考え方", "について", "表", "憲章", "宣言", "協定", "条約", "規約", "定款",
    "細則", "様式", "プラン", "ビジョン", "構想", "プログラム", "集", "書", "資料", "辞典", "事典", "便覧", "要覧",
    "一覧", "台帳", "付け方", "表記", "ルール", "規準", "制度",
)
# A citation right after the quote: 「…」（平成22年内閣訓令第1号）
_CITATION = re.compile(r"[（(][^）)]{0,40}(?:号|告示|訓令|通知|決定|建議|答申|法律|条例|年)[^）)]{0,20}[）)]")


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Spans of quotations naming a law or a document: 「公用文における漢字使用等について」,
    『送り仮名の付け方』, 「第２次計画」. Their text is quoted as written, so nothing in them is
    flagged. Other quotations (a notice's own wording) are proofread like the rest."""
    spans = []
    for m in _QUOTE.finditer(text):
        inner = _TRAILING_PAREN.sub("", (m.group(1) or m.group(2)).strip())
        if inner.endswith(_DOCUMENT_ENDINGS) or _CITATION.match(text, m.end()):
            spans.append((m.start(), m.end()))
    return spans


# --- full-width digits and letters -----------------------------------------------------------------

_FULLWIDTH = re.compile(r"[０-９Ａ-Ｚａ-ｚ]+(?:[，．：／－＆][０-９Ａ-Ｚａ-ｚ]+)*")


def width_findings(lex: Lexicon, text: str) -> Iterator[Finding]:
    for m in _FULLWIDTH.finditer(text):
        written = m.group()
        half = unicodedata.normalize("NFKC", written)
        kind = "digits" if half.replace(",", "").replace(".", "").isdigit() else "letters"
        message = (f"横書きの英数字は半角で「{half}」と書きます（全角英数字）。"
                   f" / Write half-width 「{half}」 in horizontal writing.")
        yield Finding(f"width:{kind}", "width", m.start(), m.end(), written, half, message, lex.sources["kangae-numbers"])


# --- 「、」「。」 -------------------------------------------------------------------------------------

_JA = "\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff々〆〇ー」』）"
_PUNCTUATION = re.compile(
    rf"(?<![0-9０-９A-Za-zＡ-Ｚａ-ｚ])，"       # full-width comma not inside a number
    rf"|(?<![0-9０-９A-Za-zＡ-Ｚａ-ｚ])．(?![0-9０-９])"
    rf"|(?<=[{_JA}]),(?![0-9])"                # half-width comma after Japanese
    rf"|(?<=[{_JA}])\.(?![0-9A-Za-z.])"        # half-width full stop after Japanese
    rf"|[､｡]"                                  # half-width katakana punctuation
)


def punctuation_findings(lex: Lexicon, text: str) -> Iterator[Finding]:
    for m in _PUNCTUATION.finditer(text):
        written = m.group()
        right = "、" if written in "，,､" else "。"
        name = "読点" if right == "、" else "句点"
        message = (f"{name}には「{right}」を用います（句読点）。 / Use 「{right}」 as the "
                   f"{'comma' if right == '、' else 'full stop'} (punctuation).")
        yield Finding(f"punctuation:{right}", "punctuation", m.start(), m.end(), written, right, message,
                      lex.sources["kangae-punctuation"])


# --- sentences -----------------------------------------------------------------------------------

_OPEN, _CLOSE = "「『（(【〔［", "」』）)】〕］"
_ENDS = "。！？!?．"
_BULLET = re.compile(r"[ \t\u3000]*(?:[・※●○◯■□◆◇＊*＋+－\-–—]|[（(][0-9０-９一二三四五六七八九十アイウエオカキクケコ]+[）)]"
                     r"|[0-9０-９]+[.．)）]|[①-⑳])")


@dataclass(frozen=True)
class Sentence:
    start: int  # first non-blank character
    end: int  # after the closing 。 (or the end of the line)
    terminated: bool  # ends with a full stop (not a heading, a table cell or a cut-off line)
    bulleted: bool  # a list item: lists may keep a style of their own


_SENTENCE_MARKS = re.compile(rf"[\n{re.escape(_OPEN + _CLOSE + _ENDS)}]")


def sentences(text: str) -> list[Sentence]:
    """Sentences end at 。！？ outside brackets, or at a line break (a line without a full stop is
    a heading, a list item or a wrapped line: it is never joined to the next)."""
    out: list[Sentence] = []
    depth, start, line_start = 0, 0, 0

    def close(end: int, terminated: bool) -> None:
        s = start
        while s < end and text[s].isspace():
            s += 1
        if s < end:
            out.append(Sentence(s, end, terminated, bool(_BULLET.match(text, line_start)) and s - line_start < 8))

    for m in _SENTENCE_MARKS.finditer(text):
        i, ch = m.start(), m.group()
        if ch == "\n":
            close(i, False)
            depth, start, line_start = 0, i + 1, i + 1
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif depth == 0:
            close(i + 1, True)
            start = i + 1
    close(len(text), False)
    return out


def long_sentence_findings(lex: Lexicon, text: str, found: list[Sentence], limit: int) -> Iterator[Finding]:
    for s in found:
        chars = len("".join(text[s.start:s.end].split()))
        if chars > limit:
            message = (f"一文が{chars}字あります。{limit}字以内を目安に、文を分けることを検討してください（長い文）。"
                       f" / This sentence has {chars} characters; consider splitting it (limit {limit}).")
            yield Finding("long-sentence", "long-sentence", s.start, s.end, text[s.start:s.end], None, message,
                          lex.sources["kangae-length"])


# --- である / です・ます ---------------------------------------------------------------------------------

_GODAN_I = dict(zip("うくぐすつぬぶむる", "いきぎしちにびみり"))
_GODAN_A = dict(zip("うくぐすつぬぶむる", "わかがさたなばまら"))
_GODAN_TA = {"う": "った", "つ": "った", "る": "った", "く": "いた", "ぐ": "いだ", "ぬ": "んだ", "ぶ": "んだ", "む": "んだ",
             "す": "した"}


def _stem(verb: Token, table: dict[str, str]) -> str | None:
    """The verb's form before ます (table _GODAN_I), ない (_GODAN_A) or た (_GODAN_TA)."""
    lemma, kind = verb.lemma, verb.pos[4]
    if kind.startswith("五段") and lemma and lemma[-1] in table:
        if table is _GODAN_TA and lemma in ("行く", "いく"):
            return lemma[:-1] + "った"
        return lemma[:-1] + table[lemma[-1]]
    if kind.startswith(("上一段", "下一段")):
        return lemma[:-1] + ("た" if table is _GODAN_TA else "")
    if kind.startswith("サ行変格"):
        return lemma[:-2] + ("した" if table is _GODAN_TA else "し")
    return None


def _to_polite(tail: list[Token]) -> str | None:
    """である体 ending -> です・ます体 (である -> です, 行う -> 行います, ない -> ありません)."""
    words = [t.surface for t in tail]
    fixed = {("で", "ある"): "です", ("で", "あっ", "た"): "でした", ("で", "あろ", "う"): "でしょう", ("だ",): "です",
             ("だっ", "た"): "でした"}
    if tuple(words) in fixed:
        return fixed[tuple(words)]
    head = tail[0]
    if head.pos[0] == "形容詞" and head.lemma in ("ない", "無い") and len(tail) == 1:
        return "ありません"
    if head.pos[0] == "形容詞" and len(tail) == 1:
        return head.surface + "です"
    if head.pos[0] != "動詞":
        return None
    if len(tail) == 1 and head.conjugation.startswith("終止形"):
        stem = _stem(head, _GODAN_I)
        return stem + "ます" if stem else None
    if words[1:] == ["た"]:
        stem = _stem(head, _GODAN_I)
        return stem + "ました" if stem else None
    if words[1:] == ["ない"] and head.lemma not in ("ある",):
        stem = _stem(head, _GODAN_I)
        return stem + "ません" if stem else None
    return None


def _to_plain(tail: list[Token]) -> str | None:
    """です・ます体 ending -> である体 (です -> である, 行います -> 行う, しました -> した)."""
    words = [t.surface for t in tail]
    fixed = {("です",): "である", ("でし", "た"): "であった", ("でしょう",): "であろう"}
    if tuple(words) in fixed:
        return fixed[tuple(words)]
    head = tail[0]
    if head.pos[0] != "動詞":
        return None
    if words[1:] == ["ます"]:
        return head.lemma
    if words[1:] == ["まし", "た"]:
        return _stem(head, _GODAN_TA)
    if words[1:] == ["ませ", "ん"]:
        if head.lemma == "ある":
            return "ない"
        stem = _stem(head, _GODAN_A)
        return stem + "ない" if stem else None
    return None


def _ending(tokens: list[Token], lo: int, hi: int) -> tuple[str, list[Token]] | None:
    """("polite" | "plain", the predicate's closing tokens) of the sentence tokens[lo:hi]; None
    for endings that carry no style (a noun, こと, ください, a question)."""
    depth = 0
    # Past the full stop, and past a note in brackets after the predicate: …です（土日を除く）。
    while hi > lo and (depth or tokens[hi - 1].pos[0] in ("補助記号", "空白")):
        surface = tokens[hi - 1].surface
        if surface in ("）", ")"):
            depth += 1
        elif surface in ("（", "(") and depth:
            depth -= 1
        hi -= 1
    if hi == lo:
        return None
    j = hi
    while j > lo and tokens[j - 1].pos[0] == "助動詞":
        j -= 1
    last = tokens[hi - 1]
    if any(t.lemma in ("です", "ます") for t in tokens[j:hi]):
        style = "polite"
    elif last.pos[0] in ("動詞", "形容詞", "助動詞") and last.conjugation.startswith("終止形"):
        style = "plain"  # である, だ, 行う, 行った, 行わない, ない, 考えられる
    else:
        return None
    head = j - 1 if j < hi and j > lo and tokens[j - 1].pos[0] in ("動詞", "形容詞") else min(j, hi - 1)
    if tokens[head].lemma == "ある" and head > lo and tokens[head - 1].surface == "で":
        head -= 1  # である, であった
    return style, tokens[head:hi]


def style_findings(lex: Lexicon, tokens: list[Token], found: list[Sentence]) -> Iterator[Finding]:
    starts = [t.start for t in tokens]
    endings = []
    for s in found:
        if not s.terminated or s.bulleted:
            continue
        lo, hi = bisect.bisect_left(starts, s.start), bisect.bisect_left(starts, s.end)
        ending = _ending(tokens, lo, hi)
        if ending is not None:
            endings.append(ending)
    polite = sum(1 for style, _ in endings if style == "polite")
    plain = len(endings) - polite
    if not polite or not plain:
        return
    # The style most sentences use is the text's; on a tie, the first sentence's.
    main = "polite" if polite > plain or (polite == plain and endings[0][0] == "polite") else "plain"
    for style, tail in endings:
        if style == main:
            continue
        written = "".join(t.surface for t in tail)
        start, end = tail[0].start, tail[-1].end
        if main == "polite":
            suggestion = _to_polite(tail)
            ja, en = "です・ます体", "です・ます"
        else:
            suggestion = _to_plain(tail)
            ja, en = "である体", "である"
        message = (f"この文書は主に{ja}です。文末「{written}」を{ja}にそろえてください（文体の混在）。"
                   f" / The text is mostly in {en} style; end this sentence the same way.")
        yield Finding(f"style:{main}", "style", start, end, written, suggestion, message, lex.sources["kangae-style"])
