"""Suites and task data: shipped suites parse, bad suites fail with one line, the loaders read
JSQuAD, JCommonsenseQA and the organisation's CSV (Shift_JIS) / JSONL question sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from sekisho.arena import ArenaError, load_suite, shipped_suites
from sekisho.arena.datasets import load_task
from sekisho.arena.suite import parse_suite

FIXTURES = Path(__file__).parent / "arena_fixtures"


def test_shipped_suites_parse_and_cover_the_tasks():
    names = {p.stem for p in shipped_suites()}
    assert {"ja-standard", "org-questions"} <= names
    standard = load_suite("ja-standard")
    assert [t.kind for t in standard.tasks] == ["reading", "open_domain", "choice", "leak", "refusal"]
    assert standard.task("jsquad-open").primary == "contains"
    assert standard.task("jsquad-rc").primary == "f1"
    assert load_suite("org-questions").task("org").scorer == "keyfacts"


@pytest.mark.parametrize(("text", "message"), [
    ("name = 'x'", "has no [[tasks]]"),
    ("[[tasks]]\nid = 'a'\nkind = 'poetry'\nformat = 'jsquad'", "unknown kind 'poetry'"),
    ("[[tasks]]\nid = 'a'\nkind = 'reading'\nformat = 'jsquad'\nscorer = 'bleu'", "unknown scorer 'bleu'"),
    ("[[tasks]]\nid = 'a'\nkind = 'reading'\nformat = 'csvish'", "unknown format 'csvish'"),
    ("[[tasks]]\nid = 'a'\nkind = 'reading'\nformat = 'jsquad'\nheadline = 'bleu'", "unknown headline metric"),
    ("[[tasks]]\nid='a'\nkind='leak'\nformat='redteam'\n[[tasks]]\nid='a'\nkind='leak'\nformat='redteam'", "unique"),
    ("tasks = [", "not valid TOML"),
])
def test_bad_suites_are_one_line_errors(text, message):
    with pytest.raises(ArenaError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        parse_suite(text, "bad.toml")
    assert "\n" not in str(info.value)


def test_unknown_suite_names_the_shipped_ones():
    with pytest.raises(ArenaError, match="ja-standard"):
        load_suite("no-such-suite")


def test_jsquad_items_and_corpus():
    suite = load_suite(FIXTURES / "suite.toml")
    data = load_task(suite.task("rc"), FIXTURES, seed=0)
    assert sorted(i.id for i in data.items) == ["f1p0q0", "f1p0q1", "f2p0q0", "f2p0q1", "f2p1q0", "f3p0q0"]
    by_id = {i.id: i for i in data.items}
    assert by_id["f2p0q0"].answers == ("3776メートル", "3776")
    assert by_id["f2p1q0"].context_id == "jsquad/f2p1"
    assert by_id["f2p1q0"].context.startswith("富士山の最後の噴火")  # the "title [SEP]" prefix removed
    assert [d.path for d in data.corpus] == ["jsquad/f1p0", "jsquad/f2p0", "jsquad/f2p1", "jsquad/f3p0"]
    assert [d.title for d in data.corpus] == ["関所", "富士山", "富士山", "梅"]
    # seeded order: the same every time, so --limit N always takes the same items
    assert [i.id for i in load_task(suite.task("rc"), FIXTURES, seed=0).items] == [i.id for i in data.items]


def test_missing_data_names_the_file_and_the_option(tmp_path):
    suite = load_suite(FIXTURES / "suite.toml")
    with pytest.raises(ArenaError, match=r"task rc: data file .*valid.json not found \(give --data PATH\)"):
        load_task(suite.task("rc"), tmp_path)


def test_jcommonsenseqa_items():
    suite = load_suite(FIXTURES / "suite.toml")
    items = {i.id: i for i in load_task(suite.task("choice"), FIXTURES).items}
    assert items["3"].choices == ("絆創膏", "付箋", "切手", "湿布", "壁紙") and items["3"].label == 2


def test_org_questions_from_shift_jis_csv_with_japanese_headers():
    suite = load_suite(FIXTURES / "suite.toml")
    data = load_task(suite.task("org"), FIXTURES)
    assert [(i.question, i.key_facts) for i in sorted(data.items, key=lambda i: i.id)] == [
        ("燃やすごみは何曜日に出しますか。", ("月曜日", "木曜日")),
        ("住民票の写しの窓口手数料はいくらですか。", ("300円",)),
    ]
    assert len(data.skipped) == 1 and "org-questions.csv:4" in data.skipped[0]


def test_org_questions_from_jsonl_given_as_data_file():
    suite = load_suite("org-questions")
    data = load_task(suite.task("org"), FIXTURES / "org-questions.jsonl")
    assert {i.id: i.key_facts for i in data.items} == {"j1": ("第3月曜日", "年末年始"), "j2": ("2週間",)}
    assert data.skipped == [f"{FIXTURES / 'org-questions.jsonl'}:2: not a JSON object"]


def test_generated_tasks_are_stable():
    suite = load_suite(FIXTURES / "suite.toml")
    leak = load_task(suite.task("leak"), None)
    assert len(leak.items) == 4 and leak.digest == load_task(suite.task("leak"), None).digest
    refusal = load_task(suite.task("refusal"), None)
    assert refusal.corpus and all(i.id.startswith("rf") for i in refusal.items)
