"""Japanese-aware chunking: sentence boundaries, bounded size, overlap, exact offsets."""

from __future__ import annotations

import pytest

from sekisho.ingest import Section, chunk
from sekisho.text import clean, sentence_spans

# Sentences written out one by one, so the boundaries a chunk may use are known independently of
# the splitter under test.
SENTENCES = [
    "児童手当は、子どもを養育している人に支給される手当です。",
    "令和6年10月分から制度が変わり、所得制限がなくなりました。",
    "支給の対象も高校生年代まで広がりました！",
    "第3子以降はいくらになるのでしょうか？",
    "「第3子以降は月額3万円です。」",
    "（年齢にかかわらず同じ額です。）",
    "支給日は偶数月の10日で、前月までの2か月分を支給します。",
    "10日が土曜日、日曜日または祝日の場合は、その直前の平日に支給します。",
    "申請は、出生日または転入日の翌日から15日以内に行ってください。",
    "15日を過ぎると、過ぎた月の分は支給できません。",
    "窓口はこども家庭課（本庁舎2階 5番窓口）です。",
    "受付時間は平日の午前8時30分から午後5時15分までです。",
]


def joined(sentences, paragraph_every=4):
    """The sentences as a document with a blank line every few sentences; returns the text and
    the set of offsets where a sentence starts or ends."""
    text, starts, ends = "", set(), set()
    for i, sentence in enumerate(sentences):
        if i and i % paragraph_every == 0:
            text += "\n\n"
        starts.add(len(text))
        text += sentence
        ends.add(len(text))
    return text, starts, ends


def test_sentences_end_at_japanese_enders_and_keep_their_closing_brackets():
    text, _, _ = joined(SENTENCES, paragraph_every=100)
    assert [text[a:b] for a, b in sentence_spans(text)] == SENTENCES


def test_ender_inside_quotes_does_not_split_the_quote():
    text = "担当者は「窓口は混雑しています。番号札をお取りください。」と案内した。次の方どうぞ。"
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "担当者は「窓口は混雑しています。番号札をお取りください。」と案内した。",
        "次の方どうぞ。",
    ]


def test_lines_without_punctuation_are_separate_units():
    text = "■必要なもの\n・本人確認書類\n・印鑑\n受付は平日です。"
    assert [text[a:b] for a, b in sentence_spans(text)] == ["■必要なもの", "・本人確認書類", "・印鑑", "受付は平日です。"]


def test_english_sentences_split_but_not_at_decimals():
    text = "The fee is 3.5 dollars. Bring your residence card! Is parking free? Yes."
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "The fee is 3.5 dollars.", "Bring your residence card!", "Is parking free?", "Yes.",
    ]


@pytest.mark.parametrize("max_chars,overlap", [(400, 80), (120, 40), (80, 0), (60, 30)])
def test_chunks_are_bounded_exact_slices_that_never_cut_a_sentence(max_chars, overlap):
    text, starts, ends = joined(SENTENCES * 3)
    chunks = chunk(text, doc_id="doc", max_chars=max_chars, overlap=overlap)
    assert len(chunks) > 1
    for c in chunks:
        assert c.text == text[c.location.start:c.location.end]
        assert len(c.text) <= max_chars
        assert c.location.start in starts and c.location.end in ends
    # Every sentence is in some chunk, in order, and nothing is lost at the seams.
    covered = set()
    for c in chunks:
        covered.update(s for s in starts if c.location.start <= s < c.location.end)
    assert covered == starts
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert [c.id for c in chunks] == [f"doc:{i}" for i in range(len(chunks))]


def test_consecutive_chunks_overlap_by_whole_sentences_within_the_overlap_budget():
    text, starts, _ = joined(SENTENCES * 3)
    chunks = chunk(text, doc_id="doc", max_chars=150, overlap=80)
    for previous, current in zip(chunks, chunks[1:]):
        shared = previous.location.end - current.location.start
        assert 0 < shared <= 80  # sentences here are 20-40 chars, so one always fits
        assert current.location.start in starts


def test_without_overlap_chunks_tile_the_text():
    text, _, _ = joined(SENTENCES * 2)
    chunks = chunk(text, doc_id="d", max_chars=100, overlap=0)
    for previous, current in zip(chunks, chunks[1:]):
        assert previous.location.end <= current.location.start
        assert text[previous.location.end:current.location.start].strip() == ""


def test_one_sentence_longer_than_the_bound_is_cut_after_a_comma():
    clause = "住民票の写しの交付を請求する場合は、"
    long_sentence = clause * 12 + "窓口で申請書に記入してください。"
    chunks = chunk(long_sentence, doc_id="d", max_chars=100, overlap=20)
    assert len(chunks) >= 3
    assert "".join(c.text for c in chunks) == long_sentence  # pieces tile the sentence
    for c in chunks[:-1]:
        assert len(c.text) <= 100
        assert c.text.endswith("、")


def test_chunks_never_cross_sections_and_carry_heading_and_page():
    text = "手数料\n1通300円です。\n受付時間\n平日の午前8時30分からです。"
    split = text.index("受付時間")
    sections = [
        Section(0, split, ("住民票", "手数料"), page=1),
        Section(split, len(text), ("住民票", "受付時間"), page=2),
    ]
    chunks = chunk(text, doc_id="d", sections=sections, max_chars=400)
    assert [(c.text, c.location.heading, c.location.page) for c in chunks] == [
        ("手数料\n1通300円です。", ("住民票", "手数料"), 1),
        ("受付時間\n平日の午前8時30分からです。", ("住民票", "受付時間"), 2),
    ]
    assert chunks[1].location.label() == "p.2 / 住民票 > 受付時間"


def test_norm_text_is_nfkc_for_indexing_while_text_stays_original():
    text = "ＡＢＣ１２３のｶﾀｶﾅと①、住民\n票の写し。"
    (c,) = chunk(text, doc_id="d")
    assert c.text == text
    assert c.norm_text == "ABC123のカタカナと1、住民票の写し。"
    assert clean("  全角　スペース\t\tと\n改行 ") == "全角 スペース と改行"
    assert clean("Minato\nCity  Hall") == "Minato City Hall"


def test_whitespace_only_text_yields_no_chunks():
    assert chunk(" \n\u3000\n", doc_id="d") == []
