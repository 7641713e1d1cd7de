"""guard: the checks every request passes through (PII recognisers, copyright, policy, masking).

Public face of the recognisers: `scan(text, *, entities=None) -> list[Finding]`; entity names
and their Japanese labels in `ENTITY_LABELS`; `check_prompt` / `check_output` for copyright.
"""

from sekisho.guard.copyright import CopyrightRegistry, check_output, check_prompt, load_registry
from sekisho.guard.errors import GuardError
from sekisho.guard.findings import ENTITY_LABELS, Finding, entity_label
from sekisho.guard.recognizers import ALL_ENTITIES, DEFAULT_ENTITIES
from sekisho.guard.scan import scan

__all__ = [
    "ALL_ENTITIES",
    "DEFAULT_ENTITIES",
    "ENTITY_LABELS",
    "CopyrightRegistry",
    "Finding",
    "GuardError",
    "check_output",
    "check_prompt",
    "entity_label",
    "load_registry",
    "scan",
]
