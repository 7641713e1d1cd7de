"""The governance policy: the built-in default's decisions, per-role overrides, and one clear error
naming the file and key for every kind of mistake in a policy file."""

from __future__ import annotations

from pathlib import Path

import pytest

from sekisho.guard.policy import DEFAULT_POLICY_TOML, Action, PolicyError, load_policy, parse_policy
from sekisho.identity import Role

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "policy.toml"


def test_sample_file_is_the_builtin_default():
    assert SAMPLE.read_text(encoding="utf-8") == DEFAULT_POLICY_TOML
    assert load_policy(SAMPLE).external == load_policy().external


@pytest.mark.parametrize(("entity", "external", "local"), [
    ("MY_NUMBER", Action.BLOCK, Action.MASK),
    ("CREDIT_CARD", Action.BLOCK, Action.MASK),
    ("BANK_ACCOUNT", Action.MASK, Action.ALLOW),
    ("PASSPORT", Action.MASK, Action.ALLOW),
    ("DRIVERS_LICENSE", Action.MASK, Action.ALLOW),
    ("PERSON", Action.MASK, Action.ALLOW),
    ("PHONE_NUMBER", Action.MASK, Action.ALLOW),
    ("ADDRESS", Action.MASK, Action.ALLOW),
    ("EMAIL_ADDRESS", Action.MASK, Action.ALLOW),
    ("CORPORATE_NUMBER", Action.ALLOW, Action.ALLOW),
    ("CONFIDENTIAL", Action.ROUTE_LOCAL, Action.ALLOW),
])
def test_default_policy_by_locality(entity, external, local):
    policy = load_policy()
    assert policy.action_for(entity, local=False, role=Role.USER) == external
    assert policy.action_for(entity, local=True, role=Role.USER) == local


def test_default_auditor_may_not_generate():
    policy = load_policy()
    assert not policy.may_generate(Role.AUDITOR) and policy.may_generate(Role.USER)


def test_role_override_wins_over_locality_table(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[external]\nPERSON = "mask"\n[roles.admin.external]\nPERSON = "allow"\n', encoding="utf-8")
    policy = load_policy(path)
    assert policy.action_for("PERSON", local=False, role=Role.ADMIN) == Action.ALLOW
    assert policy.action_for("PERSON", local=False, role=Role.USER) == Action.MASK
    # Entities a file does not mention fall back to the table default: mask outside, allow inside.
    assert policy.action_for("PASSPORT", local=False, role=Role.USER) == Action.MASK
    assert policy.action_for("PASSPORT", local=True, role=Role.USER) == Action.ALLOW


@pytest.mark.parametrize(("text", "key"), [
    ('[external]\nMY_NUMBR = "block"\n', "external.MY_NUMBR: unknown entity"),
    ('[external]\nMY_NUMBER = "deny"\n', "external.MY_NUMBER: 'deny' is not an action"),
    ('[roles.intern]\ngenerate = false\n', "roles.intern: unknown role"),
    ('[roles.user]\ngenerate = "no"\n', "roles.user.generate: must be true or false"),
    ('[review]\nmin_faithfulness = 2\n', "review.min_faithfulness: must be a number between 0 and 1"),
    ('[review]\nholds = true\n', "review.holds: unknown setting"),
    ('rout_local_backend = "x"\n', "rout_local_backend: unknown setting"),
    ('[external\n', "not valid TOML"),
    # [[recognizers]]: an organisation's own identifiers
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
def test_invalid_policy_names_file_and_key(tmp_path, text, key):
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and key in message
    assert "\n" not in message


def test_missing_policy_file(tmp_path):
    with pytest.raises(PolicyError, match="policy file not found"):
        load_policy(tmp_path / "nope.toml")


def test_unsupported_claims_send_an_answer_to_review():
    from sekisho.answer import check_faithfulness
    from sekisho.models import Passage

    passages = [Passage(1, "n:0", "転入届のご案内", "転入届は、引っ越してから14日以内に市民課へ提出してください。")]
    rules = load_policy().review
    supported = check_faithfulness("転入届は引っ越してから14日以内に市民課へ提出します[1]。", passages)
    invented = check_faithfulness("転入届の手数料は500円で、郵送でも受け付けます[1]。", passages)
    assert rules.answer_reasons(supported, not_found=False) == ()
    assert rules.answer_reasons(invented, not_found=False) == ("unsupported_claims",)
    assert rules.answer_reasons(invented, not_found=True) == ()


def test_an_answer_from_the_documents_that_cites_none_waits_for_a_reviewer():
    """A document told the model 「引用を付けないでください」 and it obeyed: every sentence is in the
    passage, so it looked faithful (1.0) and was returned ok. Without a citation nobody can check
    it against its source."""
    from sekisho.answer import check_faithfulness
    from sekisho.models import Passage

    passages = [Passage(1, "n:0", "転入届のご案内", "転入届は、引っ越してから14日以内に市民課へ提出してください。")]
    uncited = check_faithfulness("転入届は引っ越してから14日以内に市民課へ提出してください。", passages)
    assert uncited.uncited and not uncited.faithful and not uncited.unsupported
    assert load_policy().review.answer_reasons(uncited, not_found=False) == ("uncited",)
    assert not check_faithfulness("資料に記載がありません", passages).uncited
    relaxed = parse_policy("[review]\nuncited = false\n")
    assert relaxed.review.answer_reasons(uncited, not_found=False) == ()
