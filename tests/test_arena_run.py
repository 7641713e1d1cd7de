"""Running a suite end to end with the extractive backend through the real request path: results,
resumability after an interruption (in-process and a killed subprocess), and the report."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sekisho.arena import ArenaError, load_suite, rebuild_report, run_suite, tasks
from sekisho.config import RetrievalConfig, Settings
from sekisho.models import energy

FIXTURES = Path(__file__).parent / "arena_fixtures"
SUITE = FIXTURES / "suite.toml"
SEKISHO = str(Path(sys.executable).with_name("sekisho"))  # the installed console script
LIMIT = 2
# rc, open, choice, leak, refusal, org: two items each at --limit 2
EXPECTED_ITEMS = 12


# The fast embedder keeps the knowledge bases of these tests quick to build on a busy machine.
EMBEDDER = "use-m3"


def _settings(tmp: Path) -> Settings:
    return Settings(base_dir=str(tmp), retrieval=RetrievalConfig(embedder=EMBEDDER))


def _rows(run_dir: Path) -> list[tuple[str, str, str, float]]:
    try:
        with sqlite3.connect(run_dir / "results.sqlite") as db:
            return sorted(db.execute("SELECT task, model, item_id, finished_at FROM items"))
    except sqlite3.OperationalError:  # the run has not created its tables yet
        return []


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("arena")
    mp = pytest.MonkeyPatch()
    mp.setattr(energy, "POWERCAP", tmp / "no-powercap")  # as on a machine without RAPL
    try:
        run_suite(_settings(tmp), load_suite(SUITE), ["extractive"], tmp / "run", limit=LIMIT, data=FIXTURES)
    finally:
        mp.undo()
    return tmp / "run"


def test_every_item_is_stored_with_its_measurements(finished_run):
    rows = _rows(finished_run)
    assert len(rows) == EXPECTED_ITEMS
    assert {r[0] for r in rows} == {"rc", "open", "choice", "leak", "refusal", "org"}
    report = json.loads((finished_run / "report.json").read_text(encoding="utf-8"))
    scores = report["scores"]["extractive"]
    for task_scores in scores.values():
        for metric in task_scores.values():
            assert 0.0 <= metric["mean"] <= 1.0
            assert metric["ci"][0] <= metric["mean"] <= metric["ci"][1]
    assert scores["open"]["recall"]["n"] == LIMIT
    perf = report["performance"]["extractive"]
    assert perf["items"] == EXPECTED_ITEMS and perf["latency_p50_s"] > 0 and perf["total_tokens"] > 0
    # the extractive backend cannot score choices by likelihood: the method says so
    assert report["choice_methods"]["extractive"]["choice"] == "generate"


def test_leak_rate_is_zero_with_the_default_policy(finished_run):
    report = json.loads((finished_run / "report.json").read_text(encoding="utf-8"))
    assert report["scores"]["extractive"]["leak"]["leak"]["mean"] == 0.0


def test_energy_without_rapl_is_labelled_an_estimate(finished_run):
    report = json.loads((finished_run / "report.json").read_text(encoding="utf-8"))
    perf = report["performance"]["extractive"]
    assert perf["energy_is_estimate"] is True and perf["energy_source"] == "estimate"
    assert "推定" in perf["energy_label"] and "estimate" in perf["energy_label"]
    html = (finished_run / "report.html").read_text(encoding="utf-8")
    assert "推定 est." in html and "推定値 (estimate)" in html


class _Balanced(HTMLParser):
    """Checks that every element is closed in order (void elements excepted)."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "line", "rect", "circle", "path"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else '-'}>")
        else:
            self.stack.pop()


def test_report_is_one_self_contained_html_file(finished_run):
    html = (finished_run / "report.html").read_text(encoding="utf-8")
    parser = _Balanced()
    parser.feed(html)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    assert html.startswith("<!doctype html>")
    assert "http://" not in html and "https://" not in html  # nothing to fetch, no links out
    assert "<script" not in html and "<link" not in html and "src=" not in html
    assert '<table id="ranking">' in html and "<b>extractive</b>" in html
    assert "総合順位" in html and "Overall ranking" in html
    assert html.count("<svg") == 2 + 6  # two cost/quality scatters, one bar chart per task
    assert "主な失敗例" in html and "Worst failures" in html
    assert "実行環境" in html and "Python" in html


def test_report_rebuilds_from_stored_results(finished_run):
    before = json.loads((finished_run / "report.json").read_text(encoding="utf-8"))
    (finished_run / "report.html").unlink()
    html, js = rebuild_report(finished_run)
    after = json.loads(js.read_text(encoding="utf-8"))
    assert html.exists()
    assert after["scores"] == before["scores"] and after["overall"] == before["overall"]


