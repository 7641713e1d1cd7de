"""Every shipped app end to end with a real local model (Qwen2.5-Coder-0.5B through llama.cpp, in
process), through the API, each run audited with the app's id and version; and a follow-up in a
conversation condensed by that model before retrieval."""

from __future__ import annotations

import pytest

from sekisho.audit.log import AuditLog
from sekisho.ingest import decode_text
from server_fixtures.support import CITY, make_settings, run_server, upload_and_wait

TRANSCRIPT = ("司会：それでは第3回窓口改善会議を始めます。\n山田：コンビニ交付の周知が足りません。広報紙の4月号に載せましょう。\n"
              "佐藤：賛成です。原稿は私が3月10日までに作ります。\n司会：では広報紙4月号に掲載することに決定します。")
INPUTS = {
    "draft": {"notes": "- 4月1日から住民票のコンビニ交付の手数料が200円になる\n- マイナンバーカードが必要", "doc_type": "お知らせ"},
    "summarise": {"text": (CITY / "juminhyo.md").read_text(encoding="utf-8"), "length": "短く"},
    "proofread": {"text": "申請する時は、住民および事業者の手続きを確認して下さい。"},
    "translate": {"text": "住民票の写しの交付手数料は1通300円です。", "direction": "from Japanese into English"},
    "minutes": {"meeting": "第3回窓口改善会議", "transcript": TRANSCRIPT},
    "faq": {"text": decode_text((CITY / "toshokan.txt").read_bytes())[0], "count": "3"},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, gguf_qwen05b_path):
    folder = tmp_path_factory.mktemp("apps-model")
    extra = (f'[models]\ndefault = "qwen"\n[models.backends.qwen]\nkind = "llama.cpp"\nmodel = "{gguf_qwen05b_path}"\n'
             'context_tokens = 4096\n[models.backends.extractive]\nkind = "extractive"\n')
    served = run_server(make_settings(folder, extra_toml=extra))
    live = next(served)
    with live.client("admin") as admin:
        upload_and_wait(admin)
    yield live
    next(served, None)


@pytest.mark.parametrize("app", sorted(INPUTS))
def test_every_shipped_app_runs_with_a_local_model_and_is_audited(server, app):
    with server.client("user") as client:
        r = client.post(f"/api/apps/{app}/run", json={"inputs": INPUTS[app], "backend": "qwen", "max_tokens": 96},
                        timeout=600)
    assert r.status_code == 200, r.text
    parts = r.json()["parts"]
    # 公用文校正: the rules' findings, then the model's suggestions on top.
    assert len(parts) == (2 if app == "proofread" else 1)
    log = AuditLog(server.settings.base_dir + "/audit.db")
    for part in parts:
        assert part["status"] in ("ok", "held") and part["text"].strip()
        record = log.get(part["audit_seq"]).record
        assert (record["app"], record["app_version"], record["status"]) == (app, "1", part["status"])
        assert record["backend"]["used"] in ("qwen", "sekisho-rules")
    assert parts[-1]["backend"] == "qwen"
    log.close()


def test_a_follow_up_is_condensed_by_the_model_and_finds_the_right_passage(server):
    with server.client("user") as client:
        cid = client.post("/api/conversations", json={}).json()["id"]
        first = client.post(f"/api/conversations/{cid}/messages", timeout=600,
                            json={"content": "住民票の写しの交付手数料はいくらですか？", "backend": "qwen"}).json()
        second = client.post(f"/api/conversations/{cid}/messages", timeout=600,
                             json={"content": "コンビニだと？", "backend": "qwen"}).json()
    assert first["status"] in ("ok", "held") and second["status"] in ("ok", "held")
    assert "コンビニ" in second["standalone"] and second["standalone"] != "コンビニだと？"
    log = AuditLog(server.settings.base_dir + "/audit.db")
    condensing = [e.record for e in log.query(kind="chat", limit=50) if e.record.get("purpose") == "condense"]
    assert condensing and condensing[0]["conversation_id"] == cid
    answer = log.get(second["audit_seq"]).record
    assert any("コンビニ" in s["location"] or "手数料" in s["location"] for s in answer["sources"])
    log.close()
