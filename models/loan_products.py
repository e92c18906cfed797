"""Loan products and the lending parameters, with defaults and their public sources.

Kept apart from `models.lending` (the process) so that `models.params.Behaviour`
can hold a `lending` block without an import cycle: this module imports
nothing from the twin's models, only pydantic and the platform's contract.
`models.lending` re-exports `LendingParams`.

Three products per credit union, set up by UpsertProduct before the clock
starts (see `loan_products`):

- ``PERSONAL_LOAN``: unsecured, fixed rate, 12 to 84 months.
- ``HOME_LOAN_VARIABLE``: the RBA cash rate plus a margin; repriced (the
  product upserted again and every loan re-amortised) when the cash rate moves.
- ``HOME_LOAN_FIXED``: a fixed rate that holds for the whole scenario (real
  fixed periods are 1 to 5 years; the scenarios are no longer than that).

Rates are exact `Decimal` percentages; amounts are exact `Decimal` dollars,
turned into integer cents (`cents`) before any money is formed. Hazards and
shares are plain floats: they shape random draws, they are not money.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from turingcore.contract import Constraints, CreditCriteria, Interest, UpsertProduct

__all__ = [
    "HOME_FIXED",
    "HOME_PRODUCTS",
    "HOME_VARIABLE",
    "LENDING_SOURCES",
    "PERSONAL",
    "CriteriaParams",
    "HomeLoanParams",
    "LendingParams",
    "PersonalLoanParams",
    "cents",
    "loan_products",
    "variable_rate",
]

PERSONAL = "PERSONAL_LOAN"
HOME_VARIABLE = "HOME_LOAN_VARIABLE"
HOME_FIXED = "HOME_LOAN_FIXED"
HOME_PRODUCTS = (HOME_VARIABLE, HOME_FIXED)

Dollars = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
#: An annual percentage (6.15 is 6.15 % a year); four places at most, like the platform's rates.
Rate = Annotated[Decimal, Field(ge=0, le=100, decimal_places=4)]
Share = Annotated[float, Field(ge=0, le=1)]
Multiplier = Annotated[float, Field(ge=0, le=1000)]


def cents(dollars: Decimal) -> int:
    """Exact dollars (two places at most, validated) as integer cents."""
    return int(dollars * 100)


class _Block(BaseModel):
    """Frozen, unknown keys refused: the same rules as `models.params.Params`."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class CriteriaParams(_Block):
    """A product's `creditCriteria`: what an applicant must meet to be approved.

    `max_dti_ratio` is read as a debt-service ratio, as the lending model
    decides with it: the applicant's monthly repayments on every loan they
    hold with us plus the new one (at the assessment rate), times twelve,
    over gross annual income.
    """

    min_income: Dollars
    max_dti_ratio: Decimal = Field(ge=0, le=5, decimal_places=4)
    min_credit_score: int = Field(ge=0, le=1200)


class PersonalLoanParams(_Block):
    """Unsecured personal loans (cars, consolidation, renovations)."""

    rate: Rate = Decimal("11.50")
    terms_months: tuple[int, ...] = (12, 24, 36, 48, 60, 72, 84)
    mean_amount: Dollars = Decimal("15000.00")
    amount_cv: float = Field(default=0.6, gt=0, le=5)
    min_amount: Dollars = Decimal("2000.00")
    max_amount: Dollars = Decimal("100000.00")
    application_monthly: Share = 0.004
    criteria: CriteriaParams = CriteriaParams(
        min_income=Decimal("25000.00"), max_dti_ratio=Decimal("0.45"), min_credit_score=600
    )
    approval_target: Share = 0.75
    initial_share: Share = 0.04
    miss_monthly: Share = 0.004
    discharge_monthly: Share = 0.01
    recovery_share: Share = 0.25
    write_off_months: int = Field(default=6, ge=0, le=60)

    @model_validator(mode="after")
    def _consistent(self) -> PersonalLoanParams:
        if not self.terms_months or any(not 1 <= t <= 600 for t in self.terms_months):
            raise ValueError("terms_months needs at least one term of 1 to 600 months")
        if self.min_amount >= self.max_amount:
            raise ValueError("min_amount must be below max_amount")
        return self


