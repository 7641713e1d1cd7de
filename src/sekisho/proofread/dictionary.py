"""The organisation's dictionary: one TOML file an administrator edits (samples/proofread-dictionary.toml).

    [rules]
    disable = ["loanword", "formal-noun:時"]   # a whole family, or one rule as findings name it
    max_sentence_chars = 100

    [keep]
    words = ["わが町サポーター"]                 # never flagged (names of the city's own things)

    [[replace]]
    find = "子供"                                # the city's own preferred forms
    suggest = "子ども"
    note = "本市の表記基準"
"""

from __future__ import annotations

from pathlib import Path

from sekisho.config import read_toml
from sekisho.proofread.model import FAMILIES, Dictionary, ProofreadError, Replacement

_SECTIONS = {"rules": {"disable", "max_sentence_chars"}, "keep": {"words"}, "replace": {"find", "suggest", "note"}}


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ProofreadError(f"{where}: expected a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ProofreadError(f"{where}: unknown key {unknown[0]!r} (expected: {', '.join(sorted(allowed))})")


def parse_dictionary(data: dict, path: str = "") -> Dictionary:
    label = path or "dictionary"
    _check_keys(data, set(_SECTIONS), label)
    rules = data.get("rules", {})
    _check_keys(rules, _SECTIONS["rules"], f"{label}: [rules]")
    disable = _strings(rules.get("disable", []), f"{label}: [rules] disable")
    for rule in disable:
        if rule.split(":", 1)[0] not in FAMILIES:
            raise ProofreadError(f"{label}: [rules] disable: unknown rule family {rule.split(':', 1)[0]!r} "
                                 f"(families: {', '.join(FAMILIES)})")
    limit = rules.get("max_sentence_chars")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 10):
        raise ProofreadError(f"{label}: [rules] max_sentence_chars: expected a whole number of at least 10")
    keep = data.get("keep", {})
    _check_keys(keep, _SECTIONS["keep"], f"{label}: [keep]")
    replacements = []
    for n, entry in enumerate(data.get("replace", []), 1):
        where = f"{label}: [[replace]] {n}"
        if not isinstance(entry, dict):
            raise ProofreadError(f"{where}: expected a table with find and suggest")
        _check_keys(entry, _SECTIONS["replace"], where)
        find, suggest = entry.get("find"), entry.get("suggest")
        if not isinstance(find, str) or not find.strip() or not isinstance(suggest, str):
            raise ProofreadError(f"{where}: find (non-empty) and suggest are required strings")
        replacements.append(Replacement(find.strip(), suggest, str(entry.get("note", ""))))
    return Dictionary(tuple(replacements), _strings(keep.get("words", []), f"{label}: [keep] words"),
                      frozenset(disable), limit, path)


def load_dictionary(path: str | Path) -> Dictionary:
    """The dictionary in `path`, or ProofreadError naming the file and what is wrong."""
    return parse_dictionary(read_toml(path, "proofreading dictionary", ProofreadError), str(path))


def configured_dictionary(settings) -> Dictionary | None:
    """The dictionary named by `[proofread] dictionary` in the settings (relative to the
    configuration file), or None when none is configured."""
    from sekisho.config import resolve_path

    name = settings.proofread.dictionary
    return load_dictionary(resolve_path(settings, name)) if name else None
