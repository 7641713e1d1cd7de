"""`sekisho guard scan`: text and JSON output, stdin and legacy-encoded files, the policy's action."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sekisho.cli import app

TEXT = "【社外秘】\n申請者の電話は０３－１２３４－５６７８、マイナンバーは123456789018です。\n"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a policy where the two entities get different actions on a local backend."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in __import__("os").environ if k.startswith("SEKISHO_")]:
        monkeypatch.delenv(key)
    (tmp_path / "policy.toml").write_text(
        '[external]\ndefault = "mask"\nMY_NUMBER = "block"\n'
        '[local]\ndefault = "allow"\nMY_NUMBER = "mask"\n'
        '[roles.user.local]\nPHONE_NUMBER = "review"\n',
        encoding="utf-8",
    )
    (tmp_path / "sekisho.toml").write_text('[guard]\npolicy = "policy.toml"\n', encoding="utf-8")
    return tmp_path


def run(*args: str, input: bytes | str | None = None):
    return CliRunner().invoke(app, ["guard", "scan", *args], input=input)


def test_text_output_lists_entity_span_text_and_action(workdir):
    result = run("-", input=TEXT)
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    phone = TEXT.index("０３")
    my = TEXT.index("123456789018")
    assert lines == [
        ["1-4", "CONFIDENTIAL (機密表示)", "社外秘", "allow"],
        [f"{phone}-{phone + 12}", "PHONE_NUMBER (電話番号)", "０３－１２３４－５６７８", "allow"],
        [f"{my}-{my + 12}", "MY_NUMBER (マイナンバー)", "123456789018", "mask"],
    ]


def test_json_lines_follow_role_and_backend_policy(workdir):
    result = run("-", "--json", "--role", "user", input=TEXT)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [(r["entity"], r["action"]) for r in records] == [
        ("CONFIDENTIAL", "allow"), ("PHONE_NUMBER", "review"), ("MY_NUMBER", "mask"),
    ]
    assert all(TEXT[r["start"]:r["end"]] == r["text"] for r in records)


def test_external_backend_gets_the_external_actions(workdir):
    (workdir / "sekisho.toml").write_text(
        '[guard]\npolicy = "policy.toml"\n'
        '[models.backends.vendor]\nkind = "openai"\nmodel = "gpt-x"\nbase_url = "https://api.example.com/v1"\n',
        encoding="utf-8",
    )
    result = run("-", "--json", "--backend", "vendor", input=TEXT)
    assert result.exit_code == 0, result.output
    actions = {json.loads(line)["entity"]: json.loads(line)["action"] for line in result.stdout.splitlines()}
    assert actions == {"CONFIDENTIAL": "mask", "PHONE_NUMBER": "mask", "MY_NUMBER": "block"}


@pytest.mark.parametrize("encoding, dash", [("cp932", "－"), ("euc_jp", "−")])  # JIS X 0208 has − not －
def test_reads_shift_jis_and_euc_jp_files(workdir, encoding, dash):
    text = TEXT.replace("－", dash)
    path = workdir / f"memo-{encoding}.txt"
    path.write_bytes(text.encode(encoding))
    result = run(str(path), "--json")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == [
        "社外秘", f"０３{dash}１２３４{dash}５６７８", "123456789018",
    ]


def test_copyright_prompt_findings_when_a_registry_is_configured(workdir):
    (workdir / "registry.toml").write_text('[[creator]]\nname = "霧島 透"\n', encoding="utf-8")
    (workdir / "sekisho.toml").write_text(
        '[guard]\npolicy = "policy.toml"\ncopyright_registry = "registry.toml"\n', encoding="utf-8")
    result = run("-", "--json", input="霧島透風に書いて。電話 03-1234-5678")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["entity"], r["text"]) for r in records] == [
        ("COPYRIGHT_STYLE", "霧島透風"), ("PHONE_NUMBER", "03-1234-5678"),
    ]


def test_text_copying_a_registered_work_is_reported_with_both_numbers(workdir):
    work = "夜明け前の港には、まだ誰も名前を知らない風が吹いていた。灯台の光は三度まわって海を撫でた。"
    (workdir / "registry.toml").write_text(f'[[work]]\ntitle = "月影の港"\ntext = "{work}"\n', encoding="utf-8")
    (workdir / "sekisho.toml").write_text(
        '[guard]\npolicy = "policy.toml"\ncopyright_registry = "registry.toml"\n', encoding="utf-8")
    result = run("-", "--json", input="草稿：" + work)
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["entity"] == "COPYRIGHT_SIMILAR" and record["text"] == work
    assert record["detail"]["work"] == "月影の港"
    # 5-grams: the output has len(work) + 3 characters, so len(work) - 1 grams, of which the
    # len(work) - 4 that lie inside the copied passage occur in the work.
    assert record["detail"]["containment"] == round((len(work) - 4) / (len(work) - 1), 4)
    assert record["detail"]["longest_common"] == len(work)


@pytest.mark.parametrize("args, message", [
    (["missing.txt"], "missing.txt: cannot read"),
    (["-", "--role", "boss"], "unknown role 'boss'"),
    (["-", "--entity", "NOPE"], "unknown entity 'NOPE'"),
    (["-", "--backend", "nowhere"], "nowhere"),
])
def test_bad_input_is_one_clear_line(workdir, args, message):
    result = run(*args, input="x")
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
