"""Usage analytics against a scripted day of real use: a live server, keys with roles and tags, and
requests through every door (a conversation, the native ask, the chat API, two task apps), one
blocked for a My Number, one with masked values, one held for review, one failed model, and
feedback given, changed and explained. The figures the report gives must equal what the script
knows it caused: counted here from the script itself and from the audit records it was handed
back, never with the code under test. Then the same report as CSV and JSON, through the CLI, and
with users pseudonymised unless an admin or auditor asks (and that asking is audited)."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from typer.testing import CliRunner

from sekisho.audit.log import AuditLog
from sekisho.cli import app as cli
from sekisho.identity import Role
from server_fixtures.support import CITY, MY_NUMBER, make_settings, run_server, upload_and_wait

# My Number is refused even for the local model; phone numbers and e-mail addresses are masked;
# every output of the reviewer role waits for review.
POLICY = """[local]
default = "allow"
MY_NUMBER = "block"
PHONE_NUMBER = "mask"
EMAIL_ADDRESS = "mask"

[review]
roles = ["reviewer"]
unsupported_claims = false
"""
# Beside the built-in extractive answerer, a model server that is not there: its requests fail at
# once (no retries).
DEAD = """[models.backends.extractive]
kind = "extractive"

[models.backends.dead]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "dead"
local = true
timeout_s = 5
options = { max_retries = 0 }
"""
PHONE = "090-1234-5678"
FIGURES = ("requests", "prompt_tokens", "completion_tokens", "refused", "guard_blocked", "masked", "held", "errors",
           "cancelled", "thumbs_up", "thumbs_down", "energy_unmeasured")


@dataclass
class Caused:
    """One governed request the script made, as the script knows it."""

    principal: str
    role: str
    tags: tuple[str, ...]
    app: str
    model: str
    status: str
    seq: int  # its audit record
    masked: int = 0


@dataclass
class Script:
    server: object
    log: AuditLog
    names: dict[str, str]  # who -> principal name
    caused: list[Caused] = field(default_factory=list)
    ratings: dict[int, int] = field(default_factory=dict)  # rated seq -> the rating that stands
    reasons: dict[int, str] = field(default_factory=dict)  # rated seq -> the thumbs-down reason that stands

    def record(self, seq: int) -> dict:
        return self.log.get(seq).record

    def expected(self, select=lambda c: True) -> dict:
        chosen = [c for c in self.caused if select(c)]
        records = [self.record(c.seq) for c in chosen]
        return {
            "requests": len(chosen),
            "prompt_tokens": sum((r.get("tokens") or {}).get("prompt", 0) for r in records),
            "completion_tokens": sum((r.get("tokens") or {}).get("completion", 0) for r in records),
            "refused": sum(c.status == "blocked" for c in chosen),
            "guard_blocked": sum(c.status == "blocked" for c in chosen),  # every refusal here is the guard's
            "masked": sum(c.masked for c in chosen),
            "held": sum(c.status == "held" for c in chosen),
            "errors": sum(c.status == "error" for c in chosen),
            "cancelled": 0,
            "thumbs_up": sum(self.ratings.get(c.seq) == 1 for c in chosen),
            "thumbs_down": sum(self.ratings.get(c.seq) == -1 for c in chosen),
            # Only the call to the dead model server has no figure: it was remote and never answered.
            "energy_unmeasured": sum((r.get("energy") or {}).get("joules") is None for r in records),
        }

    def durations(self, select=lambda c: True) -> list[float]:
        return sorted(self.record(c.seq)["duration_s"] for c in self.caused
                      if select(c) and c.status in ("ok", "held"))


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Script:
    folder = tmp_path_factory.mktemp("usage")
    served = run_server(make_settings(folder, policy=POLICY, extra_toml=DEAD))
    server = next(served)
    state = server.app.state.sekisho
    keys, names = {}, {}
    for who, role, tags in (("alice", Role.USER, ("hr",)), ("bob", Role.USER, ("finance", "hr")),
                            ("carol", Role.REVIEWER, ())):
        key, secret = state.keys.create(role, who, tags)
        keys[who], names[who] = secret, f"key:{key.id}:{who}"
    with server.client("admin") as admin:
        assert upload_and_wait(admin)["status"] == "done"
    log = AuditLog(folder / "audit.db", key_path=folder / "signing.key")
    done = Script(server, log, names)

    def client(who: str) -> httpx.Client:
        return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {keys[who]}"}, timeout=60)

    def caused(who: str, role: str, tags: tuple[str, ...], app: str, model: str, status: str, seq=None, masked=0):
        if seq is None:  # a refusal or a failure names no record: it is the one just appended
            seq = log.head()[0]
            assert log.get(seq).record["status"] == status
        done.caused.append(Caused(names[who], role, tags, app, model, status, seq, masked))

    with client("alice") as alice, client("bob") as bob, client("carol") as carol:
        # alice: a two-turn conversation.
        cid = alice.post("/api/conversations", json={}).json()["id"]
        turns = [alice.post(f"/api/conversations/{cid}/messages", json={"content": q}).json()
                 for q in ("住民票の写しの交付手数料はいくらですか？", "コンビニだと？")]
        for turn in turns:
            assert turn.get("status") == "ok", turn
            caused("alice", "user", ("hr",), "(conversation)", turn["backend"], "ok", turn["audit_seq"])
        # bob: a question answered, and one refused for the My Number in it.
        answered = bob.post("/api/ask", json={"question": "児童手当はいつ支払われますか？"}).json()
        assert answered["status"] == "ok"
        caused("bob", "user", ("finance", "hr"), "(ask)", answered["backend"], "ok", answered["audit_seq"])
        refused = bob.post("/api/ask", json={"question": f"マイナンバー{MY_NUMBER}で住民票は取れますか？"})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "guard_blocked"
        caused("bob", "user", ("finance", "hr"), "(ask)", "extractive", "blocked")
        # alice through the chat API: a phone number and an e-mail address masked (two values,
        # each found more than once is still one value).
        chat = alice.post("/v1/chat/completions", json={"model": "extractive", "messages": [
            {"role": "user", "content": f"電話は{PHONE}、メールは taro@example.jp です。{PHONE} に折り返してください。"}]})
        info = chat.json()["sekisho"]
        masked = {f["placeholder"] for f in info["findings"] if f["action"] == "mask"}
        assert info["status"] == "ok" and len(masked) == 2, info["findings"]
        caused("alice", "user", ("hr",), "(chat)", "extractive", "ok", info["audit_seq"], masked=2)
        # alice: a model server that is down.
        failed = alice.post("/v1/chat/completions", json={"model": "dead", "messages": [
            {"role": "user", "content": "こんにちは"}]})
        assert failed.status_code == 502, failed.text
        caused("alice", "user", ("hr",), "(chat)", "dead", "error")
        # carol (a reviewer): her answer is held.
        held = carol.post("/api/ask", json={"question": "印鑑登録に必要なものは何ですか？"}).json()
        assert held["status"] == "held"
        caused("carol", "reviewer", (), "(ask)", held["backend"], "held", held["audit_seq"])
        # Two task apps; every part is one governed request. The notice summarised gives the
        # office's phone number: masked too.
        notice = (CITY / "juminhyo.md").read_text(encoding="utf-8")
        phones = set(re.findall(r"\d{2,4}-\d{2,4}-\d{4}", notice))
        assert len(phones) == 1
        for app, inputs, masked in (("summarise", {"text": notice}, len(phones)),
                                    ("proofread", {"text": "申請する時は、書類を提出して下さい。"}, 0)):
            run = alice.post(f"/api/apps/{app}/run", json={"inputs": inputs}).json()
            assert len(run["parts"]) == 1, run
            part = run["parts"][0]
            caused("alice", "user", ("hr",), app, part["backend"], part["status"], part["audit_seq"], masked)

        # Feedback: 👍; 👎 then its reason (one 👎); 👎 then a change of mind (one 👍); a reason
        # holding a phone number (masked in the log, and so in the report).
        first, second = turns[0]["audit_seq"], turns[1]["audit_seq"]
        for who, seq, rating, reason in (
            (alice, first, 1, ""),
            (alice, second, -1, ""), (alice, second, -1, "窓口の金額も知りたかった"),
            (bob, answered["audit_seq"], -1, "古い情報でした"), (bob, answered["audit_seq"], 1, ""),
            (alice, info["audit_seq"], -1, f"{PHONE} が消えていた"),
        ):
            assert who.post("/api/feedback", json={"audit_seq": seq, "rating": rating, "reason": reason}).status_code == 200
        done.ratings = {first: 1, second: -1, answered["audit_seq"]: 1, info["audit_seq"]: -1}
        done.reasons = {second: "窓口の金額も知りたかった", info["audit_seq"]: "<電話番号_1> が消えていた"}
    yield done
    log.close()
    next(served, None)


def report(script: Script, role: str = "admin", **params) -> dict:
    params.setdefault("since", _today())
    with script.server.client(role) as client:
        response = client.get("/api/usage", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _today() -> str:
    return datetime.now(ZoneInfo("Asia/Tokyo")).date().isoformat()


def figures(row: dict) -> dict:
    return {k: row[k] for k in FIGURES}


def test_the_totals_are_what_the_script_caused(script):
    got = report(script)
    assert figures(got["total"]) == script.expected()
    # Joules as the records hold them (each rounded as the report rounds its sum).
    joules = sum((script.record(c.seq).get("energy") or {}).get("joules") or 0.0 for c in script.caused)
    assert got["total"]["energy_j"] > 0 and math.isclose(got["total"]["energy_j"], joules, rel_tol=0.01, abs_tol=0.001)
    # Latency: the nearest-rank quantile of the concluded requests' durations, within the sketch's 1%.
    durations = script.durations()
    for q, key in ((0.5, "latency_p50_s"), (0.95, "latency_p95_s")):
        exact = durations[max(0, math.ceil(q * len(durations)) - 1)]
        assert math.isclose(got["total"][key], exact, rel_tol=0.0101), (key, got["total"][key], exact)


@pytest.mark.parametrize("dimension", ["app", "model", "role", "tag", "user"])
def test_every_group_has_its_own_counts(script, dimension):
    got = report(script, by=dimension, names="true")
    rows = {row[dimension]: figures(row) for row in got["rows"]}

    def values(c: Caused) -> tuple[str, ...]:
        return {"app": (c.app,), "model": (c.model,), "role": (c.role,), "tag": c.tags or ("",),
                "user": (c.principal,)}[dimension]

    groups = {v for c in script.caused for v in values(c)}
    assert rows == {g: script.expected(lambda c, g=g: g in values(c)) for g in groups}


def test_the_days_are_the_organisations(script):
    got = report(script, by="day")
    zone = ZoneInfo("Asia/Tokyo")
    days = Counter(datetime.fromisoformat(script.log.get(c.seq).ts.replace("Z", "+00:00")).astimezone(zone)
                   .date().isoformat() for c in script.caused)
    assert {row["day"]: row["requests"] for row in got["rows"]} == days


def test_satisfaction_per_app_and_the_reasons_admins_read(script):
    got = report(script, by="app")
    per_app: dict[str, Counter] = defaultdict(Counter)
    for c in script.caused:
        if c.seq in script.ratings:
            per_app[c.app]["up" if script.ratings[c.seq] == 1 else "down"] += 1
    assert {r["app"]: (r["thumbs_up"], r["thumbs_down"]) for r in got["rows"] if r["thumbs_up"] or r["thumbs_down"]} \
        == {app: (n["up"], n["down"]) for app, n in per_app.items()}
    reasons = {r["audit_seq"]: r["reason"] for r in got["thumbs_down_reasons"]}
    assert reasons == script.reasons
    assert PHONE not in json.dumps(got, ensure_ascii=False)
    # An auditor reads the counts, not the reasons.
    assert "thumbs_down_reasons" not in report(script, "auditor", by="app")


def test_users_are_pseudonymised_and_stable_unless_names_are_asked_for(script):
    first, again = report(script, by="user"), report(script, by="user")
    text = json.dumps(first, ensure_ascii=False)
    for who, name in script.names.items():
        assert who not in text and name not in text
    pseudonyms = [row["user"] for row in first["rows"]]
    assert len(pseudonyms) == len(set(pseudonyms)) == 3
    assert all(re.fullmatch(r"user-[0-9a-f]{10}", p) for p in pseudonyms)
    assert pseudonyms == [row["user"] for row in again["rows"]]
    assert first["users"] == "pseudonymised"

    before = {e.seq for e in script.log.query(kind="usage.names", limit=100)}
    named = report(script, "auditor", by="user", names="true")
    assert named["users"] == "named" and {r["user"] for r in named["rows"]} == set(script.names.values())
    asked = [e.record for e in script.log.query(kind="usage.names", limit=100) if e.seq not in before]
    assert len(asked) == 1 and asked[0]["principal"].endswith(":test-auditor") and asked[0]["by"] == ["user"]


def test_only_admins_and_auditors_may_see_usage(script):
    for role in ("user", "reviewer"):
        with script.server.client(role) as client:
            assert client.get("/api/usage").status_code == 403
            page = client.get("/usage")
            assert page.status_code == 403 and "権限がありません" in page.text


def test_the_csv_export_reads_back_as_the_json_rows(script):
    by = "day,app,model,role,tag,user"
    with script.server.client("admin") as client:
        exported = client.get("/api/usage", params={"since": _today(), "by": by, "format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    text = exported.content.decode("utf-8-sig")  # with the byte-order mark Excel needs
    as_json = report(script, by=by)["rows"]
    dimensions = by.split(",")
    read_back = [{k: v if k in dimensions else _figure(v) for k, v in row.items()}
                 for row in csv.DictReader(io.StringIO(text))]
    assert read_back == as_json and len(as_json) > 5


def _figure(cell: str) -> int | float | None:
    """A figure's cell: empty for none (no latency without a concluded request), else a number."""
    if cell == "":
        return None
    return int(cell) if re.fullmatch(r"-?\d+", cell) else float(cell)


