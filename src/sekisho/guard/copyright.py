"""Copyright guard, following the Agency for Cultural Affairs' two-phase reading (文化庁「AIと著作権に
関する考え方について」, 2024): at the GENERATION phase the risk is output that relies on and
resembles a protected work. So, against a registry the organisation maintains:

- `check_prompt` flags prompts that ask to imitate a registered creator or work
  (「〇〇風に」「〇〇のタッチで」「〇〇っぽく」「〇〇の文体で」, "in the style of X", "like X would write");
  names that are not registered never fire, since style as such is not protected.
- `check_output` flags outputs whose similarity to a registered work's text passes a threshold:
  character n-gram containment and the longest common substring, both reported.

Registry (TOML):

    [[creator]]
    name = "霧島 透"
    aliases = ["霧島透", "Toru Kirishima"]

    [[work]]
    title = "月影の港"
    creator = "霧島 透"
    aliases = ["Moonlit Harbour"]
    text = "..."            # or: file = "works/tsukikage.txt" (relative to the registry)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from sekisho.config import read_toml
from sekisho.guard.errors import GuardError
from sekisho.guard.findings import Finding
from sekisho.guard.textview import NormalizedText


@dataclass(frozen=True)
class Creator:
    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Work:
    title: str
    creator: str = ""
    aliases: tuple[str, ...] = ()
    text: str = ""  # the work (or the excerpts the organisation wants outputs compared against)


@dataclass(frozen=True)
class CopyrightRegistry:
    creators: tuple[Creator, ...] = ()
    works: tuple[Work, ...] = ()
    source: str = ""

    @cached_property
    def _names(self) -> tuple[re.Pattern[str] | None, dict[str, tuple[str, str]]]:
        """One regex over every registered name (longest first) and, per normalised name,
        (kind, canonical name)."""
        owners: dict[str, tuple[str, str]] = {}
        for c in self.creators:
            for n in (c.name, *c.aliases):
                owners.setdefault(_name_key(n), ("creator", c.name))
        for w in self.works:
            for n in (w.title, *w.aliases):
                owners.setdefault(_name_key(n), ("work", w.title))
        owners.pop("", None)
        if not owners:
            return None, owners
        # Spaces inside a name are optional (霧島 透 / 霧島透 / 霧島　透).
        alternatives = sorted(owners, key=len, reverse=True)
        pattern = "|".join(r"\s*".join(map(re.escape, key)) for key in alternatives)
        return re.compile(pattern), owners

    @cached_property
    def _indexes(self) -> list[tuple[Work, _WorkIndex]]:
        return [(w, _WorkIndex(w.text)) for w in self.works if w.text.strip()]


def _name_key(name: str) -> str:
    return "".join(NormalizedText(name).text.lower().split())


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise GuardError(f"{where}: expected a string or a list of strings")


def load_registry(path: str | Path) -> CopyrightRegistry:
    """Read the organisation's registry; GuardError (one line) names the file and the problem."""
    path = Path(path)
    data = read_toml(path, "copyright registry", GuardError)
    creators: list[Creator] = []
    for i, entry in enumerate(data.get("creator", [])):
        where = f"{path}: creator[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise GuardError(f"{where}: needs a non-empty name")
        creators.append(Creator(entry["name"], _strings(entry.get("aliases"), f"{where}.aliases")))
    works: list[Work] = []
    for i, entry in enumerate(data.get("work", [])):
        where = f"{path}: work[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("title"), str) or not entry["title"].strip():
            raise GuardError(f"{where}: needs a non-empty title")
        text = entry.get("text", "")
        if "file" in entry:
            file = path.parent / str(entry["file"])
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise GuardError(f"{where}: cannot read {file}: {exc}") from None
        if not isinstance(text, str):
            raise GuardError(f"{where}.text: expected a string")
        works.append(Work(entry["title"], str(entry.get("creator", "")), _strings(entry.get("aliases"), f"{where}.aliases"), text))
    unknown = sorted(set(data) - {"creator", "work"})
    if unknown:
        raise GuardError(f"{path}: unknown section {unknown[0]!r} (expected [[creator]] and [[work]])")
    return CopyrightRegistry(tuple(creators), tuple(works), str(path))


