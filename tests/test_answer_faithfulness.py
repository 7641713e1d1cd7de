"""The faithfulness check flags what the passages do not say, and accepts what they do."""

from __future__ import annotations

from sekisho.answer import check_faithfulness
from sekisho.models import Passage

PASSAGES = [
    Passage(1, "a:0", "梅雨", "梅雨は、北海道と小笠原諸島を除く日本でみられる気象現象で、5月から7月にかけて来る雨の多い期間のこと。"
            "雨季の一種である。"),
    Passage(2, "b:0", "ラオス", "ラオスの首都はヴィエンチャンである。人口は約700万人。国土の約70％は高原や山岳地帯である。"),
]


def test_a_faithful_paraphrase_with_citations_is_supported():
    report = check_faithfulness("梅雨は5月から7月にかけての雨の多い期間です[1]。ラオスの首都はヴィエンチャンです。[2]", PASSAGES)
    assert report.faithful and report.score > 0.9
    assert [s.cited for s in report.sentences] == [(1,), (2,)]  # a marker after 。 belongs to the sentence before


def test_wrong_number_is_unsupported_and_named():
    report = check_faithfulness("梅雨は3月から4月にかけての期間です[1]。", PASSAGES)
    (sentence,) = report.unsupported
    assert {"3", "4"} <= set(sentence.missing)
    assert report.score == 0.0 and not report.faithful


def test_wrong_named_entity_is_unsupported():
    report = check_faithfulness("ラオスの首都はバンコクです[2]。", PASSAGES)
    assert len(report.unsupported) == 1 and "バンコク" in report.unsupported[0].missing


def test_unsupported_claim_among_supported_ones_lowers_the_score_and_is_the_one_flagged():
    report = check_faithfulness("雨季の一種です[1]。ラオスの通貨はキープで、公用語はラオ語です[2]。", PASSAGES)
    assert [s.text for s in report.unsupported] == ["ラオスの通貨はキープで、公用語はラオ語です。"]
    assert 0.0 < report.score < 1.0


def test_citation_to_a_passage_that_does_not_say_it_is_a_bad_citation():
    report = check_faithfulness("ラオスの首都はヴィエンチャンです[1][2]。", PASSAGES)
    assert report.sentences[0].supported
    assert report.bad_citations == [("ラオスの首都はヴィエンチャンです。", 1)]
    assert not report.faithful


def test_citation_to_no_passage_is_invalid():
    report = check_faithfulness("人口は約700万人です[9]。", PASSAGES)
    assert report.invalid_citations == (9,) and not report.faithful


def test_era_year_matches_its_western_year():
    passages = [Passage(1, "c:0", "条例", "この条例は2021年4月1日から施行する。")]
    assert check_faithfulness("令和3年4月1日から施行されます[1]。", passages).faithful
    assert not check_faithfulness("令和4年4月1日から施行されます[1]。", passages).faithful


def test_not_found_answer_is_trivially_faithful():
    report = check_faithfulness("資料に記載がありません。", PASSAGES)
    assert report.not_found and report.faithful and report.score == 1.0
