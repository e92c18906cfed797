"""Behaviour parameters of the member models, with defaults and their sources.

Every number a model uses lives here, so that a scenario can override it and
`twin params` can print it beside its public source (or the word "assumed").
Amounts are in dollars as exact decimals (the scenario loader never turns YAML
numbers into floats); models convert them to integer cents before any money
is formed. Distribution shape parameters (rates, coefficients of variation,
multipliers) are plain floats: they shape random draws, they are not money.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from models.card_products import CARD_SOURCES, CardParams
from models.loan_products import LENDING_SOURCES, LendingParams

PositiveDollars = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
NonNegativeDollars = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]


class Params(BaseModel):
    """Base for parameter blocks: frozen, and unknown keys are errors (typos)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class FlowParams(Params):
    """A memoryless flow of payments: Poisson count per member-day, lognormal amount.

    The amount's mean is scaled per member by their income relative to the
    median, so richer members spend more; the analytic mean per member-day
    is `rate_per_day * mean_amount * E[multipliers] * E[spend scale]`.
    """

    rate_per_day: float = Field(ge=0, le=50)
    mean_amount: PositiveDollars
    cv: float = Field(default=1.0, gt=0, le=10, description="coefficient of variation")


class IncomeParams(Params):
    """Annual gross income, lognormal across members."""

    median_annual: PositiveDollars = Decimal("67000")
    sigma: float = Field(default=0.55, gt=0, le=3)
    net_ratio: float = Field(default=0.76, gt=0, le=1, description="take-home share of gross")
    employed_share: float = Field(default=0.93, ge=0, le=1)
    not_employed_spend_factor: float = Field(
        default=0.4, ge=0, le=1, description="spending of members without a wage, relative"
    )


class SalaryParams(Params):
    """Fortnightly pay, moved to the previous business day when it falls on a holiday."""

    period_days: int = Field(default=14, ge=7, le=31)


class OpeningParams(Params):
    """Balances members bring when they join (initial deposit at OpenAccount)."""

    transaction_mean: PositiveDollars = Decimal("3500")
    savings_mean: PositiveDollars = Decimal("24000")
    cv: float = Field(default=1.5, gt=0, le=10)
    savings_share: float = Field(default=0.72, ge=0, le=1)


class LifecycleParams(Params):
    """How membership and employment change over time.

    Members who had a wage when they joined form the tenant's labour force;
    each month enough of them lose or find jobs that their unemployment rate
    tracks the economy's (`models.macro`), with a job-finding rate from ABS
    gross flows. Job loss stops salary and cuts spending; wages grow with
    inflation plus a real margin.
    """

    churn_annual: float = Field(default=0.06, ge=0, le=1, description="members leaving a year")
    job_finding_monthly: float = Field(default=0.25, gt=0, le=1)
    real_wage_growth: float = Field(default=0.5, ge=-5, le=10, description="% a year over CPI")


class PayeeParams(Params):
    """Whom members pay over NPP: a handful of regular payees, and now and then someone new.

    Each member has `regular` payees of their own (landlord, family, a
    friend, a tradie they use), paid with Zipf weights 1, 1/2, 1/3, ... so
    the first is paid most; a share `one_off_share` of payments goes to a
    one-off payee instead. This is what lets the platform's "new payee plus
    large amount" rule tell a member's usual rent payment from a scam.
    """

    regular: int = Field(default=4, ge=1, le=64, description="regular payees per member")
    one_off_share: float = Field(default=0.08, ge=0, le=1, description="share to a new payee")


class TermDepositParams(Params):
    """How members use term deposits (3, 6 and 12 months; see models.term_deposits)."""

    opening_rate_monthly: float = Field(default=0.008, ge=0, le=1)
    share_of_savings: float = Field(default=0.5, gt=0, le=1)
    min_amount_cents: int = Field(default=100_000, ge=1)
    term_weights: tuple[float, float, float] = (0.3, 0.3, 0.4)
    spreads: tuple[float, float, float] = Field(
        default=(0.0, 0.15, 0.25), description="% a year over the cash rate, per term"
    )
    rollover_share: float = Field(default=0.6, ge=0, le=1)


