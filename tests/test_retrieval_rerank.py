"""Second-stage re-scoring: its features, the ordering it produces, the logistic fit behind the
shipped weights, and the upgrade of stores indexed before character pairs were added."""

from __future__ import annotations

import numpy as np
import pytest

from sekisho.retrieval.kb import LEXICAL_SCHEME, KnowledgeBase
from sekisho.retrieval.rerank import FEATURES, Rescorer, features, fit_logistic, longest_common_substring, rescore
from sekisho.retrieval.tokenize import char_bigrams, tokenize


def test_longest_common_substring():
    assert longest_common_substring("東京都の人口", "大阪府と東京都の面積") == 4  # 東京都の
    assert longest_common_substring("abc", "xyz") == 0
    assert longest_common_substring("", "abc") == 0


def test_char_bigrams_skip_ascii_and_punctuation():
    assert char_bigrams("東京都、ＡＢ password ｶﾞｯｺｳ") == ["東京", "京都", "ガッ", "ッコ", "コウ"]


def test_features_reward_the_passage_that_contains_the_question():
    passages = {"a": "富士山\n富士山の標高は3776メートルである。", "b": "山梨県\n山梨県の人口は約80万人である。"}
    query = "富士山の標高は何メートルか"
    candidates = [("b", 1.0), ("a", 0.5)]
    lexical = [("b", 5.0), ("a", 4.0)]
    dense = [("a", 0.9), ("b", 0.8)]
    x = features(query, tokenize(query), candidates, lexical, dense, passages)
    col = {name: x[:, i] for i, name in enumerate(FEATURES)}
    assert x.shape == (2, len(FEATURES))
    assert col["lexical_rr"].tolist() == [1.0, 0.5] and col["dense_rr"].tolist() == [0.5, 1.0]
    assert col["bm25_rel"].tolist() == [1.0, 0.8]
    assert col["cosine_gap"][1] == 0.0 and col["cosine_gap"][0] < 0
    assert col["term_cover"][1] > col["term_cover"][0]
    assert col["gram_cover"][1] > col["gram_cover"][0]
    assert col["lcs_ratio"][1] == pytest.approx(len("富士山の標高は") / len(query))


def test_rescore_reorders_only_the_head_and_keeps_scores_decreasing():
    weights = tuple(1.0 if name == "lcs_ratio" else 0.0 for name in FEATURES)
    rescorer = Rescorer(weights=weights, bias=0.0, depth=2)
    fused = [("x", 3.0), ("y", 2.0), ("z", 1.0), ("w", 0.5)]
    matrix = np.zeros((2, len(FEATURES)))
    matrix[1, FEATURES.index("lcs_ratio")] = 1.0  # y contains the question, x does not
    ranked = rescore(rescorer, fused, matrix)
    assert [cid for cid, _ in ranked] == ["y", "x", "z", "w"]
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True)


def test_rescorer_needs_one_weight_per_feature():
    with pytest.raises(ValueError, match="weights"):
        Rescorer(weights=(1.0,), bias=0.0)


def test_fit_logistic_finds_the_informative_feature():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3))
    y = (x[:, 1] + 0.1 * rng.normal(size=2000) > 0).astype(float)
    w, _ = fit_logistic(x, y)
    assert abs(w[1]) > 5 * max(abs(w[0]), abs(w[2]))
    assert w[1] > 0


def test_store_indexed_with_sudachi_terms_only_is_upgraded_on_open(one_chunk_store):
    # A store as the previous release wrote it: Sudachi terms only, no lexical_scheme recorded.
    text = "ヒトリシズカは早春に咲く多年草である。"
    store = one_chunk_store(text, " ".join(tokenize("植物\n" + text)), title="植物")
    pair_query = ["トリ"]  # a character pair inside a word Sudachi keeps whole
    assert store.lexical_search(pair_query, 5) == []
    kb = KnowledgeBase(store, "use-m3")  # the embedder is not loaded: the upgrade is text only
    try:
        assert store.get_meta("lexical_scheme") == LEXICAL_SCHEME
        assert [cid for cid, _ in store.lexical_search(pair_query, 5)] == ["d:0"]
        assert [cid for cid, _ in store.lexical_search(tokenize("早春"), 5)] == ["d:0"]
    finally:
        kb.close()
