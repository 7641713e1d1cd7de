"""Second-stage re-scoring: its features, the ordering it produces, the logistic fit behind the
shipped weights, and the upgrade of stores indexed before character pairs were added."""

from __future__ import annotations

import numpy as np
import pytest

from sekisho.retrieval.kb import LEXICAL_SCHEME, KnowledgeBase
from sekisho.retrieval.rerank import (
    FEATURES,
    Rescorer,
    features,
    fit_listwise,
    fit_logistic,
    longest_common_substring,
    rescore,
)
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


def ranking_groups(rng, queries: int, candidates: int = 10):
    """Per query: column 0 is shared by all its candidates (a query-level scale, no use for
    ranking), column 1 is higher for the right candidate, column 2 is noise."""
    groups = []
    for _ in range(queries):
        y = np.zeros(candidates)
        y[rng.integers(candidates)] = 1.0
        x = np.column_stack([np.full(candidates, rng.normal(scale=3.0)),
                             rng.normal(size=candidates) + 1.5 * y,
                             rng.normal(size=candidates)])
        groups.append((x, y))
    return groups


def test_fit_listwise_ranks_the_right_candidate_first_with_calibrated_scores():
    rng = np.random.default_rng(1)
    train, held_out = ranking_groups(rng, 400), ranking_groups(rng, 400)
    train.append((rng.normal(size=(10, 3)), np.zeros(10)))  # a query whose answer was not retrieved
    w, b = fit_listwise(train)
    assert w[1] > 5 * max(abs(w[0]), abs(w[2]))

    def first_is_right(score) -> float:
        return float(np.mean([y[np.argmax(score(x))] for x, y in held_out]))

    # As good at picking the right candidate as knowing which column carries the signal.
    assert first_is_right(lambda x: x @ w) >= first_is_right(lambda x: x[:, 1]) - 0.02
    probabilities = np.concatenate([1 / (1 + np.exp(-(x @ w + b))) for x, _ in held_out])
    labels = np.concatenate([y for _, y in held_out])
    assert abs(probabilities.mean() - labels.mean()) < 0.02  # one right candidate in ten
    assert probabilities[labels == 1].mean() > 2 * probabilities[labels == 0].mean()


def test_fit_listwise_needs_a_right_candidate_somewhere():
    with pytest.raises(ValueError, match="at least one group with a right candidate"):
        fit_listwise([(np.ones((3, 2)), np.zeros(3))])


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


def test_shipped_constants_load_by_feature_name():
    from sekisho.retrieval.kb import FITTED

    e5 = FITTED["e5-small"]
    # The weights as fitted (docs/benchmarks.md, ## Retrieval); by name, so reordering FEATURES
    # cannot silently pair a weight with another feature.
    assert dict(zip(FEATURES, e5.rescorer.weights))["cosine_gap"] == 43.6363
    assert dict(zip(FEATURES, e5.rescorer.weights))["lcs_ratio"] == 7.9863
    assert (e5.rescorer.bias, e5.rescorer.depth, e5.fusion.lexical_weight) == (-8.9, 30, 1.4)
    assert "retrieval_jsquad.py" in e5.fitted and set(FITTED) >= {"e5-small", "use-m3"}


def test_constants_file_missing_a_feature_is_refused(tmp_path):
    from sekisho.retrieval.kb import load_fitted

    broken = tmp_path / "rescorers.toml"
    broken.write_text('[e5-small]\ndepth = 30\nbias = 0.0\n[e5-small.fusion]\nrrf_k = 1.0\n'
                      '[e5-small.weights]\nfused = 1.0\nlexical_rr = 0.0\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"rescorers.toml: \[e5-small.weights\]: missing .*lcs_ratio"):
        load_fitted(broken)