class HomeLoanParams(_Block):
    """Owner-occupier home loans, variable (cash rate + margin) or fixed."""

    variable_margin: Rate = Decimal("2.30")
    fixed_rate: Rate = Decimal("5.90")
    fixed_share: Share = 0.15
    term_months: int = Field(default=360, ge=12, le=600)
    income_multiple: float = Field(default=4.0, gt=0, le=20, description="median loan / income")
    income_multiple_sigma: float = Field(default=0.2, ge=0, le=2)
    lvr_low: float = Field(default=0.60, gt=0, le=1.2)
    lvr_high: float = Field(default=0.95, gt=0, le=1.2)
    assessment_buffer: Rate = Decimal("3.00")
    min_amount: Dollars = Decimal("50000.00")
    max_amount: Dollars = Decimal("3000000.00")
    application_monthly: Share = 0.003
    criteria: CriteriaParams = CriteriaParams(
        min_income=Decimal("40000.00"), max_dti_ratio=Decimal("0.50"), min_credit_score=620
    )
    approval_target: Share = 0.6
    initial_share: Share = 0.10
    initial_max_age_months: int = Field(default=120, ge=0, le=600)
    miss_monthly: Share = 0.001
    discharge_monthly: Share = 0.012
    sale_cost_share: Share = 0.10
    write_off_months: int = Field(default=9, ge=0, le=60)

    @model_validator(mode="after")
    def _consistent(self) -> HomeLoanParams:
        if self.lvr_low > self.lvr_high:
            raise ValueError("lvr_low must not be above lvr_high")
        if self.min_amount >= self.max_amount:
            raise ValueError("min_amount must be below max_amount")
        if self.initial_max_age_months >= self.term_months:
            raise ValueError("initial_max_age_months must be below term_months")
        return self


class LendingParams(_Block):
    """Everything the lending model draws from: products, applications, hazards, workouts.

    The monthly probability that a borrower who is up to date misses the
    instalment due is

        min(1, miss_monthly × U × E × S × L × C)

    with ``U = unemployed_multiplier`` if the member has no job (else 1),
    ``E = exp(unemployment_sensitivity × (national unemployment rate −
    reference_unemployment))`` (what the member's own job flag does not
    capture and a weak labour market brings: cut hours, a partner's job
    loss, falling business income),
    ``S = exp(serviceability_sensitivity × max(0, DSR − DSR at origination))``
    (DSR = repayments × 12 / gross income, so a variable loan's rate rise
    raises it), ``L = exp(lvr_sensitivity × max(0, LVR − 0.8))`` and another
    ``× negative_equity_multiplier`` when LVR > 1 (home loans; the property
    value moves with the house price index), and
    ``C = exp(−score_sensitivity × (score − credit_score_mean) / credit_score_sd)``.
    A borrower who missed stays in distress until they cure (monthly
    probability by employment). Independently, a repayment the member's
    everyday account (topped up from savings) cannot cover is missed too:
    that is how a lost salary turns into arrears. A member behind on a loan
    cuts other spending to `arrears_spend_cut` until they catch up.
    """

    enabled: bool = True
    personal: PersonalLoanParams = PersonalLoanParams()
    home: HomeLoanParams = HomeLoanParams()
    credit_score_mean: float = Field(default=720.0, ge=0, le=1200)
    credit_score_sd: float = Field(default=90.0, gt=0, le=600)
    unemployed_multiplier: Multiplier = 20.0
    unemployment_sensitivity: float = Field(default=0.3, ge=0, le=5)
    reference_unemployment: float = Field(default=4.25, ge=0, le=100)
    serviceability_sensitivity: Multiplier = 10.0
    lvr_sensitivity: Multiplier = 3.0
    negative_equity_multiplier: Multiplier = 2.0
    score_sensitivity: Multiplier = 0.5
    cure_monthly_employed: Share = 0.45
    cure_monthly_unemployed: Share = 0.10
    hardship_share: Share = 0.3
    hardship_months: int = Field(default=3, ge=0, le=24)
    hardship_payment_share: Share = 0.25
    spend_offset_share: Share = 1.0
    arrears_spend_cut: float = Field(default=0.5, gt=0, le=1)
    rise_absorbed_share: Share = 0.8


