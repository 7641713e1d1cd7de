"""Signed provenance: an exported answer verifies offline, and changing any one byte of the file
(content, manifest or signature) makes verification fail with a reason."""

from __future__ import annotations

import hashlib
import json

import pytest

from sekisho.answer import request_for_passages
from sekisho.audit import ProvenanceError, export_manifest, verify_manifest
from sekisho.audit.signing import public_key_b64
from sekisho.config import Settings
from sekisho.identity import Principal, Role
from sekisho.models import Passage
from sekisho.request import RequestPath

ALICE = Principal("alice", Role.USER)


@pytest.fixture()
def answered(tmp_path):
    settings = Settings.model_validate({"base_dir": str(tmp_path),
                                        "audit": {"path": "audit.db", "key_path": "signing.key"}})
    request_path = RequestPath(settings)
    request = request_for_passages("転入届の期限はいつですか",
                                   [Passage(1, "notice:0", "転入届のご案内", "転入届は引っ越してから14日以内に提出してください。")])
    result = request_path.complete(request, backend="extractive", principal=ALICE)
    assert result.status == "ok"
    return request_path, result


def test_exported_manifest_verifies_and_describes_the_answer(answered, tmp_path):
    request_path, result = answered
    path = export_manifest(request_path.audit, result.audit_seq, tmp_path / "answer.prov.json", exported_by="alice")
    check = verify_manifest(path, trusted_public_key=public_key_b64(request_path.audit.key))
    assert check.ok, check.reason
    bundle = json.loads(path.read_text(encoding="utf-8"))
    assert "14日以内" in bundle["content"]
    manifest = bundle["manifest"]
    assert manifest["claim_generator"].startswith("sekisho/")
    assert manifest["assertions"]["sekisho.audit"]["hash"] == result.audit_hash
    assert manifest["assertions"]["sekisho.model"]["kind"] == "extractive"
    [source] = manifest["assertions"]["sekisho.sources"]
    assert source["chunk_id"] == "notice:0" and source["title"] == "転入届のご案内"
    assert source["chunk_sha256"] == hashlib.sha256("転入届は引っ越してから14日以内に提出してください。".encode()).hexdigest()
    assert request_path.audit.query(kind="provenance.export")[0].record["audit_seq"] == result.audit_seq


def test_any_single_byte_change_fails_verification(answered, tmp_path):
    request_path, result = answered
    path = export_manifest(request_path.audit, result.audit_seq, tmp_path / "answer.prov.json")
    original = path.read_bytes()
    # One byte in the content, in the manifest, in the signature, and in the JSON syntax.
    targets = [original.index("14".encode()), original.index(b'"claim_generator"') + 3,
               original.index(b'"value":"') + 12, 1]
    for position in targets + list(range(len(original))):  # and every other byte
        altered = bytearray(original)
        altered[position] = (altered[position] + 1) % 256
        path.write_bytes(bytes(altered))
        check = verify_manifest(path)
        assert not check.ok and check.reason, position
    path.write_bytes(original)
    assert verify_manifest(path).ok


def test_content_edit_names_the_content(answered, tmp_path):
    request_path, result = answered
    path = export_manifest(request_path.audit, result.audit_seq, tmp_path / "a.json")
    path.write_bytes(path.read_bytes().replace("14日".encode(), "15日".encode()))
    assert "content" in verify_manifest(path).reason


def test_other_signer_is_not_trusted(answered, tmp_path):
    request_path, result = answered
    path = export_manifest(request_path.audit, result.audit_seq, tmp_path / "a.json")
    check = verify_manifest(path, trusted_public_key="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    assert not check.ok and "trusted" in check.reason


def test_held_output_cannot_be_exported_before_approval(tmp_path):
    settings = Settings.model_validate({"base_dir": str(tmp_path),
                                        "audit": {"path": "audit.db", "key_path": "signing.key"}})
    request_path = RequestPath(settings)
    request = request_for_passages("期限は", [Passage(1, "n:0", "案内", "期限は14日以内です。")])
    held = request_path.complete(request, backend="extractive", principal=ALICE, purpose="external")
    assert held.status == "held"
    with pytest.raises(ProvenanceError, match="not been approved"):
        export_manifest(request_path.audit, held.audit_seq, tmp_path / "x.json")
    request_path.review.edit(held.review_id, Principal("rin", Role.REVIEWER), "期限は転入から14日以内です。", reason="明確化")
    path = export_manifest(request_path.audit, held.audit_seq, tmp_path / "x.json")
    bundle = json.loads(path.read_text(encoding="utf-8"))
    assert bundle["content"] == "期限は転入から14日以内です。"
    assert bundle["manifest"]["assertions"]["sekisho.review"]["decision"] == "edited"
    assert verify_manifest(path).ok
