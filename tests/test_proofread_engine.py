"""The proofreader's engine as a user relies on it: offsets into the text as given, fixes that
change only what was flagged, quoted document names left as written, and the organisation's
dictionary (its own terms, names never flagged, rules switched off)."""

from __future__ import annotations

import pytest

from sekisho.proofread import ProofreadError, apply_fixes, load_dictionary, parse_dictionary, proofread

MEMO = "申請する時は、住民および事業者の手続きについて、書類を提出して下さい。"


def test_empty_or_blank_text_has_no_findings():
    assert proofread("") == []
    assert proofread(" \n\u3000\n") == []


def test_offsets_index_the_text_as_given():
    text = "ｴﾋﾞﾃﾞﾝｽを示す。\r\n申請する時は届け出る。"  # half-width katakana and a Windows line end
    findings = proofread(text)
    assert [(f.rule, text[f.start:f.end]) for f in findings] == [("loanword:エビデンス", "ｴﾋﾞﾃﾞﾝｽ"), ("formal-noun:時", "時")]
    assert all(text[f.start:f.end] == f.text for f in findings)


def test_apply_fixes_changes_only_the_flagged_words():
    assert apply_fixes(MEMO, proofread(MEMO)) == "申請するときは、住民及び事業者の手続について、書類を提出してください。"


def test_apply_fixes_skips_advice_and_findings_that_no_longer_match():
    findings = proofread(MEMO)
    assert apply_fixes(MEMO, []) == MEMO
    assert apply_fixes("別の文章。", findings) == "別の文章。"  # offsets from another text change nothing
    long = "本市では、" + "地域の医療機関、介護事業者、自治会及び民間企業と連携し、" * 3 + "支援を拡充する。"
    (advice,) = [f for f in proofread(long) if f.family == "long-sentence"]
    assert advice.suggestion is None and apply_fixes(long, [advice]) == long


def test_quoted_names_of_documents_keep_their_notation():
    text = "「公用文における漢字使用等について」及び『第２次みなと市総合計画』に従って書く時は注意する。"
    assert [f.rule for f in proofread(text)] == ["formal-noun:時"]
    cited = "「申請する時の手引」（令和7年3月改訂）を参照する。"
    assert proofread(cited) == []
    # A quotation of the notice's own wording is not a document name: it is proofread.
    assert [f.rule for f in proofread("窓口に「書類を提出して下さい」と掲示する。")] == ["subsidiary:下さる"]


def test_organisation_dictionary_adds_terms_keeps_names_and_disables_rules(tmp_path):
    path = tmp_path / "dict.toml"
    path.write_text(
        '[rules]\ndisable = ["loanword", "formal-noun:時"]\nmax_sentence_chars = 20\n'
        '[keep]\nwords = ["わがまち応援団"]\n'
        '[[replace]]\nfind = "子供"\nsuggest = "子ども"\nnote = "市の表記基準"\n', encoding="utf-8")
    org = load_dictionary(path)
    text = "わがまち応援団が子供のエビデンスを集める時は、わが国の制度による。"
    findings = proofread(text, dictionary=org)
    assert [(f.rule, f.text, f.suggestion) for f in findings] == [
        ("long-sentence", text, None),
        ("organisation:子供", "子供", "子ども"),
        ("adnominal:わが", "わが", "我が"),
    ]
    assert findings[1].source.section == "市の表記基準"
    # Without the dictionary the same text has its loanword, formal noun and no organisation term.
    assert {f.family for f in proofread(text)} == {"adnominal", "loanword", "formal-noun"}


@pytest.mark.parametrize(("toml", "message"), [
    ('[rules]\ndisable = ["spelling"]\n', "unknown rule family 'spelling'"),
    ("[rules]\nmax_sentence_chars = 3\n", "max_sentence_chars: expected a whole number of at least 10"),
    ('[[replace]]\nfind = "子供"\n', "find (non-empty) and suggest are required strings"),
    ('[keep]\nword = ["x"]\n', "unknown key 'word'"),
    ("[rules\n", "not valid TOML"),
])
def test_a_broken_dictionary_is_one_line_naming_the_file_and_the_problem(tmp_path, toml, message):
    path = tmp_path / "org.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ProofreadError) as excinfo:
        load_dictionary(path)
    assert str(path) in str(excinfo.value) and message in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_the_sample_dictionary_loads():
    from pathlib import Path

    org = load_dictionary(Path(__file__).resolve().parents[1] / "samples" / "proofread-dictionary.toml")
    assert org.max_sentence_chars == 80 and any(r.find == "子供" for r in org.replace)
    assert parse_dictionary({}).disable == frozenset()


def test_large_text_is_analysed_in_pieces_with_offsets_intact():
    paragraph = "申請は窓口で受け付ける。" * 300 + "\n"
    text = paragraph * 8 + "申請する時は届け出る。"  # well past Sudachi's input limit
    (finding,) = proofread(text)
    assert finding.rule == "formal-noun:時" and text[finding.start:finding.end] == "時"
