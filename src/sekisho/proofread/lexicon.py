"""Word rules as data (data/*.toml), indexed by written form and by dictionary form, and the few
context tests that tell a formal noun from a noun or a subsidiary verb from a verb.

A token costs one or two dict look-ups; only the handful of tokens that hit an entry run a
context test, so the rules add little to Sudachi's own time however many words are listed.
"""

from __future__ import annotations

import tomllib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from sekisho.proofread.analysis import Token
from sekisho.proofread.model import FAMILIES, ProofreadError, Source

Tokens = list[Token]
Context = Callable[[Tokens, int], bool]

READING = "@reading"  # suggestion: the token's own reading, in hiragana


def nfkc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def hiragana(katakana: str) -> str:
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in katakana)


# --- context tests ------------------------------------------------------------------------------

def _at(tokens: Tokens, i: int) -> Token | None:
    return tokens[i] if 0 <= i < len(tokens) else None


def _particle(t: Token | None, *surfaces: str) -> bool:
    return t is not None and t.pos[0] == "助詞" and t.surface in surfaces


def _comma(t: Token | None) -> bool:
    return t is not None and t.pos[1] == "読点"


def _boundary(t: Token | None) -> bool:
    """Start of text, a line break, or punctuation/brackets: nothing modifies what follows."""
    return t is None or t.pos[0] in ("補助記号", "空白")


def _modifier(t: Token | None) -> bool:
    """A verb, adjective or auxiliary in its attributive form: 申請する|時, 許可しない|事, 必要な|時."""
    return t is not None and t.pos[0] in ("動詞", "形容詞", "助動詞") and t.pos[5].startswith("連体形")


def modified(tokens: Tokens, i: int) -> bool:
    return _modifier(_at(tokens, i - 1))


def modified_or_demonstrative(tokens: Tokens, i: int) -> bool:
    prev = _at(tokens, i - 1)
    return _modifier(prev) or (prev is not None and prev.pos[0] == "連体詞" and prev.surface in ("この", "その", "あの", "どの"))


_TOKORO_NOW = frozenset({"現在", "今", "現時点", "目下", "今日", "今回", "これまで"})


def formal_tokoro(tokens: Tokens, i: int) -> bool:
    """確認した所、 / 現在の所 -> ところ; 駅に近い所に住む (a place) keeps 所."""
    prev, before, nxt = _at(tokens, i - 1), _at(tokens, i - 2), _at(tokens, i + 1)
    if prev is not None and prev.pos[0] == "助動詞" and prev.lemma == "た" and _comma(nxt):
        return True
    return _particle(prev, "の") and before is not None and before.surface in _TOKORO_NOW


def formal_mono(tokens: Tokens, i: int) -> bool:
    """正しい物と認める / 行う物とする -> もの; 壊れた物を処分する (a thing) keeps 物."""
    nxt = _at(tokens, i + 1)
    return modified(tokens, i) and nxt is not None and nxt.surface in ("と", "で", "だ", "です", "では")


_TOORI_AFTER_NO = frozenset({"次", "以下", "上記", "下記", "前記", "左記", "別紙", "別記", "別表", "所定", "規定",
                             "例年", "従来", "予定", "計画", "指示", "原案", "希望", "前述", "後述", "想定", "予想",
                             "要望", "見込み", "申請", "記載", "案", "通知", "要領", "定め"})


def formal_toori(tokens: Tokens, i: int) -> bool:
    """次の通り / 述べた通り -> とおり; 駅前の通り (a street) keeps 通り."""
    if modified(tokens, i):
        return True
    before = _at(tokens, i - 2)
    return _particle(_at(tokens, i - 1), "の") and before is not None and before.surface in _TOORI_AFTER_NO


def modified_or_no(tokens: Tokens, i: int) -> bool:
    return modified(tokens, i) or _particle(_at(tokens, i - 1), "の")


def formal_hoka(tokens: Tokens, i: int) -> bool:
    """除く他、 -> ほか; 業務を行う他の職員 (other staff) keeps 他."""
    return modified(tokens, i) and not _particle(_at(tokens, i + 1), "の")


