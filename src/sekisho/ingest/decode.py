"""Decode the bytes of a text file: UTF-8 (with or without BOM), Shift_JIS/CP932, EUC-JP,
ISO-2022-JP, UTF-16 with BOM, and Windows-1252 Western text.

Only strict decodes are accepted, so a file either decodes to the text its author wrote or is
rejected; mojibake never reaches the index. Short CP932 and EUC-JP byte strings can both decode
without error, so when both succeed the more plausible Japanese wins (kana and common kanji
versus the half-width katakana and rare symbols a wrong guess produces).
"""

from __future__ import annotations

import codecs
import re
import unicodedata

from sekisho.errors import InvalidInput

# Encodings are named the way Python's codecs know them; labels from HTML/HTTP are mapped here.
_ALIASES = {
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "ms_kanji": "cp932", "windows-31j": "cp932", "cp932": "cp932", "ms932": "cp932",
    "euc-jp": "euc_jp", "euc_jp": "euc_jp", "x-euc-jp": "euc_jp", "eucjp": "euc_jp",
    "utf-8": "utf-8", "utf8": "utf-8", "iso-2022-jp": "iso2022_jp",
}
_ISO2022_ESCAPES = (b"\x1b$B", b"\x1b$@", b"\x1b(J", b"\x1b(B")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class UndecodableText(InvalidInput, ValueError):
    """No supported encoding decodes these bytes cleanly."""


def canonical_encoding(label: str) -> str | None:
    """The codec for an encoding label from a document (e.g. an HTML meta charset), or None."""
    label = label.strip().lower()
    if label in _ALIASES:
        return _ALIASES[label]
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _strict(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _jis_level1_kanji() -> frozenset[str]:
    """JIS X 0208 level 1 (rows 16-47): the ~3,000 kanji that make up nearly all running
    Japanese text. Text decoded with the wrong codec lands mostly on level-2 and rarer kanji
    (縺, 繧, 菴)."""
    pairs = bytes(b for row in range(0xB0, 0xD0) for cell in range(0xA1, 0xFF) for b in (row, cell))
    return frozenset(pairs.decode("euc_jp", errors="ignore"))


_LEVEL1 = _jis_level1_kanji()
# Scoring a prefix is enough to tell a right reading from a wrong one, and bounds the cost.
_SCORED_CHARS = 200_000


def _japanese_plausibility(text: str, *, halfwidth_kana_suspect: bool = True) -> float:
    """Share of the non-ASCII characters that ordinary Japanese prose is made of. Half-width
    katakana (ﾌﾘｶﾞﾅ) is legitimate in CP932 files but is also what EUC-JP read as CP932 yields,
    so it counts against a CP932 reading only while EUC-JP is a rival one."""
    good = bad = 0.0
    for ch in text[:_SCORED_CHARS]:
        code = ord(ch)
        if code < 0x80:
            continue
        if 0x4E00 <= code <= 0x9FFF:  # CJK unified ideographs
            if ch in _LEVEL1:
                good += 1
            else:
                bad += 1
        elif (
            0x3040 <= code <= 0x30FF  # hiragana, katakana
            or 0x3000 <= code <= 0x303F  # Japanese punctuation
            or 0xFF01 <= code <= 0xFF5E  # full-width ASCII
            or 0x2010 <= code <= 0x203B  # dashes, ellipsis, ※
            or 0x2160 <= code <= 0x21FF  # roman numerals, arrows
            or 0x2460 <= code <= 0x24FF  # ① ②
            or 0x25A0 <= code <= 0x25FF  # ■ □ ○ ● ◆
            or 0x3200 <= code <= 0x33FF  # ㈱ ㎡ ㍻
        ):
            good += 1
        elif 0xFF61 <= code <= 0xFF65:  # ｡｢｣､･: EUC-JP hiragana read as CP932 starts with ､
            bad += 1
        elif 0xFF66 <= code <= 0xFF9F:
            if halfwidth_kana_suspect:
                bad += 1
            else:
                good += 1
        elif unicodedata.category(ch) in ("Co", "Cn", "Cc"):  # private use (外字 aside), unassigned
            bad += 5
        else:  # symbols, Greek, Cyrillic, box drawing: legitimate but rare in running text
            bad += 0.5
    total = good + bad
    return 1.0 if total == 0 else good / total


def _has_kana(text: str) -> bool:
    return any(0x3040 <= ord(ch) <= 0x30FF for ch in text)


_WESTERN_EXTRA = set("“”‘’–—…€•™")


def _western(data: bytes) -> tuple[str, str] | None:
    """Windows-1252 English or European text: accepted only when it reads as ordinary prose,
    mostly ASCII with accented Latin letters and typographic punctuation, never as a last resort
    for bytes no other codec takes (that is how binary turns into mojibake)."""
    text = _strict(data, "cp1252")
    if text is None:
        return None
    non_ascii = [ch for ch in text if ord(ch) >= 0x80]
    if len(non_ascii) > 0.25 * len(text):
        return None
    for ch in non_ascii:
        latin_letter = ch.isalpha() and unicodedata.name(ch, "").startswith("LATIN")
        if not (latin_letter or ch in _WESTERN_EXTRA or 0xA0 <= ord(ch) <= 0xBF):
            return None
    return text, "cp1252"


def decode_text(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Return (text, encoding). ``declared`` (e.g. an HTML meta charset) is tried first after a
    BOM; a declaration that does not decode strictly is ignored, not trusted into mojibake."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = _strict(data, encoding)
            if text is None:
                raise UndecodableText(f"{encoding} の BOM がありますが正しく復号できません / invalid {encoding} after its BOM")
            return text, encoding
    if declared:
        codec = canonical_encoding(declared)
        if codec:
            text = _strict(data, codec)
            if text is not None:
                return text, codec
    if b"\x1b" in data and any(esc in data for esc in _ISO2022_ESCAPES):
        text = _strict(data, "iso2022_jp")
        if text is not None:
            return text, "iso2022_jp"
    text = _strict(data, "utf-8")
    if text is not None:
        return text, "utf-8"
    decoded = [(codec, text) for codec in ("cp932", "euc_jp") if (text := _strict(data, codec)) is not None]
    candidates = []
    for codec, text in decoded:
        # EUC-JP misread as CP932 turns into half-width katakana; the reverse never does.
        score = _japanese_plausibility(text, halfwidth_kana_suspect=codec == "cp932" and len(decoded) > 1)
        if score >= 0.75 and (_has_kana(text) or score == 1.0):
            candidates.append((score, codec == "cp932", text, codec))
    if candidates:
        # Equal scores: CP932 is far more common in Japanese offices than EUC-JP.
        _, _, text, codec = max(candidates)
        return text, codec
    western = _western(data)
    if western is not None:
        return western
    raise UndecodableText(
        "文字コードを判定できません (UTF-8/Shift_JIS/EUC-JP のいずれでも正しく復号できません) / unknown or mixed text encoding"
    )


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def looks_binary(text: str) -> bool:
    """Decoded text full of control characters is a binary file with a text extension."""
    return len(_CONTROL.findall(text[:4096])) > 8
