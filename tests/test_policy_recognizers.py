"""[[recognizers]] in a policy file (#17): an organisation's own identifier is scanned, labelled
and acted on like a shipped one; every mistake is one line naming the file and the key."""

from __future__ import annotations

import pytest

from sekisho.guard.masking import MaskSession
from sekisho.guard.policy import Action, PolicyError, load_policy, parse_policy
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


@pytest.mark.parametrize(("text", "key"), [
    ('[[recognizers]]\nentity = "EMPLOYEE_ID"\nlabel = "社員番号"\npattern = "S[0-9"\n',
     "recognizers[0].pattern: not a valid regular expression"),
    ('[[recognizers]]\nentity = "EMPLOYEE_ID"\nlabel = "社員番号"\npattern = "S?[0-9]*"\n',
     "recognizers[0].pattern: matches the empty string"),
    ('[[recognizers]]\nentity = "EMPLOYEE_ID"\nlabel = "社員番号"\npattern = "S[0-9]{6}"\nwords = ["x"]\n',
     "recognizers[0].words: unknown setting"),
    ('[[recognizers]]\nentity = "EMPLOYEE_ID"\npattern = "S[0-9]{6}"\n',
     "recognizers[0].label: entity 'EMPLOYEE_ID' is new"),
    ('[[recognizers]]\nentity = "employee"\nlabel = "社員番号"\npattern = "S[0-9]{6}"\n',
     "recognizers[0].entity: entity 'employee': use capitals"),
    ('[[recognizers]]\nentity = "EMPLOYEE_ID"\nlabel = "社員 番号"\npattern = "S[0-9]{6}"\n',
     "recognizers[0].label: label '社員 番号'"),
    ('[[recognizers]]\nentity = "EMPLOYEE_ID"\nlabel = "社員番号"\n', "recognizers[0].pattern: missing"),
    ('[[recognizers]]\nentity = "EMPLOYEE_ID"\nlabel = "社員番号"\npattern = "S[0-9]{6}"\nrequires_context = true\n',
     "recognizers[0].requires_context: needs context words"),
    ('[[recognizers]]\nentity = "EMPLOYEE_ID"\nlabel = "社員番号"\npattern = "S[0-9]{6}"\nscore = 2\n',
     "recognizers[0].score: must be a number above 0"),
    ('[[recognizers]]\nentity = "X_ID"\nlabel = "X番号"\npattern = "X[0-9]{6}"\nname = "my_number"\n',
     "recognizers[0].name: recogniser 'my_number' is already registered"),
    ('recognizers = "S[0-9]{6}"\n', "recognizers: must be an array of tables"),
    ('[external]\nEMPLOYEE_ID = "block"\n', "external.EMPLOYEE_ID: unknown entity"),
])
def test_invalid_recogniser_names_file_and_key(tmp_path, text, key):
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and key in message, message
    assert "\n" not in message