class FraudSurge(Params):
    """A fraud wave: between two dates (inclusive) campaigns start more often.

    Written in a scenario as `behaviour.fraud.surges: [{start: 2025-10-01,
    end: 2025-12-31, ato_multiplier: 10, app_multiplier: 10}]` (`from`/`to`
    are accepted for `start`/`end`). Overlapping surges multiply.
    """

    start: date = Field(validation_alias=AliasChoices("start", "from"))
    end: date = Field(validation_alias=AliasChoices("end", "to"))
    cnp_multiplier: float = Field(default=1.0, ge=0, le=1000)
    ato_multiplier: float = Field(default=1.0, ge=0, le=1000)
    app_multiplier: float = Field(default=1.0, ge=0, le=1000)
    mule_multiplier: float = Field(default=1.0, ge=0, le=1000)
    structuring_multiplier: float = Field(default=1.0, ge=0, le=1000)

    @model_validator(mode="after")
    def _ordered(self) -> FraudSurge:
        if self.end < self.start:
            raise ValueError(f"surge ends ({self.end}) before it starts ({self.start})")
        return self


class FraudParams(Params):
    """Fraud campaigns against members (`models.fraud`), and cash that AML rules watch.

    Rates are campaign starts per active member per year (Poisson each day).
    Each campaign is a SimPy process moving real money by PostEntry:
    card-not-present bursts on a compromised card, account takeovers draining
    a member's accounts to new payees over NPP, authorised push payment
    scams (one to `app_max_payments` large transfers to one new payee), and
    mule networks (victims pay a member recruited as a mule, who forwards the
    money out within hours). Cash structuring (deposits just under AUD 10,000)
    and members' ordinary cash deposits exercise the AUSTRAC rules. The twin
    keeps which payments were fraudulent; the platform never sees it.
    """

    cnp_rate: float = Field(default=0.05, ge=0, le=10)
    cnp_extra_payments: float = Field(default=5.0, ge=0, le=100)
    cnp_gap_minutes: float = Field(default=6.0, gt=0, le=1440)
    cnp_mean_amount: PositiveDollars = Decimal("110.00")
    cnp_cv: float = Field(default=1.0, gt=0, le=10)
    ato_rate: float = Field(default=0.002, ge=0, le=10)
    ato_extra_payments: float = Field(default=3.0, ge=0, le=50)
    ato_gap_minutes: float = Field(default=20.0, gt=0, le=1440)
    ato_drain_share: float = Field(default=0.9, gt=0, le=1)
    ato_payment_cap: PositiveDollars = Decimal("10000.00")
    app_rate: float = Field(default=0.003, ge=0, le=10)
    app_mean_amount: PositiveDollars = Decimal("8000.00")
    app_cv: float = Field(default=1.2, gt=0, le=10)
    app_max_payments: int = Field(default=3, ge=1, le=20)
    app_gap_hours: float = Field(default=30.0, gt=0, le=24 * 90)
    mule_rate: float = Field(default=0.0005, ge=0, le=10)
    mule_extra_victims: float = Field(default=2.0, ge=0, le=100)
    mule_member_victim_share: float = Field(default=0.5, ge=0, le=1)
    mule_victim_mean_amount: PositiveDollars = Decimal("2500.00")
    mule_forward_share: float = Field(default=0.9, gt=0, le=1)
    mule_forward_hours: float = Field(default=2.0, gt=0, le=24 * 30)
    structuring_rate: float = Field(default=0.0002, ge=0, le=10)
    structuring_extra_deposits: float = Field(default=1.0, ge=0, le=50)
    cash_deposit_rate: float = Field(default=0.5, ge=0, le=365)
    cash_mean_amount: PositiveDollars = Decimal("1500.00")
    cash_cv: float = Field(default=2.0, gt=0, le=10)
    recall_floor: float = Field(default=0.25, ge=0, le=1)
    surges: tuple[FraudSurge, ...] = ()


def _default_weekday() -> tuple[float, ...]:
    return (0.97, 0.98, 1.0, 1.04, 1.18, 1.12, 0.71)


def _default_month() -> tuple[float, ...]:
    return (0.93, 0.9, 0.98, 0.97, 0.99, 0.98, 0.98, 1.0, 0.97, 1.01, 1.04, 1.25)


