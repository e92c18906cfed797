"""Credit card products and the card parameters, with defaults and their public sources.

Kept apart from `models.credit_cards` (the process) for the same reason as
`models.loan_products`: `models.params.Behaviour` holds a `credit_cards`
block, so this module imports nothing from the twin's models.

One product per credit limit tier (``CREDIT_CARD_2000``, ``CREDIT_CARD_5000``,
...), set up by UpsertProduct before the clock starts. The limit is the
platform's own: a card product allows an overdraft of exactly its limit
(`constraints.allowOverdraft` + `overdraftLimit`), and because every
account's balance is debits minus credits, a card spend CREDITs the card
account and what the member owes is a negative balance. The platform refuses
(`OVERDRAFT_LIMIT`) any entry that would take a card below minus its limit,
so the limit is enforced where it belongs, without a card-specific rule.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from turingcore.contract import Constraints, CreditCriteria, Interest, UpsertProduct

__all__ = [
    "CARD_PREFIX",
    "CARD_SOURCES",
    "CardParams",
    "card_product_code",
    "card_products",
]

#: Product codes are this prefix plus the tier's limit in whole dollars.
CARD_PREFIX = "CREDIT_CARD_"

#: Whole dollars (a tier's limit names its product); `Amount` allows cents.
Dollars = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=0)]
Amount = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
#: An annual percentage with at most four places (what `models.interest` accrues exactly).
Rate = Annotated[Decimal, Field(ge=0, le=100, decimal_places=4)]
Share = Annotated[float, Field(ge=0, le=1)]


class CardParams(BaseModel):
    """Who holds a credit card, how they use it and how they repay it.

    Eligible members (employed, gross income at least `min_income`) hold a
    card with probability `holding_share`; their limit is the largest tier
    of `limits` not above `limit_income_ratio` times their income (at least
    the smallest). Cardholders put `spend_share` of their card purchases on
    the credit card while it has room (the rest, and any purchase it has no
    room for, on their debit card). A share `full_payer_share` pay the whole
    closing balance each month; the others (revolvers) pay a share of it,
    drawn once per card uniformly between `revolver_share_low` and
    `revolver_share_high`, and never less than the minimum payment.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    purchase_rate: Rate = Decimal("12.99")
    limits: tuple[Dollars, ...] = (
        Decimal(2000),
        Decimal(5000),
        Decimal(10000),
        Decimal(15000),
        Decimal(25000),
    )
    limit_income_ratio: float = Field(default=0.15, gt=0, le=2)
    min_income: Amount = Decimal(20000)
    holding_share: Share = 0.40
    spend_share: Share = 0.80
    full_payer_share: Share = 0.70
    revolver_share_low: Share = 0.15
    revolver_share_high: Share = 0.60
    min_payment_percent: Annotated[Decimal, Field(gt=0, le=100, decimal_places=4)] = Decimal(2)
    min_payment_floor: Amount = Decimal(25)
    due_days: int = Field(default=25, ge=1, le=27)
    initial_utilisation_low: Share = 0.10
    initial_utilisation_high: Share = 0.60

    @model_validator(mode="after")
    def _consistent(self) -> CardParams:
        if not self.limits or list(self.limits) != sorted(set(self.limits)):
            raise ValueError("limits needs at least one tier, in increasing order, no repeats")
        if self.revolver_share_low > self.revolver_share_high:
            raise ValueError("revolver_share_low must not be above revolver_share_high")
        if self.initial_utilisation_low > self.initial_utilisation_high:
            raise ValueError("initial_utilisation_low must not be above initial_utilisation_high")
        return self

    @property
    def limits_cents(self) -> tuple[int, ...]:
        """The tiers' limits in integer cents, increasing."""
        return tuple(int(limit) * 100 for limit in self.limits)

    @property
    def min_income_cents(self) -> int:
        """`min_income` in integer cents."""
        return int(self.min_income * 100)

    @property
    def min_payment_floor_cents(self) -> int:
        """`min_payment_floor` in integer cents."""
        return int(self.min_payment_floor * 100)


def card_product_code(limit_cents: int) -> str:
    """The product code of the tier with this limit (``CREDIT_CARD_5000``)."""
    return f"{CARD_PREFIX}{limit_cents // 100}"


def card_products(params: CardParams) -> list[UpsertProduct]:
    """One CREDIT_CARD product per limit tier, its limit as the platform's overdraft limit."""
    return [
        UpsertProduct(
            product_code=card_product_code(limit),
            name=f"Low Rate Visa ${limit // 100:,} limit",
            product_type="CREDIT_CARD",
            category="CREDIT_CARD",
            interest=Interest(
                rate=params.purchase_rate,
                calculation_method="DAILY_BALANCE_ACT_365",
                payment_frequency="MONTHLY",
            ),
            constraints=Constraints(allow_overdraft=True, overdraft_limit=limit),
            features=["CARD_ENABLED"],
            credit_criteria=CreditCriteria(min_income=params.min_income_cents),
        )
        for limit in params.limits_cents
    ]


#: Public source of every card default, by key path under `behaviour.credit_cards`.
CARD_SOURCES: dict[str, str] = {
    "enabled": "scenario option: false runs without credit cards",
    "purchase_rate": "credit unions' low-rate cards are ~11.99-13.99% (product sheets); RBA "
    "F5 average personal card rate ~17.6% (March 2023, as reported by RateCity); assumed 12.99",
    "limits": "assumed tiers; RBA C1 limits per personal account are of the order of AUD 10k",
    "limit_income_ratio": "assumed: a limit of ~15% of gross income (AUD 10k at the median)",
    "min_income": "assumed: typical card minimum income AUD 15-25k (product sheets)",
    "holding_share": "assumed: RBA C1 June 2023, 12.6m personal card accounts for ~20.5m "
    "adults (at most ~60% of adults, fewer as some hold several); CU members hold fewer",
    "spend_share": "assumed, so that credit cards take about a third of members' card "
    "purchase value: RBA C1/C2 June 2023, personal credit cards AUD 26.7bn a month against "
    "debit cards AUD 48.1bn (~36%)",
    "full_payer_share": "assumed: with the revolver shares, about half of balances accrue "
    "interest (RBA C1 2024: ~45% of personal card balances, AUD 18.5bn of 40.6bn, as reported "
    "by money.com.au)",
    "revolver_share_low": "assumed",
    "revolver_share_high": "assumed",
    "min_payment_percent": "CommBank and NAB retail cards: 2% of the closing balance (rounded "
    "down to the dollar at CommBank), or $25, whichever is greater; Canstar: the most common "
    "minimum is the higher of $25 and 2%",
    "min_payment_floor": "CommBank, NAB, Canstar: $25 (the whole balance when it is less)",
    "due_days": "statement cycle ~30 days plus ~25 days to pay: the 'up to 55 days "
    "interest-free' of Australian cards (Canstar)",
    "initial_utilisation_low": "assumed: revolvers' balances at the start of the run",
    "initial_utilisation_high": "assumed; ABA (2013): cardholders use ~35% of their limits",
}