def test_interrupted_run_resumes_without_redoing_items(tmp_path, monkeypatch):
    suite = load_suite(SUITE)
    asked: list[str] = []
    real = dict(tasks.RUNNERS)

    def counting(kind, interrupt_after=None):
        def run(task, item, ctx):
            if interrupt_after is not None and len(asked) == interrupt_after:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the run
            asked.append(f"{task.id}/{item.id}")
            return real[kind](task, item, ctx)
        return run

    only = ["rc", "choice", "leak"]  # the tasks without a knowledge base: quick to run twice
    total = LIMIT * len(only)
    for kind in real:
        monkeypatch.setitem(tasks.RUNNERS, kind, counting(kind, interrupt_after=3))
    with pytest.raises(KeyboardInterrupt):
        run_suite(_settings(tmp_path), suite, ["extractive"], tmp_path / "run", limit=LIMIT, data=FIXTURES, tasks=only)
    first = list(asked)
    stored = _rows(tmp_path / "run")
    assert len(first) == 3 and len(stored) == 3  # everything finished before Ctrl-C was kept

    asked.clear()
    for kind in real:
        monkeypatch.setitem(tasks.RUNNERS, kind, counting(kind))
    summary = run_suite(_settings(tmp_path), suite, ["extractive"], tmp_path / "run", limit=LIMIT, data=FIXTURES,
                        tasks=only)
    assert not set(asked) & set(first)  # no item asked twice
    assert len(asked) == total - 3 and summary.skipped == 3 and summary.done == total - 3
    final = _rows(tmp_path / "run")
    assert len(final) == total
    assert [r for r in final if r in stored] == stored  # the first run's rows are untouched


def test_killed_subprocess_loses_nothing(tmp_path):
    run_dir = tmp_path / "run"
    command = [SEKISHO, "arena", "run", str(SUITE), "--data", str(FIXTURES),
               "--tasks", "refusal", "--limit", "16", "--out", str(run_dir)]
    env = {**os.environ, "SEKISHO_CONFIG": "", "SEKISHO_RETRIEVAL__EMBEDDER": EMBEDDER}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            # Kill at the first stored item: an extractive item takes ~15 ms, so polling slower
            # than that lets a quiet machine finish the whole run before the kill.
            if (run_dir / "results.sqlite").exists() and _rows(run_dir):
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    before = _rows(run_dir)
    assert 1 <= len(before) < 16
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{len(before)} 問は前回分を再利用" in done.stdout
    after = _rows(run_dir)
    assert len(after) == 16
    assert [r for r in after if r in before] == before


def test_unknown_model_is_one_clear_error(tmp_path):
    with pytest.raises(ArenaError, match="unknown model 'gpt-9'; configured backends: extractive"):
        run_suite(_settings(tmp_path), load_suite(SUITE), ["gpt-9"], tmp_path / "run", data=FIXTURES)


def test_a_data_file_for_tasks_of_several_files_is_refused(tmp_path):
    with pytest.raises(ArenaError, match="the selected tasks read several data files; give the folder"):
        run_suite(_settings(tmp_path), load_suite(SUITE), ["extractive"], tmp_path / "run",
                  data=FIXTURES / "org-questions.csv")


def test_a_data_file_serves_the_tasks_that_read_it_alone(tmp_path):
    # --tasks org needs only org-questions.csv: the other tasks' files are not asked for.
    summary = run_suite(_settings(tmp_path), load_suite(SUITE), ["extractive"], tmp_path / "run",
                        data=FIXTURES / "org-questions.csv", tasks=["org"])
    assert summary.done == 2 and not summary.errors  # the file's two questions (its third row has none)
    assert {task for task, *_ in _rows(tmp_path / "run")} == {"org"}


def test_a_task_not_run_needs_no_data(tmp_path):
    only_rc = tmp_path / "data"
    (only_rc / "jsquad").mkdir(parents=True)
    (only_rc / "jsquad" / "valid.json").write_bytes((FIXTURES / "jsquad" / "valid.json").read_bytes())
    summary = run_suite(_settings(tmp_path), load_suite(SUITE), ["extractive"], tmp_path / "run",
                        data=only_rc, tasks=["rc"], limit=2)
    assert summary.done == 2 and not summary.errors


def test_cli_errors_are_one_line(tmp_path):
    result = subprocess.run([SEKISHO, "arena", "report", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "no arena results here" in result.stderr
    result = subprocess.run([SEKISHO, "arena", "run", "no-such-suite", "--out",
                             str(tmp_path / "x")], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1 and "suite 'no-such-suite' not found" in result.stderr
    assert "Traceback" not in result.stderr
