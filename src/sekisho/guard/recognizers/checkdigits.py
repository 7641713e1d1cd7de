"""Check-digit algorithms for Japanese identifiers and payment cards (pure functions on digit strings)."""

from __future__ import annotations


def my_number_check_digit(first11: str) -> int:
    """個人番号 check digit (総務省令「個人番号の指定に関する省令」第5条).

    With Pn the n-th digit counted from the right of the 11 leading digits and Qn = n+1 for
    n <= 6, n-5 for n >= 7: r = sum(Pn*Qn) mod 11; the check digit is 0 if r <= 1, else 11 - r.
    """
    total = 0
    for n, ch in enumerate(reversed(first11), start=1):
        total += int(ch) * (n + 1 if n <= 6 else n - 5)
    r = total % 11
    return 0 if r <= 1 else 11 - r


def is_valid_my_number(digits: str) -> bool:
    return len(digits) == 12 and digits.isdigit() and my_number_check_digit(digits[:11]) == int(digits[11])


def corporate_number_check_digit(base12: str) -> int:
    """法人番号 check digit, which is the FIRST of the 13 digits (国税庁「法人番号の指定等」).

    With Pn the n-th digit from the right of the 12-digit base number and Qn = 1 for odd n,
    2 for even n: the check digit is 9 - (sum(Pn*Qn) mod 9).
    """
    total = 0
    for n, ch in enumerate(reversed(base12), start=1):
        total += int(ch) * (2 if n % 2 == 0 else 1)
    return 9 - total % 9


def is_valid_corporate_number(digits: str) -> bool:
    return len(digits) == 13 and digits.isdigit() and corporate_number_check_digit(digits[1:]) == int(digits[0])


def luhn_valid(digits: str) -> bool:
    """Luhn (ISO/IEC 7812-1) over a digit string including its final check digit."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def ean13_valid(digits: str) -> bool:
    """EAN-13 / ISBN-13 / JAN: weights 1,3 alternating from the left, total divisible by 10."""
    if len(digits) != 13 or not digits.isdigit():
        return False
    total = sum(int(ch) * (3 if i % 2 else 1) for i, ch in enumerate(digits))
    return total % 10 == 0


# (prefix ranges, allowed lengths) per card scheme: ISO/IEC 7812 IIN assignments in public use.
_CARD_SCHEMES: tuple[tuple[str, tuple[tuple[int, int, int], ...], frozenset[int]], ...] = (
    ("visa", ((4, 4, 1),), frozenset({16, 19})),  # 13-digit Visa cards are retired; 13 digits is a 法人番号 shape
    ("mastercard", ((51, 55, 2), (2221, 2720, 4)), frozenset({16})),
    ("amex", ((34, 34, 2), (37, 37, 2)), frozenset({15})),
    ("jcb", ((3528, 3589, 4),), frozenset({16, 17, 18, 19})),
    ("diners", ((300, 305, 3), (36, 36, 2), (38, 39, 2)), frozenset({14, 16, 17, 18, 19})),
    ("discover", ((6011, 6011, 4), (644, 649, 3), (65, 65, 2)), frozenset({16, 17, 18, 19})),
    ("unionpay", ((62, 62, 2),), frozenset({16, 17, 18, 19})),
)


def card_scheme(digits: str) -> str | None:
    """The scheme whose IIN range and length fit `digits`, or None."""
    for name, ranges, lengths in _CARD_SCHEMES:
        if len(digits) not in lengths:
            continue
        for low, high, width in ranges:
            if low <= int(digits[:width]) <= high:
                return name
    return None


def is_valid_card_number(digits: str) -> bool:
    return digits.isdigit() and card_scheme(digits) is not None and luhn_valid(digits)