# --- prompts ---------------------------------------------------------------------------------

# Right after the name: 〇〇風に, 〇〇っぽく, 〇〇みたいに, 〇〇調で, 〇〇のような, 〇〇のタッチで,
# 〇〇の文体で, 〇〇を真似て, 〇〇さんの作風で... (の風 is "the wind of", so 風 only directly).
_JA_AFTER = re.compile(
    r"[』」》〉\"”')]?\s*(?:さん|先生|氏|様)?\s*(?:"  # a title may be quoted: 『月影の港』の続き
    r"(?:風|ふう|っぽく|っぽい|っぽ|みたい|調|流|ばり)"
    r"|の?\s*(?:ような|ように|よう|タッチ|文体|作風|画風|筆致|筆遣い|スタイル|テイスト|口調|語り口|世界観|雰囲気|画調)"
    r"|[をの]?\s*(?:真似|まね|マネ|模倣|模写|パロディ|オマージュ|パクり|パクっ)"
    r"|の?\s*(?:続き|続編|全文|本文|歌詞|一節|冒頭|あらすじ以外)"
    r")"
)
# English cues before the name ("in the style of X", "write like X") and after it
# ("X-style", "X's style", "like X would write").
_EN_BEFORE = re.compile(
    r"(?:in\s+the\s+(?:style|manner|voice|tone|spirit)\s+of|as\s+if\s+(?:written|drawn|painted|composed)\s+by"
    r"|(?:write|writes|writing|draw|paint|sound|talk|speak|compose)\s+(?:just\s+)?like|imitat(?:e|ing)|mimic(?:king)?"
    r"|pastiche\s+of|à\s+la|a\s+la|like)\s+(?:the\s+)?$"
)
_EN_AFTER = re.compile(r"(?:-style|'s\s+style|\s+style|\s+would\s+(?:write|say|draw|paint|put\s+it|tell\s+it))", re.IGNORECASE)


def _glued_to_latin_word(low: str, start: int, end: int) -> bool:
    def latin(ch: str) -> bool:
        return ch.isascii() and ch.isalnum()

    return (start > 0 and latin(low[start - 1]) and latin(low[start])) or (
        end < len(low) and latin(low[end]) and latin(low[end - 1])
    )


def check_prompt(text: str, registry: CopyrightRegistry) -> list[Finding]:
    """COPYRIGHT_STYLE findings: requests to imitate a registered creator or work."""
    pattern, owners = registry._names
    if pattern is None or not text:
        return []
    view = NormalizedText(text)
    low = view.lower
    findings: list[Finding] = []
    for m in pattern.finditer(low):
        owner = owners.get("".join(m.group().split()))
        if owner is None:
            continue
        start, end = m.span()
        if _glued_to_latin_word(low, start, end):
            continue  # "Kirishima" inside "Kirishimaya" is another word
        after = _JA_AFTER.match(low, end) or _EN_AFTER.match(low, end)
        before = _EN_BEFORE.search(low, max(0, start - 40), start)
        if before is not None and before.group().strip() == "like" and after is None:
            continue  # "I like X" is not a request to imitate; "like X would write" is (after matched)
        if after is None and before is None:
            continue
        span_start = before.start() if before is not None else start
        span_end = after.end() if after is not None else end
        o_start, o_end = view.original_span(span_start, span_end)
        kind, name = owner
        findings.append(
            Finding(
                "COPYRIGHT_STYLE", o_start, o_end, text[o_start:o_end], 0.9, "copyright_prompt",
                detail={kind: name},
            )
        )
    return findings


# --- outputs ---------------------------------------------------------------------------------

