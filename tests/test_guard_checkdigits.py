"""Check-digit algorithms against examples computed by hand (the working is in each comment)."""

from sekisho.guard.recognizers.checkdigits import (
    card_scheme,
    corporate_number_check_digit,
    ean13_valid,
    is_valid_card_number,
    is_valid_corporate_number,
    is_valid_my_number,
    luhn_valid,
    my_number_check_digit,
)


def test_my_number_check_digit_by_hand():
    # 12345678901: digits from the right P1..P11 = 1,0,9,8,7,6,5,4,3,2,1; Q = 2,3,4,5,6,7,2,3,4,5,6
    # sum = 2+0+36+40+42+42+10+12+12+10+6 = 212; 212 mod 11 = 3; 11-3 = 8
    assert my_number_check_digit("12345678901") == 8
    # 10000000000: only P11 = 1 with Q11 = 6: sum 6, 11-6 = 5
    assert my_number_check_digit("10000000000") == 5
    # 00000000006: P1 = 6, Q1 = 2: sum 12, 12 mod 11 = 1 <= 1, so the check digit is 0
    assert my_number_check_digit("00000000006") == 0
    assert is_valid_my_number("123456789018")
    assert not is_valid_my_number("123456789012")
    assert not is_valid_my_number("12345678901")  # 11 digits


def test_corporate_number_check_digit_is_the_first_digit():
    # 国税庁 7000012050002: base 000012050002, from the right P1..P12 = 2,0,0,0,5,0,2,1,0,0,0,0
    # weights 1,2,1,2,...: 2 + 5 + 2 + 1*2 = 11; 11 mod 9 = 2; 9-2 = 7 (the first digit)
    assert corporate_number_check_digit("000012050002") == 7
    assert is_valid_corporate_number("7000012050002")
    # base 000000000001: P1 = 1 (weight 1): 9 - 1 = 8
    assert is_valid_corporate_number("8000000000001")
    # base 999999999999: 6 odd positions * 9 + 6 even positions * 18 = 162 = 0 mod 9, so 9
    assert is_valid_corporate_number("9999999999999")
    assert not is_valid_corporate_number("1000012050002")


def test_luhn_and_card_schemes():
    # 4111 1111 1111 1111: every 2nd digit from the right doubled: 1,1,1,1,1,1,1,4 -> 2*7 + 8 = 22;
    # the other eight 1s -> 8; 22 + 8 = 30, divisible by 10
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert card_scheme("4111111111111111") == "visa"
    assert card_scheme("378282246310005") == "amex"
    assert card_scheme("5555555555554444") == "mastercard"
    assert card_scheme("3530111333300000") == "jcb"
    # 1234 5678 1234 5670 passes Luhn (sum 60) but 12 is no card issuer's prefix
    assert luhn_valid("1234567812345670")
    assert not is_valid_card_number("1234567812345670")
    # a Visa prefix with 13 digits: retired length, treated as not a card
    assert card_scheme("4222222222222") is None


def test_ean13():
    # 9784000000055: 9 + 7*3 + 8 + 4*3 + 5*3 + 5 = 70, divisible by 10
    assert ean13_valid("9784000000055")
    assert not ean13_valid("9784000000056")