def between_to_and_ni(tokens: Tokens, i: int) -> bool:
    """説明すると共に (as well as) -> とともに; 共に働く and 市民と共に (together with) keep 共に."""
    clause = _at(tokens, i - 2)
    return (_particle(_at(tokens, i - 1), "と") and _particle(_at(tokens, i + 1), "に") and clause is not None
            and clause.pos[0] in ("動詞", "形容詞", "助動詞"))


def after_te(tokens: Tokens, i: int) -> bool:
    return _particle(_at(tokens, i - 1), "て", "で")


def after_te_or_temo(tokens: Tokens, i: int) -> bool:
    return after_te(tokens, i) or (_particle(_at(tokens, i - 1), "も") and _particle(_at(tokens, i - 2), "て", "で"))


_HONORIFIC = ("お", "ご", "御")


def honorific(tokens: Tokens, i: int) -> bool:
    """お越し下さい / ご理解頂く: the お・ご + word + くださる・いただく pattern."""
    prev = _at(tokens, i - 1)
    if prev is None or prev.pos[0] not in ("名詞", "動詞"):
        return False
    before = _at(tokens, i - 2)
    return prev.surface.startswith(_HONORIFIC) or (before is not None and before.pos[0] == "接頭辞"
                                                   and before.surface in _HONORIFIC)


def after_te_or_honorific(tokens: Tokens, i: int) -> bool:
    return after_te(tokens, i) or honorific(tokens, i)


def after_noun_or_honorific(tokens: Tokens, i: int) -> bool:
    """お願い致します / 連絡致します -> いたします; 思いを致す keeps 致す."""
    prev = _at(tokens, i - 1)
    return (prev is not None and prev.pos[0] == "名詞") or honorific(tokens, i)


def after_ni(tokens: Tokens, i: int) -> bool:
    return _particle(_at(tokens, i - 1), "に")


def after_ni_or_to(tokens: Tokens, i: int) -> bool:
    return _particle(_at(tokens, i - 1), "に", "と")


def after_kamo(tokens: Tokens, i: int) -> bool:
    return _particle(_at(tokens, i - 1), "も") and _particle(_at(tokens, i - 2), "か")


def ni_tsuite(tokens: Tokens, i: int) -> bool:
    """これに付いて考慮する -> について; 服に泥が付いている (attached) keeps 付く."""
    after = _at(tokens, i + 2)
    return (after_ni(tokens, i) and _particle(_at(tokens, i + 1), "て")
            and not (after is not None and after.pos[0] == "動詞"))


def not_after_particle(tokens: Tokens, i: int) -> bool:
    """はじめて参加する (first time), not 活動をはじめて (begin) or 市民にたいして (toward)."""
    prev = _at(tokens, i - 1)
    return not _particle(prev, "に", "を", "が") and not (prev is not None and prev.pos[0] == "動詞")


def inside_clause(tokens: Tokens, i: int) -> bool:
    """制度をさらに充実させる -> 更に; さらに、 / 。さらに (linking) stays in kana."""
    return not _boundary(_at(tokens, i - 1)) and not _comma(_at(tokens, i + 1))


def not_before_comma(tokens: Tokens, i: int) -> bool:
    return not _comma(_at(tokens, i + 1))


def before_ha(tokens: Tokens, i: int) -> bool:
    """住民または事業者 (Sudachi: また + は) -> 又は."""
    prev = _at(tokens, i - 1)
    return (_particle(_at(tokens, i + 1), "は") and prev is not None
            and prev.pos[0] in ("名詞", "接尾辞", "代名詞", "補助記号"))


def not_before_ha(tokens: Tokens, i: int) -> bool:
    return not _particle(_at(tokens, i + 1), "は")


def before_ni_between_nouns(tokens: Tokens, i: int) -> bool:
    """住民ならびに事業者 (Sudachi: ならび + に) -> 並びに."""
    prev = _at(tokens, i - 1)
    return (_particle(_at(tokens, i + 1), "に") and prev is not None
            and prev.pos[0] in ("名詞", "接尾辞", "代名詞", "補助記号"))


