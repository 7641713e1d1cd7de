"""guard: the checks every request passes through (PII recognisers, copyright, policy, masking).

Public face of the recognisers: `scan(text, *, entities=None, min_score=0.5, max_chars=..., deadline=None,
registry=None) -> list[Finding]`, `scan_many(texts, ...) -> dict[str, list[Finding]]` for the texts of
one conversation; `RecognizerRegistry` / `default_registry()` for an organisation's own recognisers;
entity names and their Japanese labels in `ENTITY_LABELS` (a registry's own in `registry.labels`);
`check_prompt` / `check_output` for copyright. Errors: `GuardError`, `ScanBudgetExceeded` (413).
"""

from sekisho.guard.copyright import CopyrightRegistry, check_output, check_prompt, load_registry
from sekisho.guard.errors import GuardError, ScanBudgetExceeded
from sekisho.guard.findings import ENTITY_LABELS, Finding, entity_label
from sekisho.guard.recognizers import ALL_ENTITIES, DEFAULT_ENTITIES, PatternRecognizer
from sekisho.guard.registry import MAX_SCAN_CHARS, RecognizerRegistry, default_registry
from sekisho.guard.scan import scan, scan_many

__all__ = [
    "ALL_ENTITIES",
    "DEFAULT_ENTITIES",
    "ENTITY_LABELS",
    "MAX_SCAN_CHARS",
    "CopyrightRegistry",
    "Finding",
    "GuardError",
    "PatternRecognizer",
    "RecognizerRegistry",
    "ScanBudgetExceeded",
    "check_output",
    "check_prompt",
    "default_registry",
    "entity_label",
    "load_registry",
    "scan",
    "scan_many",
]