NGRAM = 5  # characters; long enough that Japanese function words alone do not make a match


def _compact(view_text: str) -> tuple[str, list[int]]:
    """Normalised text without whitespace (line breaks must not hide a copy), and each kept
    character's offset in the normalised view."""
    kept = [i for i, ch in enumerate(view_text) if not ch.isspace()]
    return "".join(view_text[i] for i in kept), kept


def _ngrams(s: str, n: int = NGRAM) -> set[str]:
    return {s[i:i + n] for i in range(len(s) - n + 1)}


class _SuffixAutomaton:
    """Suffix automaton of a work: the longest common substring with any output in O(len(output))."""

    def __init__(self, s: str) -> None:
        self.next: list[dict[str, int]] = [{}]
        self.link = [-1]
        self.length = [0]
        last = 0
        for ch in s:
            cur = len(self.length)
            self.next.append({})
            self.length.append(self.length[last] + 1)
            self.link.append(0)
            p = last
            while p != -1 and ch not in self.next[p]:
                self.next[p][ch] = cur
                p = self.link[p]
            if p != -1:
                q = self.next[p][ch]
                if self.length[p] + 1 == self.length[q]:
                    self.link[cur] = q
                else:
                    clone = len(self.length)
                    self.next.append(dict(self.next[q]))
                    self.length.append(self.length[p] + 1)
                    self.link.append(self.link[q])
                    while p != -1 and self.next[p].get(ch) == q:
                        self.next[p][ch] = clone
                        p = self.link[p]
                    self.link[q] = clone
                    self.link[cur] = clone
            last = cur

    def longest_common(self, t: str) -> tuple[int, int]:
        """(length, end offset in t) of the longest substring of t that occurs in the work."""
        state, current, best, best_end = 0, 0, 0, 0
        for i, ch in enumerate(t):
            while state and ch not in self.next[state]:
                state = self.link[state]
                current = self.length[state]
            if ch in self.next[state]:
                state = self.next[state][ch]
                current += 1
            if current > best:
                best, best_end = current, i + 1
        return best, best_end


class _WorkIndex:
    def __init__(self, text: str) -> None:
        self.compact, _ = _compact(NormalizedText(text).text)
        self.grams = _ngrams(self.compact)
        self.automaton = _SuffixAutomaton(self.compact)


def check_output(
    text: str, registry: CopyrightRegistry, threshold: float = 0.5, *, verbatim_chars: int = 80
) -> list[Finding]:
    """COPYRIGHT_SIMILAR findings, one per registered work the output resembles.

    score = max(containment, longest common substring / length of the shorter text); a finding
    is raised when score >= threshold or when the output copies `verbatim_chars` characters in a
    row (a long verbatim passage inside a much longer output). The span is that longest
    common passage in the output; the detail carries both numbers and the work.
    """
    if not text.strip() or not registry._indexes:
        return []
    view = NormalizedText(text)
    compact, positions = _compact(view.text)
    grams = _ngrams(compact)
    findings: list[Finding] = []
    for work, index in registry._indexes:
        containment = len(grams & index.grams) / len(grams) if grams else 0.0
        lcs, lcs_end = index.automaton.longest_common(compact)
        shorter = min(len(compact), len(index.compact)) or 1
        score = max(containment, lcs / shorter)
        if score < threshold and lcs < verbatim_chars:
            continue
        if lcs:
            o_start, o_end = view.original_span(positions[lcs_end - lcs], positions[lcs_end - 1] + 1)
        else:
            o_start, o_end = 0, len(text)
        findings.append(
            Finding(
                "COPYRIGHT_SIMILAR", o_start, o_end, text[o_start:o_end], round(score, 4), "copyright_output",
                detail={
                    "work": work.title,
                    "creator": work.creator,
                    "containment": round(containment, 4),
                    "longest_common": lcs,
                    "ngram": NGRAM,
                },
            )
        )
    return sorted(findings, key=lambda f: -f.score)
