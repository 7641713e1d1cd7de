"""Word-level checks over Sudachi tokens: the kanji/kana word rules, 公用文の送り仮名, and
loanwords to reword."""

from __future__ import annotations

from collections.abc import Iterator

from sekisho.proofread.analysis import Token
from sekisho.proofread.lexicon import Lexicon, WordRule, nfkc
from sekisho.proofread.model import FAMILIES, Finding, Source


def _finding(rule: str, family: str, token: Token, suggestion: str, source: Source, note: str = "") -> Finding:
    fam = FAMILIES[family]
    message = (f"「{token.surface}」は「{suggestion}」と書きます（{fam.ja}）。{note}"
               f" / Write 「{suggestion}」 ({fam.en}).")
    return Finding(rule, family, token.start, token.end, token.surface, suggestion, message, source)


def _word(lex: Lexicon, tokens: list[Token], i: int, surface: str) -> Finding | None:
    t = tokens[i]
    candidates: tuple[WordRule, ...] = lex.by_surface.get(surface, ())
    if t.pos[0] in ("動詞", "形容詞"):
        candidates += lex.by_lemma.get(t.lemma, ())
    for rule in candidates:
        if rule.applies(tokens, i):
            suggestion = rule.suggestion(t)
            if suggestion != t.surface:
                return _finding(rule.id, rule.family, t, suggestion, rule.source)
    return None


def _in_compound(nxt: Token | None) -> bool:
    """The next token continues a compound noun (申し込み|書, 取り扱い|説明書)."""
    return nxt is not None and (nxt.pos[0] == "接尾辞" and nxt.pos[1] == "名詞的" or nxt.pos[:2] == ("名詞", "普通名詞"))


def _okurigana(lex: Lexicon, tokens: list[Token], i: int, surface: str) -> Finding | None:
    t = tokens[i]
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    src = lex.sources
    if t.pos[0] == "動詞":
        right = lex.okurigana_verbs.get(t.lemma)
        # 申込む -> 申し込む, but not a 連用形 standing as a noun (申込み、 is the noun 申込み).
        if right and not (t.conjugation == "連用形-一般" and (nxt is None or nxt.pos[0] not in ("助動詞", "助詞"))):
            shared = next((k for k, (a, b) in enumerate(zip(t.lemma, t.surface)) if a != b), min(len(t.lemma), len(t.surface)))
            fixed = right[: len(right) - (len(t.lemma) - shared)] + t.surface[shared:]
            return _finding(f"okurigana:{t.lemma}", "okurigana", t, fixed, src["okuri-6"],
                            "活用のある語は送り仮名を省きません。")
        # 申し込み|書: Sudachi reads the verb's 連用形 heading a compound noun.
        if not (t.conjugation.startswith("連用形") and _in_compound(nxt)):
            return None
    elif t.pos[0] != "名詞":
        return None
    if surface in lex.okurigana_fixed:
        return _finding(f"okurigana:{surface}", "okurigana", t, lex.okurigana_fixed[surface], src["okuri-7"])
    if surface in lex.okurigana_nouns:
        right = lex.okurigana_nouns[surface]
        if _in_compound(nxt):
            right = lex.okurigana_compound.get(right, right)
        return _finding(f"okurigana:{surface}", "okurigana", t, right, src["kk-2-1"])
    # One compound token that starts with a listed noun: 問い合わせ先 -> 問合せ先, 取り扱い説明書 -> 取扱説明書.
    for k in range(len(surface) - 1, 1, -1):
        head = surface[:k]
        if head in lex.okurigana_fixed:
            return _finding(f"okurigana:{head}", "okurigana", t, lex.okurigana_fixed[head] + surface[k:], src["okuri-7"])
        if head in lex.okurigana_nouns:
            right = lex.okurigana_nouns[head]
            return _finding(f"okurigana:{head}", "okurigana", t, lex.okurigana_compound.get(right, right) + surface[k:],
                            src["kk-2-1"])
    return None


def _loanword(lex: Lexicon, token: Token, surface: str) -> Finding | None:
    alternatives = lex.loanwords.get(surface)
    if not alternatives or token.pos[0] != "名詞":
        return None
    listed = "、".join(f"「{a}」" for a in alternatives)
    message = (f"「{token.surface}」は{listed}などに言い換えることを検討してください（外来語）。"
               f" / Consider rewording as {listed} (loanword).")
    return Finding(f"loanword:{surface}", "loanword", token.start, token.end, token.surface, alternatives[0], message,
                   lex.sources["kangae-loanword"])


def word_findings(lex: Lexicon, tokens: list[Token]) -> Iterator[Finding]:
    for i, t in enumerate(tokens):
        if t.pos[0] in ("補助記号", "空白"):
            continue
        surface = nfkc(t.surface)
        found = _word(lex, tokens, i, surface) or _okurigana(lex, tokens, i, surface) or _loanword(lex, t, surface)
        if found is not None:
            yield found
