"""Recognisers, one or two per entity (a fast always-on pattern, and a context-anchored one where
the shape alone is ambiguous). Rule-based ones are always on; PERSON (GiNZA NER) only on request.
They are plain instances: a RecognizerRegistry (guard/registry.py) decides which ones scan."""

from __future__ import annotations

from sekisho.guard.recognizers.address import ADDRESS, ADDRESS_IN_CONTEXT, POSTAL_CODE, POSTAL_CODE_IN_CONTEXT
from sekisho.guard.recognizers.base import Candidate, PatternRecognizer, Recognizer
from sekisho.guard.recognizers.dates import DATE_OF_BIRTH
from sekisho.guard.recognizers.email import EMAIL_ADDRESS
from sekisho.guard.recognizers.marking import CONFIDENTIAL
from sekisho.guard.recognizers.numbers import (
    BANK_ACCOUNT,
    CORPORATE_NUMBER,
    CREDIT_CARD,
    DRIVERS_LICENSE,
    MY_NUMBER,
    PASSPORT,
)
from sekisho.guard.recognizers.person import PERSON
from sekisho.guard.recognizers.phone import PHONE_NUMBER

RULE_BASED: tuple[Recognizer, ...] = (
    MY_NUMBER,
    CORPORATE_NUMBER,
    CREDIT_CARD,
    PHONE_NUMBER,
    POSTAL_CODE,
    POSTAL_CODE_IN_CONTEXT,
    ADDRESS,
    ADDRESS_IN_CONTEXT,
    EMAIL_ADDRESS,
    BANK_ACCOUNT,
    PASSPORT,
    DRIVERS_LICENSE,
    DATE_OF_BIRTH,
    CONFIDENTIAL,
)
OPTIONAL: tuple[Recognizer, ...] = (PERSON,)

DEFAULT_ENTITIES: tuple[str, ...] = tuple(dict.fromkeys(r.entity for r in RULE_BASED))
ALL_ENTITIES: tuple[str, ...] = DEFAULT_ENTITIES + tuple(r.entity for r in OPTIONAL)

__all__ = [
    "ALL_ENTITIES",
    "DEFAULT_ENTITIES",
    "OPTIONAL",
    "RULE_BASED",
    "Candidate",
    "PatternRecognizer",
    "Recognizer",
]