class Behaviour(Params):
    """How members of one credit union earn, spend and save.

    Calibration: with these defaults a member's expected outflows (card, BPAY,
    NPP out, all scaled by income) are about 96% of expected inflows (net pay
    of the employed share plus NPP in), so member deposits grow by a few per
    cent a year, in line with the ABS household saving ratio (~3-5% in
    2023-24), before membership growth. Bills and NPP payments include rent
    and mortgage-sized transfers, which is why their means are large.
    """

    income: IncomeParams = IncomeParams()
    lifecycle: LifecycleParams = LifecycleParams()
    term_deposits: TermDepositParams = TermDepositParams()
    lending: LendingParams = LendingParams()
    credit_cards: CardParams = CardParams()
    salary: SalaryParams = SalaryParams()
    opening: OpeningParams = OpeningParams()
    card_spend: FlowParams = FlowParams(rate_per_day=1.15, mean_amount=Decimal("41.00"), cv=1.4)
    bpay: FlowParams = FlowParams(rate_per_day=0.11, mean_amount=Decimal("420.00"), cv=1.1)
    npp_out: FlowParams = FlowParams(rate_per_day=0.14, mean_amount=Decimal("400.00"), cv=1.6)
    npp_payees: PayeeParams = PayeeParams()
    npp_in: FlowParams = FlowParams(rate_per_day=0.06, mean_amount=Decimal("120.00"), cv=1.6)
    savings_transfer: FlowParams = FlowParams(
        rate_per_day=0.05, mean_amount=Decimal("180.00"), cv=1.0
    )
    fraud: FraudParams = FraudParams()
    weekday_multipliers: tuple[float, ...] = Field(default_factory=_default_weekday)
    month_multipliers: tuple[float, ...] = Field(default_factory=_default_month)

    @field_validator("weekday_multipliers")
    @classmethod
    def _seven_weekdays(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) != 7 or any(v < 0 for v in value):
            raise ValueError("needs 7 non-negative numbers, Monday first")
        return value

    @field_validator("month_multipliers")
    @classmethod
    def _twelve_months(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) != 12 or any(v < 0 for v in value):
            raise ValueError("needs 12 non-negative numbers, January first")
        return value


