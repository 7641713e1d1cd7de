"""E-mail addresses (after NFKC, so ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ matches too)."""

from __future__ import annotations

from sekisho.guard.recognizers.base import PatternRecognizer

EMAIL_ADDRESS = PatternRecognizer(
    entity="EMAIL_ADDRESS",
    name="email",
    pattern=(
        r"(?<![A-Za-z0-9._%+\-])"
        r"[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@"
        r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
        r"(?![A-Za-z0-9\-])"
    ),
    base_score=0.9,
    anchor="@",  # only look around an @: local part up to 64 characters, address up to 254
    longest=254,
    before=0,
    after=0,
)
