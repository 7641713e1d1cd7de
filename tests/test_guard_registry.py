"""RecognizerRegistry (#17): an organisation's own recognisers and labels, without touching the
shipped registry; the scan budget; and the O(n log n) span choice against a brute-force twin."""

from __future__ import annotations

import random
import time

import pytest

from sekisho.errors import InvalidInput
from sekisho.guard import (
    DEFAULT_ENTITIES,
    GuardError,
    PatternRecognizer,
    ScanBudgetExceeded,
    default_registry,
    scan,
    scan_many,
)
from sekisho.guard.masking import MaskSession, occurrences
from sekisho.guard.spans import keep_disjoint
from sekisho.identity import Principal, Role

ALICE = Principal("alice", Role.USER)


def employee_id(**kw) -> PatternRecognizer:
    return PatternRecognizer(entity="EMPLOYEE_ID", name=kw.pop("name", "employee_id"),
                             pattern=r"(?<![0-9A-Za-z])S[0-9]{6}(?![0-9])", base_score=0.6,
                             context=("社員番号", "職員番号"), **kw)


def test_default_registry_has_the_shipped_entities():
    registry = default_registry()
    assert registry.default_entities == DEFAULT_ENTITIES
    assert registry.entities == DEFAULT_ENTITIES + ("PERSON",)
    assert registry.label("MY_NUMBER") == "マイナンバー"


def test_custom_recogniser_and_label_stay_in_their_registry():
    registry = default_registry()
    registry.add(employee_id(), label="社員番号")
    text = "社員番号 Ｓ１２３４５６ の件、電話 03-1234-5678"
    got = registry.scan(text)
    assert [(f.entity, f.text, f.label, f.score) for f in got] == [
        ("EMPLOYEE_ID", "Ｓ１２３４５６", "社員番号", 0.95),
        ("PHONE_NUMBER", "03-1234-5678", "電話番号", 0.95),
    ]
    assert registry.labels["EMPLOYEE_ID"] == "社員番号"
    assert [f.entity for f in scan(text)] == ["PHONE_NUMBER"]  # the shipped registry is untouched
    assert "EMPLOYEE_ID" not in default_registry().entities
    # masking names the placeholder by the finding's label
    masked, _ = MaskSession(ALICE).mask(text, got)
    assert masked == "社員番号 <社員番号_1> の件、電話 <電話番号_1>"


def test_requires_context_and_remove():
    registry = default_registry()
    registry.add(employee_id(requires_context=True), label="社員番号")
    assert registry.scan("型式 S123456") == []
    assert [f.text for f in registry.scan("職員番号:S123456")] == ["S123456"]
    registry.remove("employee_id")
    assert "EMPLOYEE_ID" not in registry.entities and "EMPLOYEE_ID" not in registry.labels
    assert registry.scan("職員番号:S123456") == []
    with pytest.raises(GuardError, match="no recogniser named 'employee_id'"):
        registry.remove("employee_id")


def test_a_pattern_added_to_a_known_entity():
    registry = default_registry()
    registry.add(PatternRecognizer(entity="PHONE_NUMBER", name="extension", pattern=r"内線[0-9]{4}",
                                   base_score=0.7))
    assert [(f.entity, f.text) for f in registry.scan("内線4512 まで")] == [("PHONE_NUMBER", "内線4512")]


@pytest.mark.parametrize("kwargs, label, message", [
    ({"name": "my_number"}, "社員番号", "already registered"),
    ({}, None, "give its Japanese label"),
    ({}, "社員_番号", "without <, >, _ or spaces"),
])
def test_registry_refuses_what_it_cannot_use(kwargs, label, message):
    registry = default_registry()
    with pytest.raises(GuardError, match=message):
        registry.add(employee_id(**kwargs), label=label)


def test_registry_refuses_a_second_label_for_a_known_entity():
    with pytest.raises(GuardError, match="already labelled 'マイナンバー'"):
        default_registry().add(PatternRecognizer(entity="MY_NUMBER", name="x", pattern="X[0-9]+"), label="個人番号")


def test_unknown_entity_names_the_registry_entities():
    with pytest.raises(GuardError, match="unknown entity 'EMPLOYEE_ID'"):
        scan("x", entities=["EMPLOYEE_ID"])


# --- budget ---------------------------------------------------------------------------------------

def test_scan_budget_in_characters_and_time():
    with pytest.raises(ScanBudgetExceeded, match="12 characters to scan, more than the 10"):
        scan("電話 03-1234-5678"[:12], max_chars=10)
    with pytest.raises(ScanBudgetExceeded, match="more than the 10"):
        scan_many({"a": "123456", "b": "7890123"}, max_chars=10)
    with pytest.raises(ScanBudgetExceeded, match="time budget"):
        scan("電話 03-1234-5678", deadline=time.monotonic() - 1)
    assert scan("電話 03-1234-5678", deadline=time.monotonic() + 60)


def test_scan_budget_error_is_a_413_input_error():
    error = ScanBudgetExceeded("x")
    assert isinstance(error, GuardError) and isinstance(error, InvalidInput)
    assert (error.http_status, error.code) == (413, "scan_budget_exceeded")


# --- linear-time helpers against their obvious quadratic twins --------------------------------------

def _greedy(spans, priority):
    kept = []
    for i in priority:
        s, e = spans[i]
        e = max(e, s + 1)
        if all(e <= spans[k][0] or s >= max(spans[k][1], spans[k][0] + 1) for k in kept):
            kept.append(i)
    return sorted(kept, key=lambda i: spans[i])


@pytest.mark.parametrize("seed", range(30))
def test_keep_disjoint_matches_the_quadratic_greedy(seed):
    rng = random.Random(seed)
    spans = []
    for _ in range(rng.randrange(0, 60)):
        start = rng.randrange(0, 80)
        spans.append((start, start + rng.randrange(0, 12)))
    priority = list(range(len(spans)))
    rng.shuffle(priority)
    assert keep_disjoint(spans, priority) == _greedy(spans, priority)


@pytest.mark.parametrize("seed", range(20))
def test_occurrences_finds_what_str_find_finds(seed):
    rng = random.Random(seed)
    text = "".join(rng.choice("ab電話😀") for _ in range(200))
    values = ["".join(rng.choice("ab電話😀") for _ in range(rng.randrange(1, 5))) for _ in range(8)]
    expected = set()
    for index, value in enumerate(values):
        start = text.find(value)
        while start >= 0:
            expected.add((start, start + len(value), index))
            start = text.find(value, start + 1)
    assert set(occurrences(text, values)) == expected


def test_mask_known_prefers_the_longer_value_where_two_overlap():
    session = MaskSession(ALICE)
    text = "番号 090-1234-5678 と 1234"
    session.mask(text, [])
    session.placeholder("BANK_ACCOUNT", "1234")
    session.placeholder("PHONE_NUMBER", "090-1234-5678")
    assert session.mask_known("再掲 090-1234-5678、1234") == "再掲 <電話番号_1>、<口座番号_1>"
