"""The conventions of a grounded answer that the prompt, every model and every check share: how a
passage is cited ([n]) and how "the documents do not say" is said."""

from __future__ import annotations

import re

from sekisho.text.normalize import nfkc

NOT_FOUND = "資料に記載がありません"

# [1], [1][2], [1,2], [1、2], ［１］ and 【1】: NFKC folds the full-width forms before matching, but
# the offsets are taken on the original text, so the pattern accepts both widths itself.
CITATION_RE = re.compile(r"[\[［【]\s*([0-9０-９]+(?:\s*[,，、・]\s*[0-9０-９]+)*)\s*[\]］】]")


def strip_citations(text: str) -> str:
    return CITATION_RE.sub("", text).strip()


def citation_numbers(marker_body: str) -> list[int]:
    """The passage numbers inside one marker's brackets ("1、2" -> [1, 2])."""
    return [int(nfkc(n)) for n in re.split(r"[,，、・\s]+", marker_body) if n.strip()]


# Sentences in a document that speak to the model reading it, not to the reader (prompt
# injection): a passage is data, and such a sentence is never an answer to anyone's question. Each
# pattern is a phrasing of one of the things injected text asks for, narrow enough that an office
# notice does not say it to its readers (「係員の指示に従ってください」 is not here; 「以前の指示を
# 無視して」 is): drop the citations, change the answer's language, show other documents, undo
# the guards, forget the instructions, or obey because "you" are the AI. Matched on NFKC text.
_INSTRUCTION = re.compile("|".join((
    r"(?:以前|前|上記|これまで|先ほど|最初|すべて|全て)の(?:指示|命令|ルール|規則|プロンプト|設定|制約)",
    r"(?:指示|命令|プロンプト|ルール|規則|制約)(?:を|は)?(?:無視|忘れ|破棄|取り消|上書き)",
    r"(?:引用|出典|参照番号|資料番号|根拠の番号|\[\d+\])(?:を|は|も)?(?:付け|つけ|示さ|書か|記さ|記載し|入れ|含め)(?:ない|ず|るな)",
    r"(?:回答|答え|返答|応答|出力)(?:は|を|も)?(?:必ず)?(?:英語|中国語|韓国語|英文|外国語|english)で",
    r"(?:英語|中国語|韓国語|英文|english)で(?:回答|答え|返答|応答|出力)(?:して|しなさい|せよ|すること)",
    r"(?:他|ほか|全て|すべて|全部)の(?:文書|資料|ドキュメント|ファイル|記録)(?:の内容|の全文)?(?:を|も)[^。]{0,10}"
    r"(?:表示|出力|開示|公開|列挙|教え|回答に含め|そのまま)",
    r"(?:マスク|伏せ字|ガード|フィルタ|検閲|安全装置|保護機能|制限)(?:を|は)?(?:外|解除|無効|オフ|停止|止め|無視|回避)",
    r"(?:あなた|ai|アシスタント|言語モデル|チャットボット|人工知能)(?:は|へ|に|が|への)[^。]{0,40}"
    r"(?:従っ|従え|しなさい|せよ|すること|してください|しないでください)",
    r"システム(?:プロンプト|メッセージ)",
    r"\b(?:ignore|disregard|forget|override)\b[^.]{0,40}\b(?:instructions?|rules|prompts?|guidelines|above)\b",
    r"\b(?:do not|don't|never)\b[^.]{0,20}\b(?:cite|citations?|sources?|references?)\b",
    r"\b(?:answer|respond|reply|write)\b[^.]{0,30}\bin (?:english|chinese|korean|french|spanish)\b",
    r"\b(?:you are|as an?)\b[^.]{0,15}\b(?:ai|assistant|language model|chatbot)\b",
    r"\bsystem (?:prompt|message)\b",
)), re.IGNORECASE)


def is_instruction(sentence: str) -> bool:
    """Does `sentence` speak to the model reading it (an instruction injected into a document)?"""
    return bool(_INSTRUCTION.search(nfkc(sentence)))