def sentence_initial_te_comma(tokens: Tokens, i: int) -> bool:
    """従って、 at the head of a sentence is the conjunction したがって, not the verb 従う."""
    return _boundary(_at(tokens, i - 1)) and _particle(_at(tokens, i + 1), "て") and _comma(_at(tokens, i + 2))


CONTEXTS: dict[str, Context] = {f.__name__: f for f in (
    modified, modified_or_demonstrative, formal_tokoro, formal_mono, formal_toori, modified_or_no, formal_hoka,
    between_to_and_ni, after_te, after_te_or_temo, after_te_or_honorific, after_noun_or_honorific, after_ni,
    after_ni_or_to, after_kamo, ni_tsuite, not_after_particle, inside_clause, not_before_comma, before_ha,
    not_before_ha, before_ni_between_nouns, sentence_initial_te_comma,
)}


# --- rules --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WordRule:
    family: str
    source: Source
    match: str  # NFKC written form, or dictionary form when by_lemma
    suggest: str  # or READING
    pos: str | None = None  # prefix of ",".join(token.pos)
    reading: str | None = None
    when: Context | None = None

    @property
    def id(self) -> str:
        return f"{self.family}:{self.match}"

    def applies(self, tokens: Tokens, i: int) -> bool:
        t = tokens[i]
        if self.pos is not None and not ",".join(t.pos).startswith(self.pos):
            return False
        if self.reading is not None and t.reading != self.reading:
            return False
        return self.when is None or self.when(tokens, i)

    def suggestion(self, token: Token) -> str:
        return hiragana(token.reading) if self.suggest == READING else self.suggest


@dataclass(frozen=True)
class Lexicon:
    sources: dict[str, Source]
    by_surface: dict[str, tuple[WordRule, ...]]
    by_lemma: dict[str, tuple[WordRule, ...]]
    okurigana_nouns: dict[str, str]
    okurigana_compound: dict[str, str]
    okurigana_fixed: dict[str, str]
    okurigana_verbs: dict[str, str]
    loanwords: dict[str, tuple[str, ...]]


def _read(name: str) -> dict:
    path = resources.files("sekisho.proofread") / "data" / name
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProofreadError(f"{name}: cannot read the proofreading rules: {exc}") from None


def _word_rules(data: dict, sources: dict[str, Source]) -> tuple[dict, dict]:
    by_surface: dict[str, list[WordRule]] = {}
    by_lemma: dict[str, list[WordRule]] = {}
    for n, block in enumerate(data.get("rule", []), 1):
        where = f"words.toml rule {n}"
        if block.get("family") not in FAMILIES or block.get("source") not in sources:
            raise ProofreadError(f"{where}: unknown family or source")
        when = block.get("when")
        if when is not None and when not in CONTEXTS:
            raise ProofreadError(f"{where}: unknown context test {when!r}")
        index = by_lemma if block.get("key", "surface") == "lemma" else by_surface
        for match, suggest in block["words"].items():
            rule = WordRule(block["family"], sources[block["source"]], nfkc(match), suggest, block.get("pos"),
                            block.get("reading"), CONTEXTS[when] if when else None)
            index.setdefault(rule.match, []).append(rule)
    return ({k: tuple(v) for k, v in by_surface.items()}, {k: tuple(v) for k, v in by_lemma.items()})


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    sources = {key: Source(v["document"], v["section"], v.get("summary", "")) for key, v in _read("sources.toml").items()}
    by_surface, by_lemma = _word_rules(_read("words.toml"), sources)
    okurigana = _read("okurigana.toml")
    loanwords = {nfkc(k): tuple(v) for k, v in _read("loanwords.toml")["words"].items()}
    return Lexicon(sources, by_surface, by_lemma, okurigana["nouns"], okurigana["compound"], okurigana["fixed"],
                   okurigana["verbs"], loanwords)