def variable_rate(cash_rate: float, margin: Decimal) -> Decimal:
    """The variable home loan rate: the cash rate (to the basis point) plus the margin."""
    return Decimal(f"{max(cash_rate, 0.0):.2f}") + margin


def _criteria(params: CriteriaParams) -> CreditCriteria:
    return CreditCriteria(
        min_income=cents(params.min_income),
        max_dti_ratio=params.max_dti_ratio,
        min_credit_score=params.min_credit_score,
    )


def loan_products(params: LendingParams, cash_rate: float) -> list[UpsertProduct]:
    """The three loan products as UpsertProduct payloads, priced off today's cash rate.

    One table row per product (code, name, category, rate, constraints,
    criteria); every loan is monthly principal and interest.

    Args:
        params: the tenant's lending parameters.
        cash_rate: the RBA cash rate now, per cent (the variable product's base).

    Returns:
        PERSONAL_LOAN, HOME_LOAN_VARIABLE and HOME_LOAN_FIXED, in that order.
    """
    personal, home = params.personal, params.home
    personal_constraints = Constraints(
        min_amount=cents(personal.min_amount),
        max_amount=cents(personal.max_amount),
        term_months_default=60 if 60 in personal.terms_months else personal.terms_months[0],
        term_months_options=list(personal.terms_months),
    )
    home_constraints = Constraints(
        min_amount=cents(home.min_amount),
        max_amount=cents(home.max_amount),
        term_months_default=home.term_months,
        term_months_options=[home.term_months],
    )
    table: tuple[tuple[str, str, str, Decimal, Constraints, CriteriaParams], ...] = (
        (
            PERSONAL,
            "Personal Loan",
            "PERSONAL",
            personal.rate,
            personal_constraints,
            personal.criteria,
        ),
        (
            HOME_VARIABLE,
            "Variable Home Loan",
            "HOME",
            variable_rate(cash_rate, home.variable_margin),
            home_constraints,
            home.criteria,
        ),
        (HOME_FIXED, "Fixed Home Loan", "HOME", home.fixed_rate, home_constraints, home.criteria),
    )
    return [
        UpsertProduct(
            product_code=code,
            name=name,
            product_type="LOAN",
            category=category,
            interest=Interest(rate=rate, calculation_method="MONTHLY", payment_frequency="MONTHLY"),
            constraints=constraints,
            credit_criteria=_criteria(criteria),
        )
        for code, name, category, rate, constraints, criteria in table
    ]


