"""Personal names through GiNZA's Japanese NER: an optional extra, loaded only when asked for.

GiNZA pins an older sudachipy than sekisho's retrieval uses, so it lives in a separate
environment (see docs/benchmarks.md, "Guard"); the rule-based recognisers never need it.
"""

from __future__ import annotations

from typing import Any, Iterator

from sekisho.guard.errors import GuardError
from sekisho.guard.recognizers.base import Candidate
from sekisho.guard.textview import NormalizedText

MODEL = "ja_ginza"
_PERSON_LABELS = frozenset({"Person", "PERSON"})


class PersonNameRecognizer:
    entity = "PERSON"
    name = "ginza_ner"
    anchor = None

    def __init__(self, model: str = MODEL) -> None:
        self.model = model
        self._nlp: Any = None

    def _load(self) -> Any:
        if self._nlp is None:
            try:
                import spacy  # noqa: PLC0415 - optional, heavy: imported only when PERSON is requested
                self._nlp = spacy.load(self.model)
            except (ImportError, OSError) as exc:
                raise GuardError(
                    f"人名 (PERSON) には GiNZA が必要です (not installed: {exc}); "
                    "install ginza and ja-ginza in a separate venv (docs/benchmarks.md, Guard)"
                ) from None
        return self._nlp

    def find(self, view: NormalizedText) -> Iterator[Candidate]:
        doc = self._load()(view.text)
        for ent in doc.ents:
            if ent.label_ in _PERSON_LABELS:
                yield Candidate(ent.start_char, ent.end_char, 0.7)


PERSON = PersonNameRecognizer()
