"""[[recognizers]] in a policy file (#17): an organisation's own identifier is scanned, labelled
and acted on like a shipped one (the mistakes: test_policy_rules.test_invalid_policy_names_file_and_key)."""

from __future__ import annotations

from sekisho.guard.masking import MaskSession
from sekisho.guard.policy import Action, load_policy, parse_policy
from sekisho.identity import Principal, Role

EMPLOYEE = """
[[recognizers]]
entity = "EMPLOYEE_ID"
label = "社員番号"
pattern = '(?<![0-9A-Za-z])S[0-9]{6}(?![0-9])'
context = ["社員番号", "職員番号"]
score = 0.6

[[recognizers]]
entity = "PHONE_NUMBER"
pattern = '内線[0-9]{4}'
requires_context = false
score = 0.7

[external]
EMPLOYEE_ID = "block"

[local]
EMPLOYEE_ID = "mask"

[roles.admin.external]
EMPLOYEE_ID = "allow"
"""


def test_policy_recognisers_scan_label_and_decide(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(EMPLOYEE, encoding="utf-8")
    policy = load_policy(path)
    text = "職員番号 S123456、内線4512"
    found = policy.registry.scan(text)
    assert [(f.entity, f.text, f.label, f.score) for f in found] == [
        ("EMPLOYEE_ID", "S123456", "社員番号", 0.95),
        ("PHONE_NUMBER", "内線4512", "電話番号", 0.7),
    ]
    assert policy.registry.scan("型式 S123456")[0].score == 0.6  # no context word: the base score
    assert policy.action_for("EMPLOYEE_ID", local=False, role=Role.USER) == Action.BLOCK
    assert policy.action_for("EMPLOYEE_ID", local=True, role=Role.USER) == Action.MASK
    assert policy.action_for("EMPLOYEE_ID", local=False, role=Role.ADMIN) == Action.ALLOW
    session = MaskSession(Principal("alice", Role.USER), labels=policy.registry.labels)
    assert session.mask(text, found)[0] == "職員番号 <社員番号_1>、<電話番号_1>"
    assert "EMPLOYEE_ID" not in load_policy().registry.entities  # the built-in policy is untouched


def test_a_policy_without_recognisers_scans_the_shipped_ones():
    policy = parse_policy('[external]\nMY_NUMBER = "block"\n')
    assert [f.entity for f in policy.registry.scan("マイナンバー 123456789018")] == ["MY_NUMBER"]