def test_the_cli_report_gives_the_same_figures(script, tmp_path):
    runner = CliRunner()
    config = str(script.server.settings.base_dir) + "/sekisho.toml"
    as_json = runner.invoke(cli, ["-c", config, "usage", "report", "--since", _today(), "--by", "app,model", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output) == report(script, by="app,model")

    as_csv = runner.invoke(cli, ["-c", config, "usage", "report", "--since", _today(), "--by", "role", "--csv"])
    with script.server.client("admin") as client:
        exported = client.get("/api/usage", params={"since": _today(), "by": "role", "format": "csv"})
    # The bytes as printed: click's .output would turn the CSV's CRLF line ends into LF.
    assert as_csv.exit_code == 0 and as_csv.stdout_bytes.decode() == exported.content.decode("utf-8-sig")

    table = runner.invoke(cli, ["-c", config, "usage", "report", "--since", _today(), "--by", "app"])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    header = next(line for line in lines if "アプリ" in line)
    assert header.index("アプリ") < header.index("依頼")  # Japanese labels, then the English line below
    assert "App" in lines[lines.index(header) + 1] and "requests" in lines[lines.index(header) + 1]
    conversation = next(line for line in lines if "会話 / Conversation" in line)
    assert conversation.split()[3] == str(script.expected(lambda c: c.app == "(conversation)")["requests"])
    total = next(line for line in lines if "合計 Total" in line)
    assert total.split()[2] == str(len(script.caused))

    wrong = runner.invoke(cli, ["-c", config, "usage", "report", "--by", "app,colour"])
    assert wrong.exit_code == 1
    assert wrong.output.strip().splitlines() == ["error: by: unknown dimension 'colour' (choose from day, app, model, "
                                                 "role, tag, user)"]
