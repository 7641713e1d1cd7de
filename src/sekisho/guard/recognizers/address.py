"""郵便番号 and street addresses (prefecture, municipality, 丁目/番地/号 or 1-2-3 blocks)."""

from __future__ import annotations

import re

from sekisho.guard.recognizers.base import LEAD, NUM_RIGHT, SEP, PatternRecognizer
from sekisho.guard.textview import NormalizedText

PREFECTURES = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県",
    "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県",
    "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県",
    "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県",
    "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
)
_PREF = "(?:" + "|".join(PREFECTURES) + ")"

# 都/道/府/県 are rare characters, so finding them first and checking the name behind is much
# faster than trying 47 alternatives at every 大/東/山 (lookbehinds must be fixed-width, hence
# one per name length).
_PREF_END = "|".join(
    end + "(?:" + "|".join(f"(?<={p})" for p in PREFECTURES if p.endswith(end)) + ")" for end in "都道府県"
)
POSTAL_CODE = PatternRecognizer(
    numeric=True,
    entity="POSTAL_CODE",
    name="postal_code",
    pattern=r"〒[ ]?(?P<code>[0-9]{3}" + SEP + r"?[0-9]{4})" + NUM_RIGHT,
    base_score=0.95,
    group="code",
)
def _postal_in_context(m: re.Match[str], view: NormalizedText) -> float | None:
    """NNN-NNNN near 郵便番号 or a prefecture; seven bare digits only right after 郵便番号."""
    if m.group()[3:4].isdigit():
        label = view.text[max(0, m.start() - 8):m.start()].lower()
        return 0.85 if any(w in label for w in ("郵便番号", "postal", "zip")) else None
    return 0.85


# Without 〒, NNN-NNNN is a postal code only next to 郵便番号 or right before a prefecture.
POSTAL_CODE_IN_CONTEXT = PatternRecognizer(
    numeric=True,
    entity="POSTAL_CODE",
    name="postal_code_context",
    pattern=LEAD + "[0-9]{2}" + SEP + "?[0-9]{4}" + NUM_RIGHT,
    assess=_postal_in_context,
    context=("郵便番号", "postal", "zip", "住所", "所在地") + PREFECTURES,
    context_score=0.85,
    requires_context=True,
    before=10,
    after=4,
    longest=8,
)

_NUM = "(?:[0-9]+|[〇一二三四五六七八九十百千]+)"
_KANJI = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff々〆ヶケヵ"
_KATAKANA = "ァ-ヴー"
# Hiragana rarely starts a place name; these municipalities are the exceptions worth knowing.
_HIRAGANA_PLACES = "(?:さいたま|つくば|ひたちなか|いわき|かすみがうら|つくばみらい|いちき串木野|みよし|あきる野|ふじみ野|南さつま|かほく|あわら|みどり|うきは|たつの|さぬき|いすみ|むつ)"
# After the first character a place name may contain の/が/ノ (丸の内, 霞が関, 虎ノ門).
_PLACE_CHAR = f"(?:[{_KANJI}{_KATAKANA}のが]|[0-9]+条)"  # 札幌 北1条西2丁目
_BLOCK = (
    "(?:"
    f"{_NUM}丁目(?:{_NUM}番地?(?:の?{_NUM}号?)?|{_NUM}(?:{SEP}{_NUM}){{0,2}})?"  # 2丁目3番4号 / 2丁目3-4
    f"|{_NUM}番地(?:の{_NUM}|{SEP}?[0-9]+)?"  # 123番地, 123番地の4
    f"|{_NUM}番{_NUM}号"  # 3番4号
    f"|[0-9]+(?:{SEP}[0-9]+){{1,3}}"  # 1-2-3
    f"|{_NUM}番(?!目)"
    ")"
    f"(?:(?:{SEP}|[ ])?[0-9]+号室|{SEP}[0-9]+(?![0-9]))?"  # 101号室 / -101
)

_ADDRESS_CONTEXT = ("住所", "所在地", "住ん", "在住", "届け先", "送付先", "お届け", "本社", "〒", "address", "現住所", "居所")

ADDRESS = PatternRecognizer(
    entity="ADDRESS",
    name="address_jp",
    # Led by a prefecture; the regex only runs where a prefecture name ends (see _PREF_END).
    # (?!立): 大阪府立大学, 県立病院 are institutions, not addresses.
    pattern=f"{_PREF}(?!立)(?:{_HIRAGANA_PLACES}|[{_KANJI}{_KATAKANA}]){_PLACE_CHAR}{{0,32}}?{_BLOCK}(?![0-9])",
    base_score=0.85,
    anchor=_PREF_END,
    anchor_ahead=3,  # 神奈川県: the 県 is 3 characters after the start
    longest=80,
    context=_ADDRESS_CONTEXT,
    context_score=0.9,
    before=20,
)
# Without a prefecture (横浜市中区山下町1-1) a 市/区/郡 must lead into the block, and a word such
# as 住所 or 所在地 must be near: 「対象地区3-2」 is not an address.
ADDRESS_IN_CONTEXT = PatternRecognizer(
    entity="ADDRESS",
    name="address_jp_context",
    pattern=f"(?<![{_KANJI}{_KATAKANA}])[{_KANJI}]{{1,6}}?[市区郡]{_PLACE_CHAR}{{0,20}}?{_BLOCK}(?![0-9])",
    context=_ADDRESS_CONTEXT,
    context_score=0.8,
    requires_context=True,
    before=20,
    longest=60,
)
