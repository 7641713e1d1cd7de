"""What the guard reports: one `Finding` per sensitive span, and the entity names it may carry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# Stable identifiers (used in policies, audit records and JSON) with the Japanese label shown to
# users and used in masking placeholders such as <マイナンバー_1>.
ENTITY_LABELS: dict[str, str] = {
    "MY_NUMBER": "マイナンバー",
    "CORPORATE_NUMBER": "法人番号",
    "PHONE_NUMBER": "電話番号",
    "POSTAL_CODE": "郵便番号",
    "ADDRESS": "住所",
    "EMAIL_ADDRESS": "メールアドレス",
    "CREDIT_CARD": "クレジットカード番号",
    "BANK_ACCOUNT": "口座番号",
    "PASSPORT": "旅券番号",
    "DRIVERS_LICENSE": "運転免許証番号",
    "DATE_OF_BIRTH": "生年月日",
    "CONFIDENTIAL": "機密表示",
    "PERSON": "人名",
    "COPYRIGHT_STYLE": "作風の模倣",
    "COPYRIGHT_SIMILAR": "既存著作物との類似",
}


def entity_label(entity: str) -> str:
    """Japanese label of a built-in entity; other names are shown as they are (an organisation's
    own entities have their labels in their RecognizerRegistry, and on their findings)."""
    return ENTITY_LABELS.get(entity, entity)


@dataclass(frozen=True)
class Finding:
    """A sensitive span. start/end index the ORIGINAL text (what the user wrote), text == original[start:end]."""

    entity: str
    start: int
    end: int
    text: str
    score: float
    recognizer: str
    # Evidence a reviewer needs beyond the span (e.g. the similar work and both similarity numbers);
    # excluded from equality so two findings of the same span compare equal.
    detail: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # The Japanese label shown and used in placeholders: the registry's label for the entity
    # (an organisation's 社員番号), by default the built-in one.
    label: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", entity_label(self.entity))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "entity": self.entity,
            "label": self.label,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "score": round(self.score, 3),
            "recognizer": self.recognizer,
        }
        if self.detail:
            out["detail"] = dict(self.detail)
        return out
