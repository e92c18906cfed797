"""Exact money at the edges: decimal text in, integer cents inside.

The contract's JSON carries amounts as decimal numbers with at most two
places. They are parsed from their text (never through a float), checked,
and turned into integer cents; anything that cannot be a real amount of
money is refused with a message that names the field.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

#: Largest amount the platform accepts in one field: AUD 10 trillion, far
#: above any real posting, small enough that sums of many fit in int64.
MAX_CENTS = 10**15


class MoneyError(ValueError):
    """An amount that is not a finite decimal with at most two places."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


def parse_cents(value: object, field: str = "amount", *, allow_zero: bool = True) -> int:
    """Turn a decimal amount (Decimal, int or decimal text) into integer cents.

    Args:
        value: the amount as parsed from JSON with exact decimals, or text.
        field: the field's path, named in any error.
        allow_zero: whether 0.00 is a valid amount here (leg amounts are not).

    Raises:
        MoneyError: for floats, NaN, infinities, more than two decimal places,
            negative amounts, zero where not allowed, or absurdly large values.
    """
    if isinstance(value, bool):
        raise MoneyError(field, "must be a decimal number, got a boolean")
    if isinstance(value, float):
        raise MoneyError(field, "must be an exact decimal, not a binary float")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise MoneyError(field, f"{value!r} is not a decimal number") from None
    else:
        raise MoneyError(field, f"must be a decimal number, got {type(value).__name__}")
    if not amount.is_finite():
        raise MoneyError(field, f"{value} is not a finite number")
    if amount.adjusted() > 15:
        raise MoneyError(field, f"{value} is larger than the platform accepts")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and amount != amount.quantize(Decimal("0.01")):
        raise MoneyError(field, f"{value} has more than two decimal places")
    cents = int(amount.scaleb(2))
    if cents < 0:
        raise MoneyError(field, f"{value} is negative")
    if cents == 0 and not allow_zero:
        raise MoneyError(field, "must be greater than zero")
    if cents > MAX_CENTS:
        raise MoneyError(field, f"{value} is larger than the platform accepts")
    return cents


def format_cents(cents: int) -> Decimal:
    """Cents as an exact two-place Decimal (for JSON numbers and reports)."""
    return Decimal(cents).scaleb(-2).quantize(Decimal("0.01"))


def cents_text(cents: int) -> str:
    """Cents as text with two places and a sign, e.g. -12.05, for reports."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"