#: Public source of every lending default, by key path under `behaviour.lending`.
LENDING_SOURCES: dict[str, str] = {
    "enabled": "scenario option: false runs without lending",
    "personal.rate": "RBA statistical table F5 (indicator lending rates): unsecured personal "
    "loans, fixed, ~11-14% in 2024-25; assumed 11.50",
    "personal.terms_months": "typical CU personal loan terms, 1 to 7 years (product sheets)",
    "personal.mean_amount": "ABS Lending Indicators: new fixed-term personal loans average "
    "~AUD 15-20k; assumed 15,000",
    "personal.amount_cv": "assumed",
    "personal.min_amount": "typical CU product minimum (product sheets); assumed",
    "personal.max_amount": "typical CU product maximum (product sheets); assumed",
    "personal.application_monthly": "assumed: ~5% of members apply for a personal loan a year",
    "personal.criteria.min_income": "assumed",
    "personal.criteria.max_dti_ratio": "assumed: repayments at most 45% of gross income",
    "personal.criteria.min_credit_score": "assumed: Equifax-style 0-1200 score, 'fair' below ~600",
    "personal.approval_target": "assumed",
    "personal.initial_share": "assumed: ~4% of members hold a personal loan (COBA sector data: "
    "customer-owned banks lend mostly for housing)",
    "personal.miss_monthly": "assumed: calibrated to APRA ADI personal lending 90+ arrears "
    "~1.5-2.5%",
    "personal.discharge_monthly": "assumed: early payout of ~12% of personal loans a year",
    "personal.recovery_share": "assumed: unsecured recoveries ~20-30% of the defaulted balance",
    "personal.write_off_months": "assumed: written off six months after default",
    "home.variable_margin": "RBA statistical table F6 (housing lending rates): new "
    "owner-occupier variable loans ~2.1-2.4 points over the cash rate in 2025; assumed 2.30",
    "home.fixed_rate": "RBA statistical table F6: new owner-occupier fixed loans (up to 3 years) "
    "~5.6-6.0% in 2025; assumed 5.90",
    "home.fixed_share": "ABS Lending Indicators: fixed-rate share of new owner-occupier loans, "
    "~46% in mid-2021, under 5% in 2024, ~15-20% long run; assumed 0.15",
    "home.term_months": "standard Australian home loan term, 30 years",
    "home.income_multiple": "ABS Lending Indicators and Census incomes: new owner-occupier loans "
    "~4-6x a borrower's income; assumed median 4.0 of the member's own income",
    "home.income_multiple_sigma": "assumed",
    "home.lvr_low": "APRA quarterly ADI property exposures: new loans by LVR band; assumed "
    "uniform 60-95%",
    "home.lvr_high": "APRA quarterly ADI property exposures: few new loans above 95% LVR",
    "home.assessment_buffer": "APRA serviceability buffer: 3 points over the loan rate (since "
    "November 2021)",
    "home.min_amount": "assumed",
    "home.max_amount": "assumed",
    "home.application_monthly": "assumed: ~1.8% of members a year, in line with ABS Lending "
    "Indicators (~50k owner-occupier loans a month for ~20m adults) and CU turnover",
    "home.criteria.min_income": "assumed",
    "home.criteria.max_dti_ratio": "assumed: repayments at the assessment rate at most 50% of "
    "gross income",
    "home.criteria.min_credit_score": "assumed",
    "home.approval_target": "assumed",
    "home.initial_share": "assumed: ~10% of members hold a home loan (COBA sector: ~AUD 120bn "
    "of loans, mostly housing, for ~4.5m customers)",
    "home.initial_max_age_months": "assumed: loans on the book are up to ten years old",
    "home.miss_monthly": "assumed: calibrated to APRA / RBA FSR housing 90+ day arrears "
    "~0.6-1.0% of balances (2024-25)",
    "home.discharge_monthly": "assumed: RMBS prepayment rates ~15-20% a year (refinance, sale)",
    "home.sale_cost_share": "assumed: agent, legal and fire-sale discount of a mortgagee sale",
    "home.write_off_months": "assumed: mortgagee sale ~9 months after default",
    "credit_score_mean": "the onboarding draw of creditScore (models.members): N(720, 90)",
    "credit_score_sd": "the onboarding draw of creditScore (models.members): N(720, 90)",
    "unemployed_multiplier": "assumed: job loss is the main trigger of mortgage arrears (RBA "
    "research on the 'double trigger' of arrears and default)",
    "unemployment_sensitivity": "assumed: macro stress tests tie default rates to the "
    "unemployment rate (APRA ADI stress tests); x2.5 at 3 points above the reference",
    "reference_unemployment": "RBA estimate of full employment ~4-4.5% (as economy."
    "unemployment.target.expansion)",
    "serviceability_sensitivity": "assumed: arrears rise with the repayment increase since "
    "origination (RBA FSR October 2023 on variable-rate borrowers)",
    "lvr_sensitivity": "assumed: arrears rise with LVR (RBA research on mortgage arrears)",
    "negative_equity_multiplier": "assumed: negative equity turns arrears into default (RBA "
    "research on the 'double trigger')",
    "score_sensitivity": "assumed",
    "cure_monthly_employed": "assumed: about half of newly missed loans cure within two months",
    "cure_monthly_unemployed": "assumed",
    "hardship_share": "assumed: 30% of borrowers in arrears after a job loss get a hardship "
    "variation (ASIC's 2024 review of lenders' hardship practices)",
    "hardship_months": "assumed: short reduced-payment arrangements of about three months",
    "hardship_payment_share": "assumed: a quarter of the instalment during hardship",
    "spend_offset_share": "assumed: a borrower's repayment replaces rent or other spending",
    "arrears_spend_cut": "assumed: a household behind on its loan halves its other spending "
    "until it catches up (lenders' hardship and collections budgets)",
    "rise_absorbed_share": "assumed: households cut other spending by 80% of a repayment rise "
    "(RBA FSR 2023: most borrowers adjusted spending and saving)",
}
