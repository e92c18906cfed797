"""The products each credit union offers in the walking skeleton.

Set up through UpsertProduct at the start of a run. Rates are the published
rates of typical Australian credit union accounts in 2025 ("assumed" where a
typical figure was chosen); issue 3 adds term deposits, loans and cards.
"""

from __future__ import annotations

from decimal import Decimal

from turingcore.contract import Constraints, Interest, UpsertProduct

EVERYDAY = "EVERYDAY"
SAVER = "SAVER"


def skeleton_products() -> list[UpsertProduct]:
    """A transaction account and a bonus-interest savings account."""
    return [
        UpsertProduct(
            product_code=EVERYDAY,
            name="Everyday Account",
            product_type="DEPOSIT",
            category="TRANSACTION",
            interest=Interest(rate=Decimal("0.00"), calculation_method="DAILY_BALANCE"),
            fees={"monthlyFee": 0, "atmFeeOther": 250},
            constraints=Constraints(min_balance=0, allow_overdraft=False),
            features=["NPP_ENABLED", "BPAY_ENABLED", "CARD_ENABLED"],
        ),
        UpsertProduct(
            product_code=SAVER,
            name="Bonus Saver",
            product_type="DEPOSIT",
            category="SAVINGS",
            interest=Interest(
                base_rate=Decimal("1.10"),
                bonus_rate=Decimal("3.85"),
                bonus_conditions=["DEPOSIT_MONTHLY", "NO_WITHDRAWALS"],
                calculation_method="DAILY_BALANCE",
                payment_frequency="MONTHLY",
            ),
            constraints=Constraints(min_balance=0, allow_overdraft=False),
            features=["NPP_ENABLED"],
        ),
    ]
