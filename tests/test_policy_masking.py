"""Reversible masking: stable placeholders within a request, restoration for the same principal only,
tolerant of how models copy placeholders, and safe across a token stream."""

from __future__ import annotations

from sekisho.guard.findings import Finding
from sekisho.guard.masking import MaskSession
from sekisho.identity import Principal, Role

ALICE = Principal("alice", Role.USER)
BOB = Principal("bob", Role.USER)


def _finding(text, value, entity):
    start = text.index(value)
    return Finding(entity, start, start + len(value), value, 1.0, "test")


def test_same_value_same_placeholder_and_restored_for_owner():
    text = "山田太郎の番号は123456789018です。再掲: 123456789018。佐藤花子にも連絡。"
    session = MaskSession(ALICE)
    second = text.rindex("123456789018")
    findings = [
        _finding(text, "山田太郎", "PERSON"),
        _finding(text, "123456789018", "MY_NUMBER"),
        Finding("MY_NUMBER", second, second + 12, "123456789018", 1.0, "test"),
        _finding(text, "佐藤花子", "PERSON"),
    ]
    masked, spans = session.mask(text, findings)
    assert masked == "<人名_1>の番号は<マイナンバー_1>です。再掲: <マイナンバー_1>。<人名_2>にも連絡。"
    assert [s.placeholder for s in spans] == ["<人名_1>", "<マイナンバー_1>", "<マイナンバー_1>", "<人名_2>"]
    assert session.restore(masked, ALICE) == text


def test_other_principal_gets_placeholders():
    session = MaskSession(ALICE)
    masked, _ = session.mask("電話は090-1234-5678", [Finding("PHONE_NUMBER", 3, 16, "090-1234-5678", 1.0, "t")])
    assert session.restore(masked, BOB) == "電話は<電話番号_1>"
    assert session.restore(masked, ALICE) == "電話は090-1234-5678"


def test_restores_placeholders_as_models_rewrite_them():
    session = MaskSession(ALICE)
    session.mask("番号123456789018", [Finding("MY_NUMBER", 2, 14, "123456789018", 1.0, "t")])
    assert session.restore("＜マイナンバー＿１＞と < マイナンバー_1 >、<マイナンバー_2>", ALICE) == \
        "123456789018と 123456789018、<マイナンバー_2>"


def test_overlapping_findings_mask_the_longest_once():
    text = "カード4111111111111111"
    session = MaskSession(ALICE)
    masked, spans = session.mask(text, [Finding("PHONE_NUMBER", 3, 14, text[3:14], 0.5, "t"),
                                        Finding("CREDIT_CARD", 3, 19, text[3:19], 0.9, "t")])
    assert masked == "カード<クレジットカード番号_1>" and len(spans) == 1


def test_stream_restoration_across_split_placeholders():
    session = MaskSession(ALICE)
    session.mask("山田太郎", [Finding("PERSON", 0, 4, "山田太郎", 1.0, "t")])
    pieces = ["こんにちは、<", "人名", "_1", ">さん。", "<b>太字</b>", "終わり"]
    assert "".join(session.restore_stream(pieces, ALICE)) == "こんにちは、山田太郎さん。<b>太字</b>終わり"
    assert "".join(session.restore_stream(pieces, BOB)) == "".join(pieces)
