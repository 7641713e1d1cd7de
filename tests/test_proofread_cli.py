"""`sekisho proofread`: findings with line and column, JSON with character offsets, --fix with a
diff (rewriting a legacy-encoded file in its own encoding), every supported input format, and one
clear line for bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import docx
import pytest
from typer.testing import CliRunner

from sekisho.cli import app

REPO = Path(__file__).resolve().parents[1]
MEMO = "令和7年度の説明会について\n申請する時は、住民および事業者の手続きを確認して下さい。\n"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("SEKISHO_")]:
        monkeypatch.delenv(key)
    return tmp_path


def run(*args: str, input: bytes | str | None = None):
    return CliRunner().invoke(app, ["proofread", *args], input=input)


def test_human_output_names_place_rule_suggestion_and_source(workdir):
    (workdir / "memo.txt").write_bytes(MEMO.encode("cp932"))
    result = run("memo.txt")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    # line 2, column 5 is 時 in 「申請する時は」 (1-based, characters)
    assert lines[0].startswith("memo.txt:2:5  形式名詞 / formal noun  「時」→「とき」  formal-noun:時 · ")
    assert "「公用文における漢字使用等について（平成22年内閣訓令第1号）」1(2)キ" in lines[0]
    assert any(line.startswith("memo.txt:2:10  接続詞 / conjunction  「および」→「及び」") for line in lines)
    assert any(line.startswith("memo.txt:2:17  送り仮名 / okurigana  「手続き」→「手続」") for line in lines)
    assert lines[-1].startswith("指摘 4 件、うち修正案あり 4 件")


def test_json_gives_character_offsets_into_the_files_text(workdir):
    (workdir / "memo.txt").write_bytes(MEMO.encode("euc_jp"))
    result = run("memo.txt", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["encoding"], report["chars"]) == ("euc_jp", len(MEMO))
    spans = [(f["rule"], f["start"], f["end"], f["suggestion"]) for f in report["findings"]]
    start = MEMO.index("時")
    assert spans[0] == ("formal-noun:時", start, start + 1, "とき")
    assert all(MEMO[f["start"]:f["end"]] == f["text"] for f in report["findings"])
    assert {"line", "column", "source", "family_label", "message"} <= set(report["findings"][0])


def test_fix_rewrites_a_shift_jis_file_in_shift_jis_and_shows_the_diff(workdir):
    path = workdir / "memo.txt"
    path.write_bytes(MEMO.encode("cp932"))
    result = run("memo.txt", "--fix")
    assert result.exit_code == 0, result.output
    assert "-申請する時は、住民および事業者の手続きを確認して下さい。" in result.stdout
    assert "+申請するときは、住民及び事業者の手続を確認してください。" in result.stdout
    assert path.read_bytes().decode("cp932") == (
        "令和7年度の説明会について\n申請するときは、住民及び事業者の手続を確認してください。\n")
    assert "memo.txt (cp932)" in result.stderr
    again = run("memo.txt", "--fix")
    assert "修正する指摘はありません" in again.stderr and path.read_bytes().decode("cp932").count("とき") == 1


def test_fix_from_standard_input_prints_the_corrected_text_and_the_diff_apart():
    result = run("-", "--fix", input="書類を提出して下さい。".encode())
    assert result.exit_code == 0, result.output
    assert result.stdout == "書類を提出してください。"
    assert "+書類を提出してください。" in result.stderr and "-書類を提出して下さい。" in result.stderr


def test_docx_is_read_and_fixed_to_a_separate_file(workdir):
    document = docx.Document()
    document.add_heading("お知らせ", level=1)
    document.add_paragraph("申し込みは窓口で受け付けます。")
    document.save(str(workdir / "notice.docx"))
    report = json.loads(run("notice.docx", "--json").stdout)
    (finding,) = report["findings"]
    assert (finding["rule"], finding["suggestion"]) == ("okurigana:申し込み", "申込み")
    assert report["text"][finding["start"]:finding["end"]] == "申し込み"
    refused = run("notice.docx", "--fix")
    assert refused.exit_code == 1 and "cannot be rewritten in place; use --output" in refused.stderr
    fixed = run("notice.docx", "--fix", "--output", "notice.txt")
    assert fixed.exit_code == 0, fixed.output
    assert "申込みは窓口で受け付けます。" in (workdir / "notice.txt").read_text(encoding="utf-8")


def test_pdf_text_is_proofread(workdir):
    report = json.loads(run(str(REPO / "samples" / "city" / "jido-teate.pdf"), "--json").stdout)
    rules = [f["rule"] for f in report["findings"]]
    assert "conjunction:また" in rules  # 「土曜日、日曜日または祝日」: 又は
    for f in report["findings"]:
        assert report["text"][f["start"]:f["end"]] == f["text"]


def test_configured_dictionary_applies(workdir):
    (workdir / "org.toml").write_text('[[replace]]\nfind = "子供"\nsuggest = "子ども"\n', encoding="utf-8")
    (workdir / "sekisho.toml").write_text('[proofread]\ndictionary = "org.toml"\n', encoding="utf-8")
    result = run("-", "--json", input="子供の数。")
    assert [f["rule"] for f in json.loads(result.stdout)["findings"]] == ["organisation:子供"]


def test_empty_input_is_no_findings_not_an_error(workdir):
    (workdir / "empty.txt").write_bytes(b"")
    assert json.loads(run("empty.txt", "--json").stdout)["findings"] == []
    result = run("-", input=b"")
    assert result.exit_code == 0 and "指摘 0 件" in result.stdout


@pytest.mark.parametrize(("args", "files", "message"), [
    (["missing.txt"], {}, "error: missing.txt: cannot read"),
    (["tool.exe"], {"tool.exe": b"MZ\x90\x00"}, "error: tool.exe: unsupported file type .exe"),
    (["fake.pdf"], {"fake.pdf": b"not a pdf at all"}, "error: fake.pdf:"),
    (["-", "--dictionary", "bad.toml"], {"bad.toml": b'[rules]\ndisable = ["nothing"]\n'},
     "error: bad.toml: [rules] disable: unknown rule family 'nothing'"),
])
def test_bad_input_is_one_line_and_exit_1(workdir, args, files, message):
    for name, data in files.items():
        (workdir / name).write_bytes(data)
    result = run(*args, input=b"x")
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