#: Public sources of the defaults above, printed by `twin params`.
SOURCES: dict[str, str] = {
    "income.median_annual": "ABS, Employee earnings and hours (2023): median weekly "
    "earnings ~AUD 1,300 for full-time; assumed blend with part-time",
    "income.sigma": "assumed (fits ABS income distribution spread)",
    "income.net_ratio": "ATO resident tax scales 2024-25 at ~AUD 67k: ~24% tax + levy",
    "income.employed_share": "ABS Labour Force: unemployment ~4%, plus non-wage members; assumed",
    "income.not_employed_spend_factor": "assumed: JobSeeker / Age Pension are ~40% of median "
    "take-home pay (Services Australia rates 2025)",
    "lifecycle.churn_annual": "assumed: ~6% of members leave a year (COBA member surveys; "
    "industry attrition 5-8%)",
    "lifecycle.job_finding_monthly": "ABS Labour Force gross flows: ~25% of the unemployed "
    "find work each month",
    "lifecycle.real_wage_growth": "ABS Wage Price Index vs CPI, long-run average ~0.5 pt",
    "term_deposits.opening_rate_monthly": "assumed: ~10% of savers open a term deposit a year",
    "term_deposits.share_of_savings": "assumed",
    "term_deposits.min_amount_cents": "typical CU minimum AUD 1,000 (product sheets)",
    "term_deposits.term_weights": "assumed",
    "term_deposits.spreads": "RBA F4 retail deposit rates: TD specials near the cash rate "
    "in 2024-25",
    "term_deposits.rollover_share": "assumed; most term deposits roll over at maturity",
    "salary.period_days": "ABS: fortnightly pay is the most common AU pay cycle",
    "opening.transaction_mean": "assumed",
    "opening.savings_mean": "APRA monthly ADI statistics: mutual ADIs' household deposits per "
    "member ~AUD 25-30k; assumed AUD 24k for savers",
    "opening.cv": "assumed",
    "opening.savings_share": "assumed",
    "card_spend.rate_per_day": "RBA payments data: ~14bn card payments a year / ~20m adults",
    "card_spend.mean_amount": "RBA payments data: average card payment ~AUD 40-45",
    "card_spend.cv": "assumed",
    "bpay.rate_per_day": "BPAY Group annual review: ~3 bills per payer-month; assumed",
    "bpay.mean_amount": "BPAY Group: consumer bill payments (utilities, insurance, rates); "
    "assumed ~AUD 420, calibrated with npp_out so members save ~4% of net income (ABS)",
    "bpay.cv": "assumed",
    "npp_out.rate_per_day": "NPPA / RBA: NPP volumes ~4 payments per adult-month; assumed",
    "npp_out.mean_amount": "RBA payments data: average NPP payment is several hundred AUD "
    "(rent and transfers); assumed ~AUD 400, calibrated as for bpay.mean_amount",
    "npp_out.cv": "assumed",
    "npp_payees.regular": "assumed: most NPP payments go to a few known payees per member "
    "(rent, family, friends; NPPA: PayID and Osko are mostly person-to-person transfers)",
    "npp_payees.one_off_share": "assumed: about one NPP payment in twelve is to someone new",
    "npp_in.rate_per_day": "assumed",
    "npp_in.mean_amount": "assumed",
    "npp_in.cv": "assumed",
    "savings_transfer.rate_per_day": "assumed",
    "savings_transfer.mean_amount": "assumed",
    "savings_transfer.cv": "assumed",
    "fraud.cnp_rate": "ABS Personal Fraud 2022-23: ~8-9% of people aged 15+ had card fraud in "
    "a year; AusPayNet: ~90% of card fraud is card-not-present; assumed 5% of members a year",
    "fraud.cnp_extra_payments": "assumed: a compromised card is tested, then used in a burst",
    "fraud.cnp_gap_minutes": "assumed",
    "fraud.cnp_mean_amount": "assumed (AusPayNet: CNP fraud is mostly small online purchases)",
    "fraud.cnp_cv": "assumed",
    "fraud.ato_rate": "assumed; ACCC Targeting Scams 2023: remote access and account "
    "takeover are among the largest scam losses",
    "fraud.ato_extra_payments": "assumed: a takeover drains an account in a few fast transfers",
    "fraud.ato_gap_minutes": "assumed",
    "fraud.ato_drain_share": "assumed",
    "fraud.ato_payment_cap": "assumed: a typical daily NPP/Osko limit of AUD 10,000",
    "fraud.app_rate": "assumed; ACCC Targeting Scams 2023: ~AUD 2.7bn reported lost, bank "
    "transfer the payment method with the largest losses",
    "fraud.app_mean_amount": "assumed; Scamwatch: median losses to investment and romance "
    "scams are in the thousands of dollars",
    "fraud.app_cv": "assumed",
    "fraud.app_max_payments": "assumed: victims often pay more than once before noticing",
    "fraud.app_gap_hours": "assumed",
    "fraud.mule_rate": "assumed; AUSTRAC and AFCX money-mule guidance: members recruited via "
    "job and romance scams receive and forward victims' money",
    "fraud.mule_extra_victims": "assumed",
    "fraud.mule_member_victim_share": "assumed",
    "fraud.mule_victim_mean_amount": "assumed",
    "fraud.mule_forward_share": "assumed: a mule keeps ~10% as a fee",
    "fraud.mule_forward_hours": "assumed: mules are told to forward funds the same day",
    "fraud.structuring_rate": "assumed; AUSTRAC: structuring cash under AUD 10,000 is a "
    "common money-laundering typology",
    "fraud.structuring_extra_deposits": "assumed: three or more deposits over a few days",
    "fraud.cash_deposit_rate": "assumed; RBA Consumer Payments Survey 2022: cash is ~13% of "
    "consumer payments and large cash deposits are rare",
    "fraud.cash_mean_amount": "assumed",
    "fraud.cash_cv": "assumed",
    "fraud.recall_floor": "assumed: share of campaigns the rules are expected to catch",
    "fraud.surges": "none by default; a fraud-spike scenario scripts them",
    "weekday_multipliers": "assumed shape (Friday/Saturday peaks, quiet Sunday) per card data",
    "month_multipliers": "ABS retail trade: December peak, February trough",
    **{f"lending.{key}": source for key, source in LENDING_SOURCES.items()},
    **{f"credit_cards.{key}": source for key, source in CARD_SOURCES.items()},
}
