"""Text at the path's edges: what a caller sends must be valid Unicode (refused otherwise, before
any model runs); what a model sends back is repaired (it cannot be refused after the fact, and the
rest of the answer is good)."""

from __future__ import annotations

import re

from sekisho.errors import InvalidInput

# A str holding a surrogate code point cannot be encoded: in Python text every pair is one code
# point, so any surrogate left is lone (JSON's "\ud800", bytes that were not UTF-8 on a command line).
_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidText(InvalidInput):
    """A text cannot be processed as sent (a lone surrogate, say); refused before any model runs."""

    code = "invalid_text"


def check_text(texts: dict[str, str]) -> None:
    """Refuse, naming where, a text that is not valid Unicode: it can be neither scanned reliably
    nor sent anywhere, nor written to the audit log."""
    for where, text in texts.items():
        if not text.isascii() and (found := _SURROGATE.search(text)):
            raise InvalidText(f"{where}: character {found.start()} is not valid Unicode (a lone surrogate, "
                              f"U+{ord(found.group()):04X}); send UTF-8 text")


def valid_text(text: str) -> str:
    """A model's text with every lone surrogate replaced by U+FFFD (the replacement character)."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)
