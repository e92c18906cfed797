"""Exact money: decimal text in, integer cents inside (`turingcore.money`)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from turingcore.money import MAX_CENTS, MoneyError, cents_text, format_cents, parse_cents


@pytest.mark.parametrize(
    ("value", "cents"),
    [
        (Decimal("12.30"), 1230),
        (Decimal("12.3"), 1230),
        (Decimal("0.01"), 1),
        (Decimal("1E+1"), 1000),
        (Decimal("0"), 0),
        (Decimal("-0"), 0),
        (7, 700),
        ("19.99", 1999),
        (" 5.05 ", 505),
        (Decimal("99999999999.99"), 9_999_999_999_999),
    ],
)
def test_exact_decimals_become_exact_cents(value: object, cents: int) -> None:
    """Decimals, ints and decimal text with at most two places become the exact cents."""
    assert parse_cents(value) == cents


def test_the_largest_amount_is_accepted_and_one_cent_more_is_not() -> None:
    """MAX_CENTS itself parses; one cent above it is refused as too large."""
    top = Decimal(MAX_CENTS) / 100
    assert parse_cents(top) == MAX_CENTS
    with pytest.raises(MoneyError, match="larger"):
        parse_cents(top + Decimal("0.01"))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (Decimal("0.001"), "more than two decimal places"),
        (Decimal("1.101"), "more than two decimal places"),
        (Decimal("NaN"), "not a finite number"),
        (Decimal("sNaN"), "not a finite number"),
        (Decimal("Infinity"), "not a finite number"),
        (Decimal("-Infinity"), "not a finite number"),
        (Decimal("1E+999"), "larger"),
        (10**20, "larger"),
        (Decimal("-1"), "negative"),
        (Decimal("-0.01"), "negative"),
        (0.5, "binary float"),
        (1.0, "binary float"),
        (True, "boolean"),
        (False, "boolean"),
        ("twelve", "not a decimal number"),
        ("", "not a decimal number"),
        (None, "got NoneType"),
        ([1], "got list"),
    ],
)
def test_anything_that_is_not_an_amount_is_refused_naming_the_field(
    value: object, reason: str
) -> None:
    """Floats, booleans, NaN, infinities, >2 places, negatives and junk name the field."""
    with pytest.raises(MoneyError) as caught:
        parse_cents(value, "payload.legs[3].amount")
    assert caught.value.field == "payload.legs[3].amount"
    assert reason in caught.value.reason
    assert str(caught.value).startswith("payload.legs[3].amount: ")


def test_huge_amount_with_more_than_two_places_is_a_money_error() -> None:
    """A 27-digit amount with a third decimal is refused as MoneyError, not a crash.

    The decimal-places check quantizes before the size check, and quantizing
    a number that needs more than 28 digits raises decimal.InvalidOperation,
    which escapes `decode_envelope` as an unhandled error (a 500, not a 400).
    """
    with pytest.raises(MoneyError) as caught:
        parse_cents(Decimal("123456789012345678901234567.001"), "initialDeposit")
    assert caught.value.field == "initialDeposit"


def test_zero_is_refused_only_where_it_is_not_allowed() -> None:
    """0.00 is a valid amount by default; with allow_zero=False it must be above zero."""
    assert parse_cents(Decimal("0.00")) == 0
    with pytest.raises(MoneyError, match="greater than zero"):
        parse_cents(Decimal("0.00"), "legs[0].amount", allow_zero=False)
    assert parse_cents(Decimal("0.01"), allow_zero=False) == 1


@pytest.mark.parametrize("cents", [0, 1, 9, 10, 99, 100, 101, 1230, 123_456_789, MAX_CENTS])
def test_format_cents_is_an_exact_two_place_decimal_that_parses_back(cents: int) -> None:
    """format_cents gives two places exactly, and parse_cents(format_cents(c)) == c."""
    text = str(format_cents(cents))
    whole, _dot, part = text.partition(".")
    assert len(part) == 2
    assert int(whole) * 100 + int(part) == cents
    assert parse_cents(format_cents(cents)) == cents


@pytest.mark.parametrize(
    ("cents", "text"),
    [(0, "0.00"), (5, "0.05"), (-5, "-0.05"), (1230, "12.30"), (-120_005, "-1200.05")],
)
def test_cents_text_has_a_sign_and_two_places(cents: int, text: str) -> None:
    """cents_text writes reports' amounts with a sign and exactly two places."""
    assert cents_text(cents) == text


def test_negative_format_cents_keeps_the_sign() -> None:
    """Balances below zero (debits minus credits) format as negative decimals."""
    assert format_cents(-1205) == Decimal("-12.05")
    assert str(format_cents(-1205)) == "-12.05"
