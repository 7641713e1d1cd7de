"""Incremental ingestion into a real knowledge base (SQLite store in tmp_path, the shipped use-m3
embedder): skip unchanged, replace changed, prune, keep going after a bad file, uploads,
in-memory texts, and the `sekisho ingest` command."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sekisho.cli import app
from sekisho.config import RetrievalConfig, Settings, StoreConfig
from sekisho.ingest import ChunkSize, IngestError, document_id, ingest_bytes, ingest_paths, ingest_text
from sekisho.retrieval import open_knowledge_base
from sekisho.store.sqlite import SQLiteStore

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "city"
EMBEDDER = "use-m3"  # real, and fast enough to index in a unit test


def kb_settings(folder: Path) -> Settings:
    return Settings(store=StoreConfig(path="kb.db"), retrieval=RetrievalConfig(embedder=EMBEDDER), base_dir=str(folder))


@pytest.fixture
def kb(tmp_path):
    (tmp_path / "db").mkdir()
    with open_knowledge_base(kb_settings(tmp_path / "db")) as kb:
        yield kb


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """The bundled samples, ingested once: (knowledge base, first report, folder)."""
    folder = tmp_path_factory.mktemp("city")
    shutil.copytree(SAMPLES, folder / "city")
    kb = open_knowledge_base(kb_settings(folder))
    report = ingest_paths(kb, [folder / "city"], progress=False)
    yield kb, report, folder / "city"
    kb.close()


def test_every_sample_is_ingested_and_answers_the_readme_question(city):
    kb, report, _ = city
    assert report.failed == []
    assert len(report.added) == 7 and report.chunks == kb.store.chunk_count()
    hits = kb.search("住民票の写しの交付手数料はいくらですか？", k=3)
    fee = next(h for h in hits if "1通300円" in h.chunk.text)
    assert fee.document.path.endswith("juminhyo.md")
    assert fee.chunk.location.heading == ("住民票の写しの交付", "手数料")
    assert fee.chunk.text == fee.document.text[fee.chunk.location.start:fee.chunk.location.end]


def test_documents_record_their_source(city):
    kb, _, folder = city
    by_name = {Path(d.path).name: d for d in kb.store.documents()}
    gomi = by_name["sodai-gomi.txt"]
    raw = (folder / "sodai-gomi.txt").read_bytes()
    assert gomi.encoding == "cp932"
    assert gomi.content_hash == hashlib.sha256(raw).hexdigest()
    assert gomi.path == str((folder / "sodai-gomi.txt").resolve())
    assert gomi.id == document_id(gomi.path)
    assert by_name["jido-teate.pdf"].media_type == "application/pdf"


def test_reingesting_unchanged_files_writes_nothing(city):
    kb, _, folder = city
    before = kb.store.chunk_count()
    report = ingest_paths(kb, [folder], progress=False)
    assert len(report.unchanged) == 7
    assert (report.added, report.updated, report.failed, report.chunks) == ([], [], [], 0)
    assert kb.store.chunk_count() == before


def test_changed_file_replaces_its_old_chunks(kb, tmp_path):
    notice = tmp_path / "docs" / "notice.md"
    notice.parent.mkdir()
    notice.write_text("# 図書館\n\n休館日は毎週水曜日です。\n", encoding="utf-8")
    assert ingest_paths(kb, [notice.parent], progress=False).added == [str(notice)]
    notice.write_text("# 図書館\n\n休館日は毎週月曜日です。\n\n## 貸出\n\n1人10冊までです。\n", encoding="utf-8")
    report = ingest_paths(kb, [notice.parent], progress=False)
    assert report.updated == [str(notice)] and report.added == []
    (document,) = kb.store.documents()  # replaced, not duplicated
    assert "月曜日" in document.text
    assert kb.store.chunk_count() == report.chunks == 2
    assert kb.search("水曜日", k=5, mode="lexical") == []
    assert "月曜日" in kb.search("月曜日", k=1, mode="lexical")[0].chunk.text


def test_a_file_that_turns_bad_keeps_its_previous_version(kb, tmp_path):
    notice = tmp_path / "notice.txt"
    notice.write_text("申請は窓口で受け付けます。", encoding="utf-8")
    ingest_paths(kb, [notice], progress=False)
    notice.write_bytes("申請".encode("utf-8") + "は窓口".encode("cp932") + b"\xff")
    report = ingest_paths(kb, [notice], progress=False)
    assert [path for path, _ in report.failed] == [str(notice)]
    (document,) = kb.store.documents()
    assert document.text == "申請は窓口で受け付けます。"
    assert kb.store.chunk_count() == 1


def test_batch_continues_after_failures_and_names_each_one(kb, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "a-empty.txt").write_bytes(b"")
    (folder / "b-broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj garbage")
    (folder / "c-good.md").write_text("# 手続き\n\n転入届は14日以内に出してください。\n", encoding="utf-8")
    (folder / "d-picture.png").write_bytes(b"\x89PNG\r\n")
    (folder / ".hidden.txt").write_text("隠しファイル", encoding="utf-8")
    report = ingest_paths(kb, [folder, tmp_path / "missing.txt"], progress=False)
    assert report.added == [str(folder / "c-good.md")]
    reasons = dict(report.failed)
    assert set(reasons) == {str(folder / "a-empty.txt"), str(folder / "b-broken.pdf"), str(tmp_path / "missing.txt")}
    assert "empty file" in reasons[str(folder / "a-empty.txt")]
    assert "corrupt PDF" in reasons[str(folder / "b-broken.pdf")]
    assert report.ignored == [str(folder / "d-picture.png")]
    assert not report.ok
    assert [d.title for d in kb.store.documents()] == ["手続き"]


def test_prune_removes_documents_whose_files_are_gone(kb, tmp_path):
    folder = tmp_path / "notices"
    (folder / "sub").mkdir(parents=True)
    kept, dropped = folder / "kept.txt", folder / "sub" / "dropped.txt"
    kept.write_text("残る文書です。", encoding="utf-8")
    dropped.write_text("消える文書です。", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("別の場所の文書です。", encoding="utf-8")
    ingest_paths(kb, [folder, elsewhere], progress=False)
    dropped.unlink()
    elsewhere.unlink()
    without_prune = ingest_paths(kb, [folder], progress=False)
    assert without_prune.removed == [] and len(kb.store.documents()) == 3
    report = ingest_paths(kb, [folder], prune=True, progress=False)
    assert report.removed == [str(dropped.resolve())]  # outside the given folder: untouched
    assert sorted(Path(d.path).name for d in kb.store.documents()) == ["elsewhere.txt", "kept.txt"]


def test_changed_tags_reindex_an_unchanged_file(kb, tmp_path):
    path = tmp_path / "hr.txt"
    path.write_text("人事異動の内示は3月です。", encoding="utf-8")
    ingest_paths(kb, [path], progress=False)
    report = ingest_paths(kb, [path], tags=["hr", "hr", " "], progress=False)
    assert report.updated == [str(path)]
    assert kb.store.documents()[0].tags == ("hr",)


def test_chunk_size_is_honoured(kb, tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("住民票の写しは市民課で交付します。" * 30, encoding="utf-8")
    report = ingest_paths(kb, [path], progress=False, chunk_size=ChunkSize(chars=100, overlap=20))
    chunks = kb.store.chunks_by_id(f"{kb.store.documents()[0].id}:{i}" for i in range(report.chunks))
    assert report.chunks > 5 and all(len(c.text) <= 100 for c in chunks)


def test_a_new_chunk_size_rechunks_files_whose_bytes_did_not_change(kb, tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("住民票の写しは市民課で交付します。" * 30, encoding="utf-8")
    first = ingest_paths(kb, [path], progress=False)
    again = ingest_paths(kb, [path], progress=False)
    smaller = ingest_paths(kb, [path], progress=False, chunk_size=ChunkSize(chars=100, overlap=20))
    assert (first.added, again.unchanged, smaller.updated) == ([str(path)], [str(path)], [str(path)])
    assert smaller.chunks > first.chunks == 2 and kb.store.chunk_count() == smaller.chunks


def test_files_ingested_by_an_older_extractor_are_read_again(tmp_path, monkeypatch):
    # A store from before recipes (the last migration not yet applied) holds a PDF extracted the old
    # way. Upgrading sekisho must not leave it so: the next ingest re-reads the unchanged file.
    from sekisho.store.sqlite import store as sqlite_module
    from sekisho.store.sqlite.schema import STORE_MIGRATIONS

    pdf = tmp_path / "jido-teate.pdf"
    shutil.copy(SAMPLES / "jido-teate.pdf", pdf)
    monkeypatch.setattr(sqlite_module, "STORE_MIGRATIONS", STORE_MIGRATIONS.first(len(STORE_MIGRATIONS.names) - 1))
    old = SQLiteStore(tmp_path / "kb.db")
    old._conn().execute(
        "INSERT INTO documents(id, path, title, content_hash, media_type, encoding, text, tags, ingested_at) "
        "VALUES (?, ?, '児童手当のご案内', ?, 'application/pdf', NULL, '前月までの2か月分を支\n給します。', '[]', 0)",
        (document_id(str(pdf.resolve())), str(pdf.resolve()), hashlib.sha256(pdf.read_bytes()).hexdigest()))
    old.close()
    monkeypatch.undo()
    with open_knowledge_base(Settings(store=StoreConfig(path=str(tmp_path / "kb.db")),
                                      retrieval=RetrievalConfig(embedder=EMBEDDER))) as kb:
        assert kb.store.documents()[0].recipe == ""
        report = ingest_paths(kb, [pdf], progress=False)
        (document,) = kb.store.documents()
    assert report.updated == [str(pdf)] and report.unchanged == []
    assert "前月までの2か月分を支給します。" in document.text and document.recipe == ChunkSize().recipe


def test_upload_is_ingested_under_its_name_and_deduplicated(kb):
    data = "<html><head><title>ごみカレンダー</title></head><body><p>燃やすごみは月曜日です。</p></body></html>"
    first = ingest_bytes(kb, "gomi.html", data.encode("cp932"), tags=["public"])
    assert first.status == "added" and first.chunks == 1
    assert first.document.title == "ごみカレンダー" and first.document.encoding == "cp932"
    assert ingest_bytes(kb, "gomi.html", data.encode("cp932"), tags=["public"]).status == "unchanged"
    assert ingest_bytes(kb, "gomi.html", data.replace("月曜日", "火曜日").encode(), tags=["public"]).status == "updated"
    assert len(kb.store.documents()) == 1


@pytest.mark.parametrize("name", ["../secret.txt", "a/b.txt", "..\\x.txt", "", ".env", "C:evil.txt", "x\x00.txt"])
def test_upload_names_that_could_escape_are_refused(kb, name):
    with pytest.raises(IngestError, match="invalid file name"):
        ingest_bytes(kb, name, "本文です。".encode())
    assert kb.store.documents() == []


def test_upload_of_unsupported_type_or_oversize(kb):
    with pytest.raises(IngestError, match="unsupported file type"):
        ingest_bytes(kb, "macro.xlsm", b"PK")
    with pytest.raises(IngestError, match="file too large"):
        ingest_bytes(kb, "big.txt", b"a" * 2000, max_bytes=1000)


def test_ingest_text_for_in_memory_paragraphs(kb):
    document = ingest_text(kb, path="jsquad/para-1", title="関所", text="関所は交通の要所に設けられた検問所である。")
    assert document.id == document_id("jsquad/para-1") and document.media_type == "text/plain"
    again = ingest_text(kb, path="jsquad/para-1", title="関所", text="関所は交通の要所に設けられた検問所である。")
    assert again.ingested_at == document.ingested_at  # skipped, not rewritten
    assert kb.search("検問所", k=1, mode="lexical")[0].document.path == "jsquad/para-1"
    with pytest.raises(IngestError, match="empty text"):
        ingest_text(kb, path="jsquad/para-2", title="空", text=" \n ")


# --- the command ---------------------------------------------------------------------------


def run_cli(tmp_path: Path, *args: str):
    config = tmp_path / "sekisho.toml"
    config.write_text(f'[store]\npath = "kb.db"\n\n[retrieval]\nembedder = "{EMBEDDER}"\n', encoding="utf-8")
    return CliRunner().invoke(app, ["--config", str(config), "ingest", *args])


def test_cli_ingests_and_exits_zero(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# 案内\n\n窓口は1階です。\n", encoding="utf-8")
    (folder / "b.txt").write_bytes("受付は平日のみです。".encode("euc_jp"))
    result = run_cli(tmp_path, str(folder), "--tag", "public")
    assert result.exit_code == 0, result.output
    assert "追加 2" in result.stdout and "失敗 0" in result.stdout
    store = SQLiteStore(tmp_path / "kb.db")
    assert store.lexical_index_current()  # the ingest left the BM25 index beside the store current
    store.close()
    again = run_cli(tmp_path, str(folder), "--tag", "public")
    assert again.exit_code == 0 and "変更なし 2" in again.stdout


def test_cli_reports_each_failure_on_one_line_and_exits_one(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text("証明書は1通300円です。", encoding="utf-8")
    (folder / "bad.pdf").write_bytes(b"not a pdf")
    result = run_cli(tmp_path, str(folder))
    assert result.exit_code == 1
    assert "追加 1" in result.stdout and "失敗 1" in result.stdout
    failure_lines = [line for line in result.stderr.splitlines() if "bad.pdf" in line]
    assert len(failure_lines) == 1 and "corrupt PDF" in failure_lines[0]
    assert "Traceback" not in result.output


def test_cli_prune(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "old.txt").write_text("古い案内です。", encoding="utf-8")
    (folder / "new.txt").write_text("新しい案内です。", encoding="utf-8")
    assert run_cli(tmp_path, str(folder)).exit_code == 0
    (folder / "old.txt").unlink()
    result = run_cli(tmp_path, str(folder), "--prune")
    assert result.exit_code == 0
    assert "削除 1" in result.stdout and "old.txt" in result.stdout


def test_a_single_path_string_is_one_path(kb, tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("単独のファイルです。", encoding="utf-8")
    assert ingest_paths(kb, str(path), progress=False).added == [str(path)]


def test_cli_size_cap_fails_only_the_big_file(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "small.txt").write_text("小さな文書です。", encoding="utf-8")
    (folder / "large.txt").write_text("大きな文書です。\n" * 20_000, encoding="utf-8")
    result = run_cli(tmp_path, str(folder), "--max-mb", "0.1")
    assert result.exit_code == 1
    assert "追加 1" in result.stdout
    (line,) = [line for line in result.stderr.splitlines() if "large.txt" in line]
    assert "file too large" in line
