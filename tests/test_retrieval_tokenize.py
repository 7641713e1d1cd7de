"""Index terms: Japanese morphological analysis, width folding, English, and FTS5 query safety."""

from __future__ import annotations

import pytest

from sekisho.retrieval import tokenize
from sekisho.retrieval.tokenize import Analyzer


def test_japanese_sentence_keeps_content_words_and_drops_particles():
    assert tokenize("住民票の写しを市役所で請求する") == ["住民票", "写し", "市役所", "請求", "為る"]


def test_compound_is_split_into_searchable_parts():
    # Mode B splits the compound so a query for 会社 finds 株式会社, and 都庁舎 meets 都庁.
    assert tokenize("株式会社") == ["株式", "会社"]
    assert "都庁" in tokenize("東京都庁舎")


def test_full_width_and_half_width_meet():
    assert tokenize("ＡＢＣ１２３") == tokenize("ABC123")
    assert tokenize("ｺﾝﾋﾞﾆ") == tokenize("コンビニ")


def test_spelling_variants_meet_through_normalised_form():
    assert tokenize("附属病院") == tokenize("付属病院")


def test_inflected_verbs_meet_their_dictionary_form():
    assert tokenize("走った") == tokenize("走ります") == tokenize("走る")


def test_english_is_lowercased_stemmed_and_stopworded():
    assert tokenize("The Library closes at 8") == ["librari", "close", "8"]
    assert tokenize("libraries closed") == tokenize("library close")


def test_mixed_script_text():
    assert tokenize("マイナンバーカードでPDFを印刷") == ["マイナンバー", "カード", "pdf", "印刷"]


def test_offsets_point_into_the_original_text():
    text = "ＡＢＣ株式会社の東京都庁舎"
    terms = Analyzer("B", "normalized").terms(text)
    assert [(text[t.start:t.end], t.term) for t in terms][:2] == [("ＡＢＣ", "abc"), ("株式", "株式")]


def test_very_long_text_is_tokenised_in_pieces():
    text = "今日は良い天気です。" * 5000  # 50,000 characters: over Sudachi's single-input limit
    assert tokenize(text).count("天気") == 5000


@pytest.mark.parametrize(
    "query",
    ['"', 'say "hello', "a* OR b", "-minus", "NEAR(a b)", "x AND y NOT z", "col:umn", "(paren", "^caret",
     "100%", "C++", "「引用」と『括弧』", "'; DROP TABLE chunks; --"],
)
def test_hostile_queries_never_break_fts(one_chunk_store, query):
    text = "hello world minus column paren caret drop table chunks"
    store = one_chunk_store(text, " ".join(tokenize(text)))
    results = store.lexical_search(tokenize(query), 5)
    assert all(cid == "d:0" for cid, _ in results)
    assert store.chunk_count() == 1


def test_query_terms_that_look_like_fts_syntax_are_matched_literally(one_chunk_store):
    text = 'near or and not say"'
    store = one_chunk_store(text, text)
    # Operators as terms are words to find, not syntax; an unbalanced quote is part of the term.
    assert [cid for cid, _ in store.lexical_search(["NEAR", "OR"], 5)] == ["d:0"]
    assert [cid for cid, _ in store.lexical_search(['say"'], 5)] == ["d:0"]
    assert store.lexical_search(["a*", "(x", "-y"], 5) == []
    assert store.lexical_search([], 5) == []
