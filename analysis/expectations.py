"""Declared expectations: bands on KPIs at stated dates, checked against a run's KPI rows.

A scenario's `expectations:` block (validated by `scenarios.schema`) says, for
example, "cu-large has between 1,450 and 1,700 members on 2026-06-30". After
the run, `evaluate` computes each named KPI from the run's per tenant per day
KPI rows and reports it the way the twin reports its built-in expectations:
`{name, tenant, expected, actual, passed, detail}`.

KPIs are looked up by name in a registry (`KPI_REGISTRY`, names in
`KNOWN_KPIS`). Each is a pure function `(data, tenant, at, window_days) ->
number`: `data` bundles the run's KPI rows, rejection rows and any extra
series; `tenant` is a tenant id or `"all"` (every tenant together); `at` is
the day the KPI is read at (end of that day); `window_days` is the optional
look-back. A new KPI (arrears_90_rate, defaults, fraud_losses_cents,
cash_rate, unemployment, ...) is one decorated function in this module:

    @register_kpi("arrears_90_rate", "loans 90+ days past due / loans")
    def _arrears_90_rate(data, tenant, at, window_days): ...

or, for a series the run hands over in `extra_series`, one line:
`register_kpi("cash_rate", "RBA cash rate (%)", cumulative=False)(series_level(...))`.
Register here (not in other modules) so the schema, which validates `kpi`
against `KNOWN_KPIS` when it is imported, always sees the whole set.

What the built-in KPIs mean:

- **stocks** (`members`, `accounts`, `deposits_cents`): the end-of-day level
  on `at`; with `window_days`, the mean of the end-of-day levels over the N
  days up to and including `at`.
- **flows** (`entries`, `postings`, `events`, `commands`, `rejections`): the
  total since the run's first day up to and including `at`; with
  `window_days`, the total over the N days up to and including `at`.
- **ratios and growth**: `rejection_rate` is rejections / commands over the
  same span as a flow; `deposits_growth` and `members_growth` are the
  relative change (0.05 = +5%) of the stock from the end of the run's first
  day (or, with `window_days`, of the day before the window, or the first
  day if the window starts with the run) to the end of `at`.

Units: KPIs whose name ends in `_cents` are in integer cents and so are their
bands (AUD 1,000 is `100000`); counts are counts; ratios and growth are
plain fractions, not percentages. Values are computed exactly (integers and
`Decimal`s) and compared with the band inclusively; `actual` is reported as
an int, or a float rounded to 6 places for fractional values.

An `at` beyond the last day of the run (a run shortened with `--days`) is
*not reached*: `passed` is None, the detail says so, and it does not fail the
run. A KPI that cannot be computed (no commands for a rate, a zero base for
growth, no data on a day inside the run) fails: `passed` is False.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, KeysView, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from analysis.kpis import KpiRow, RejectionRow

if TYPE_CHECKING:  # the schema imports this module; avoid the cycle at run time
    from scenarios.schema import DeclaredExpectation

__all__ = [
    "ALL_TENANTS",
    "ExtraSeries",
    "KNOWN_KPIS",
    "KPI_REGISTRY",
    "KpiData",
    "KpiDefinition",
    "KpiFunction",
    "KpiUnavailable",
    "Number",
    "evaluate",
    "evaluate_one",
    "format_band",
    "register_kpi",
    "series_level",
]

#: The `tenant` of an expectation about every tenant of the run together.
ALL_TENANTS = "all"

Number = int | Decimal | float
#: Extra series handed to `evaluate`: name -> {(tenant id or "all", date): value}.
ExtraSeries = Mapping[str, Mapping[tuple[str, datetime.date], Number]]

_STOCKS = ("members", "accounts", "deposits_cents")
_FLOWS = ("entries", "postings", "events", "commands", "rejections")
#: Exact division with far more digits than any KPI needs, whatever the global context.
_DECIMAL = Context(prec=34)


class KpiUnavailable(Exception):
    """A KPI cannot be computed for this tenant and span; the message says why."""


@dataclass(frozen=True)
class KpiData:
    """Everything a KPI function may read: the run's rows and any extra series.

    Build it once per run with `KpiData.of(...)`; the per-tenant, per-date
    index is computed once and shared by every KPI evaluated on it.
    """

    kpi_rows: tuple[KpiRow, ...]
    rejection_rows: tuple[RejectionRow, ...] = ()
    extra_series: ExtraSeries = field(default_factory=dict)
    _by_day: dict[str, dict[datetime.date, KpiRow]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for row in self.kpi_rows:
            self._by_day.setdefault(row.tenant_id, {})[row.date] = row

    @classmethod
    def of(
        cls,
        kpi_rows: Iterable[KpiRow],
        rejection_rows: Iterable[RejectionRow] = (),
        extra_series: ExtraSeries | None = None,
    ) -> KpiData:
        """Bundle a run's tables (any iterables) for the KPI functions."""
        return cls(tuple(kpi_rows), tuple(rejection_rows), extra_series or {})

    @property
    def tenants(self) -> list[str]:
        """The tenants with KPI rows, sorted."""
        return sorted(self._by_day)

    def first_day(self) -> datetime.date | None:
        """The run's first day with KPI rows (any tenant), or None without rows."""
        return min((row.date for row in self.kpi_rows), default=None)

    def last_day(self, tenant: str) -> datetime.date | None:
        """The last day with a KPI row for `tenant` (for "all": for any tenant), or None."""
        if tenant == ALL_TENANTS:
            return max((row.date for row in self.kpi_rows), default=None)
        days = self._by_day.get(tenant)
        return max(days) if days else None

    def field_on(self, name: str, tenant: str, day: datetime.date) -> int:
        """One KpiRow field on one day; for "all", summed over every tenant.

        Raises:
            KpiUnavailable: if a tenant (any, for "all") has no row that day.
        """
        tenants = self.tenants if tenant == ALL_TENANTS else [tenant]
        if not tenants:
            raise KpiUnavailable("the run has no KPI rows")
        total = 0
        for one in tenants:
            row = self._by_day.get(one, {}).get(day)
            if row is None:
                raise KpiUnavailable(f"no KPI row for {one} on {day.isoformat()}")
            total += getattr(row, name)
        return total

    def field_over(self, name: str, tenant: str, days: Sequence[datetime.date]) -> int:
        """A KpiRow field summed over `days` (and over every tenant, for "all")."""
        return sum(self.field_on(name, tenant, day) for day in days)


class KpiFunction(Protocol):
    """The shape of a registered KPI function (see the module docstring)."""

    def __call__(
        self, data: KpiData, tenant: str, at: datetime.date, window_days: int | None
    ) -> Number: ...


@dataclass(frozen=True)
class KpiDefinition:
    """A registered KPI: its name, what it means, and the function computing it.

    `cumulative` says what the KPI covers without `window_days`: the run so
    far (flows, rates, growth) or just the day `at` (levels). It only shapes
    the wording of the detail line.
    """

    name: str
    description: str
    function: KpiFunction
    cumulative: bool = True


_REGISTRY: dict[str, KpiDefinition] = {}
#: Every registered KPI by name (read-only view; register with `register_kpi`).
KPI_REGISTRY: Mapping[str, KpiDefinition] = MappingProxyType(_REGISTRY)
#: The names a scenario's `kpi:` may use: a live view, so later registrations count.
KNOWN_KPIS: KeysView[str] = KPI_REGISTRY.keys()


def register_kpi(
    name: str, description: str, *, cumulative: bool = True
) -> Callable[[KpiFunction], KpiFunction]:
    """Decorator that registers a KPI function under `name`.

    Args:
        name: the snake_case name a scenario's `kpi:` uses.
        description: one line on what it measures and in which unit.
        cumulative: False for a level read on `at` (see `KpiDefinition`).

    Raises:
        ValueError: if the name is already registered or is not a snake_case name.
    """
    if not name.replace("_", "").isalnum() or not name.islower() or not name[0].isalpha():
        raise ValueError(f"KPI name {name!r} must be snake_case (a-z, 0-9, _)")

    def decorate(function: KpiFunction) -> KpiFunction:
        if name in _REGISTRY:
            raise ValueError(f"KPI {name!r} is already registered")
        _REGISTRY[name] = KpiDefinition(name, description, function, cumulative)
        return function

    return decorate


# ---------------------------------------------------------------- spans


def _span(data: KpiData, at: datetime.date, window_days: int | None) -> list[datetime.date]:
    """The days a flow is summed over: the window up to `at`, or the run so far."""
    first = data.first_day()
    if first is None:
        raise KpiUnavailable("the run has no KPI rows")
    start = first if window_days is None else max(first, at - datetime.timedelta(window_days - 1))
    return [start + datetime.timedelta(days=n) for n in range((at - start).days + 1)]


def _base_day(data: KpiData, at: datetime.date, window_days: int | None) -> datetime.date:
    """The day a growth is measured from: the day before the window, or the first day."""
    first = data.first_day()
    if first is None:
        raise KpiUnavailable("the run has no KPI rows")
    if window_days is None:
        return first
    return max(first, at - datetime.timedelta(days=window_days))


# ---------------------------------------------------------------- built-in KPIs


def _stock(name: str) -> KpiFunction:
    """A KpiRow level: on `at`, or its mean over the window."""

    def stock(data: KpiData, tenant: str, at: datetime.date, window_days: int | None) -> Number:
        if window_days is None:
            return data.field_on(name, tenant, at)
        days = _span(data, at, window_days)
        return _DECIMAL.divide(Decimal(data.field_over(name, tenant, days)), Decimal(len(days)))

    return stock


def _flow(name: str) -> KpiFunction:
    """A KpiRow daily count: totalled since the first day, or over the window."""

    def flow(data: KpiData, tenant: str, at: datetime.date, window_days: int | None) -> Number:
        return data.field_over(name, tenant, _span(data, at, window_days))

    return flow


def _growth(name: str) -> KpiFunction:
    """Relative change of a KpiRow level from the base day to `at` (0.05 = +5%)."""

    def growth(data: KpiData, tenant: str, at: datetime.date, window_days: int | None) -> Number:
        base_day = _base_day(data, at, window_days)
        base = data.field_on(name, tenant, base_day)
        now = data.field_on(name, tenant, at)
        if base == 0:
            raise KpiUnavailable(f"{name} is 0 on {base_day.isoformat()}; growth is undefined")
        return _DECIMAL.divide(Decimal(now - base), Decimal(base))

    return growth


for _name in _STOCKS:
    register_kpi(
        _name,
        f"end-of-day {_name} on `at` (window: mean of the daily levels)",
        cumulative=False,
    )(_stock(_name))
for _name in _FLOWS:
    register_kpi(_name, f"{_name} since the first day up to `at` (window: over the window)")(
        _flow(_name)
    )
register_kpi(
    "deposits_growth",
    "relative change of deposits_cents from the first day (window: the day before it) to `at`",
)(_growth("deposits_cents"))
register_kpi(
    "members_growth",
    "relative change of members from the first day (window: the day before it) to `at`",
)(_growth("members"))


@register_kpi("rejection_rate", "rejections / commands since the first day (or over the window)")
def _rejection_rate(
    data: KpiData, tenant: str, at: datetime.date, window_days: int | None
) -> Number:
    """Share of commands the platform refused, over the same span as a flow."""
    days = _span(data, at, window_days)
    commands = data.field_over("commands", tenant, days)
    if commands == 0:
        raise KpiUnavailable("no commands in the span; the rate is undefined")
    return _DECIMAL.divide(Decimal(data.field_over("rejections", tenant, days)), Decimal(commands))


def series_level(series: str) -> KpiFunction:
    """A KPI reading an extra series: its latest value on or before `at`.

    For a series without tenants (the economy), the producer keys it with
    tenant "all"; an expectation on one tenant then falls back to that.
    `window_days` is ignored: a level is a level.
    """

    def level(data: KpiData, tenant: str, at: datetime.date, window_days: int | None) -> Number:
        points = data.extra_series.get(series)
        if points is None:
            raise KpiUnavailable(f"the run recorded no {series!r} series")
        for key in (tenant, ALL_TENANTS):
            dated = [(day, value) for (who, day), value in points.items() if who == key]
            on_or_before = [item for item in dated if item[0] <= at]
            if on_or_before:
                return max(on_or_before, key=lambda item: item[0])[1]
        raise KpiUnavailable(f"no {series!r} value for {tenant} on or before {at.isoformat()}")

    return level


# ---------------------------------------------------------------- evaluation


def format_band(minimum: Decimal | None, maximum: Decimal | None) -> str:
    """The band as people read it: `[1450, 1700]`, `>= 0.02` or `<= 0.1` (as written)."""
    if minimum is not None and maximum is not None:
        return f"[{minimum}, {maximum}]"
    if minimum is not None:
        return f">= {minimum}"
    if maximum is not None:
        return f"<= {maximum}"
    return "any value"


def _reported(value: Number) -> int | float:
    """A computed value for summary.json: ints stay ints, the rest 6-place floats."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return round(float(value), 6)


def _shown(value: Number) -> str:
    """A computed value for a detail line: thousands separators, fractions to 6 places."""
    reported = _reported(value)
    return f"{reported:,}" if isinstance(reported, int) else f"{reported:,.6g}"


def _judge(value: Number, minimum: Decimal | None, maximum: Decimal | None) -> tuple[bool, str]:
    """Whether `value` lies in the inclusive band, and a few words on where it lies."""
    if minimum is not None and value < minimum:
        return False, f"below the minimum {minimum}"
    if maximum is not None and value > maximum:
        return False, f"above the maximum {maximum}"
    return True, "within the band"


def evaluate_one(declared: DeclaredExpectation, data: KpiData) -> dict[str, Any]:
    """Check one declared expectation against a run's data (see `evaluate`)."""
    item: dict[str, Any] = {
        "name": declared.name,
        "tenant": declared.tenant,
        "expected": format_band(declared.min, declared.max),
        "actual": None,
        "passed": None,
        "detail": "",
    }
    at = declared.at
    last = data.last_day(declared.tenant)
    if last is None or at > last:
        ended = f"the run ended on {last.isoformat()}" if last else "the run has no KPI rows"
        item["detail"] = f"not reached: {ended}, before {at.isoformat()}; not evaluated"
        return item
    definition = KPI_REGISTRY.get(declared.kpi)
    if definition is None:
        item["passed"] = False
        item["detail"] = f"unknown KPI {declared.kpi!r}"
        return item
    try:
        value = definition.function(data, declared.tenant, at, declared.window_days)
    except KpiUnavailable as exc:
        item["passed"] = False
        item["detail"] = f"{declared.kpi} on {at.isoformat()}: {exc}"
        return item
    passed, where = _judge(value, declared.min, declared.max)
    item["actual"] = _reported(value)
    item["passed"] = passed
    item["detail"] = f"{declared.kpi} {_span_words(definition, declared, data)} = "
    item["detail"] += f"{_shown(value)}, {where}"
    return item


def _span_words(definition: KpiDefinition, declared: DeclaredExpectation, data: KpiData) -> str:
    """What a value covers, for the detail line: `on D`, `D1..D2` or `over the N days to D`."""
    at = declared.at.isoformat()
    if declared.window_days is not None:
        return f"over the {declared.window_days} days to {at}"
    first = data.first_day()
    if definition.cumulative and first is not None:
        return f"{first.isoformat()}..{at}"
    return f"on {at}"


def evaluate(
    declared: Iterable[DeclaredExpectation],
    kpi_rows: Iterable[KpiRow],
    rejection_rows: Iterable[RejectionRow] = (),
    extra_series: ExtraSeries | None = None,
) -> list[dict[str, Any]]:
    """Check a scenario's declared expectations against a run's KPI tables.

    Pure: reads its arguments, returns new dicts, does no I/O.

    Args:
        declared: the scenario's `expectations` (each with name, kpi, tenant,
            at, window_days, min, max).
        kpi_rows: the run's per tenant per day KPI rows (any order).
        rejection_rows: the run's rejections by rule (for KPIs that need them).
        extra_series: further series by name, `{(tenant or "all", date): value}`,
            for KPIs registered with `series_level`.

    Returns:
        One dict per declared expectation, in order, shaped like the twin's own:
        `{"name", "tenant", "expected", "actual", "passed", "detail"}`, where
        `expected` is the band as text, `actual` the computed value (int, or
        float rounded to 6 places; None if not computed) and `passed` True,
        False, or None when `at` lies after the run's last day ("not reached",
        which must not fail the run).
    """
    data = KpiData.of(kpi_rows, rejection_rows, extra_series)
    return [evaluate_one(item, data) for item in declared]


# The economy's monthly series (published by the twin from models.macro; the
# economy is national, so its series are keyed by tenant "all").
for _name, _description in (
    ("cash_rate", "RBA cash rate (% a year) in the month of `at`"),
    ("unemployment", "national unemployment rate (%) in the month of `at`"),
    ("inflation", "CPI inflation (% a year) in the month of `at`"),
    ("house_price_index", "house price index (start = 100) in the month of `at`"),
    ("member_unemployment", "unemployed share of the tenant's labour force (0-1), monthly"),
):
    register_kpi(_name, _description, cumulative=False)(series_level(_name))

register_kpi(
    "interest_credited_cents",
    "savings interest credited to members since the start (cents)",
    cumulative=False,
)(series_level("interest_credited_cents"))


# Lending (published by models.lending per tenant per day: balances in cents at
# the end of the day, flows as the day's counts). "all" sums every tenant.


def _lending_on(
    data: KpiData, series: str, tenant: str, day: datetime.date, model: str = "lending"
) -> int:
    """One model's daily series on one day; for "all", summed over every tenant of the run.

    Used for lending's series and the credit cards' (`model` names which, for
    the message when the series is missing).

    Raises:
        KpiUnavailable: if the run recorded no such series or a tenant has no value that day.
    """
    points = data.extra_series.get(series)
    if points is None:
        raise KpiUnavailable(f"the run recorded no {series!r} series ({model} not run?)")
    tenants = data.tenants if tenant == ALL_TENANTS else [tenant]
    if not tenants:
        raise KpiUnavailable("the run has no KPI rows")
    total = 0
    for one in tenants:
        value = points.get((one, day))
        if value is None:
            raise KpiUnavailable(f"no {series!r} value for {one} on {day.isoformat()}")
        total += int(value)
    return total


def _lending_level(series: str, model: str = "lending") -> KpiFunction:
    """A lending (or card) balance: on `at`, or its mean over the window."""

    def level(data: KpiData, tenant: str, at: datetime.date, window_days: int | None) -> Number:
        if window_days is None:
            return _lending_on(data, series, tenant, at, model)
        days = _span(data, at, window_days)
        total = sum(_lending_on(data, series, tenant, day, model) for day in days)
        return _DECIMAL.divide(Decimal(total), Decimal(len(days)))

    return level


def _lending_flow(series: str, model: str = "lending") -> KpiFunction:
    """A lending (or card) daily flow: totalled since the first day, or over the window."""

    def flow(data: KpiData, tenant: str, at: datetime.date, window_days: int | None) -> Number:
        days = _span(data, at, window_days)
        return sum(_lending_on(data, series, tenant, day, model) for day in days)

    return flow


register_kpi(
    "loan_book_cents",
    "loans owed to the credit union at the end of `at`, cents (window: mean of the days)",
    cumulative=False,
)(_lending_level("loan_book_cents"))
register_kpi("defaults", "loans defaulting (90+ days past due) since the first day (or window)")(
    _lending_flow("loan_defaults")
)
register_kpi("losses_cents", "loan balances written off since the first day (or window), cents")(
    _lending_flow("loan_losses_cents")
)


@register_kpi(
    "arrears_90_rate",
    "balances of loans 90+ days past due / loan book on `at` (window: of the window's sums)",
    cumulative=False,
)
def _arrears_90_rate(
    data: KpiData, tenant: str, at: datetime.date, window_days: int | None
) -> Number:
    """Share of the loan book 90 or more days past due (defaulted loans included)."""
    days = [at] if window_days is None else _span(data, at, window_days)
    book = sum(_lending_on(data, "loan_book_cents", tenant, day) for day in days)
    if book == 0:
        raise KpiUnavailable("the loan book is empty; the arrears rate is undefined")
    arrears = sum(_lending_on(data, "arrears_90_cents", tenant, day) for day in days)
    return _DECIMAL.divide(Decimal(arrears), Decimal(book))


@register_kpi("approval_rate", "loan applications approved / made, since the first day (or window)")
def _approval_rate(
    data: KpiData, tenant: str, at: datetime.date, window_days: int | None
) -> Number:
    """Share of loan applications the credit decision approved."""
    days = _span(data, at, window_days)
    applications = sum(_lending_on(data, "loan_applications", tenant, day) for day in days)
    if applications == 0:
        raise KpiUnavailable("no loan applications in the span; the rate is undefined")
    approvals = sum(_lending_on(data, "loan_approvals", tenant, day) for day in days)
    return _DECIMAL.divide(Decimal(approvals), Decimal(applications))


# Credit cards (published by models.credit_cards per tenant per day: stocks at
# the end of the day, flows as the day's amounts and counts). "all" sums every
# tenant; utilisation and the revolving share are ratios of the summed stocks.

_CARDS = "credit cards"
register_kpi(
    "cards", "open credit card accounts at the end of `at` (window: mean)", cumulative=False
)(_lending_level("card_accounts", _CARDS))
register_kpi(
    "card_balances_cents",
    "owed on credit cards at the end of `at`, cents (window: mean of the days)",
    cumulative=False,
)(_lending_level("card_balances_cents", _CARDS))
register_kpi(
    "card_interest_cents", "interest charged on credit cards since the first day (or window), cents"
)(_lending_flow("card_interest_cents", _CARDS))
register_kpi(
    "card_spend_cents", "purchases on credit cards since the first day (or window), cents"
)(_lending_flow("card_spend_cents", _CARDS))
register_kpi(
    "card_repayments_cents", "credit card repayments since the first day (or window), cents"
)(_lending_flow("card_repayments_cents", _CARDS))
register_kpi(
    "card_missed_payments",
    "credit card statements paid below their minimum, since the first day (or window)",
)(_lending_flow("card_missed_payments", _CARDS))


def _card_ratio(numerator: str, denominator: str, undefined: str) -> KpiFunction:
    """numerator / denominator of two card stocks on `at` (window: of the window's sums)."""

    def ratio(data: KpiData, tenant: str, at: datetime.date, window_days: int | None) -> Number:
        days = [at] if window_days is None else _span(data, at, window_days)
        below = sum(_lending_on(data, denominator, tenant, day, _CARDS) for day in days)
        if below == 0:
            raise KpiUnavailable(undefined)
        above = sum(_lending_on(data, numerator, tenant, day, _CARDS) for day in days)
        return _DECIMAL.divide(Decimal(above), Decimal(below))

    return ratio


register_kpi(
    "card_utilisation",
    "owed on credit cards / their limits on `at` (window: of the window's sums)",
    cumulative=False,
)(_card_ratio("card_balances_cents", "card_limits_cents", "no credit card limits on the day"))
register_kpi(
    "card_revolving_share",
    "owed on cards accruing interest (not paid in full) / owed on all cards on `at`",
    cumulative=False,
)(_card_ratio("card_revolving_cents", "card_balances_cents", "nothing owed on cards that day"))


# Fraud (published by models.fraud per tenant per day: the day's amounts and
# counts). "all" sums every tenant; precision and recall are computed from
# the summed cells of the per-payment confusion matrix over the span.


def _fraud_over(data: KpiData, series: str, tenant: str, days: Sequence[datetime.date]) -> int:
    """A fraud daily series summed over `days` (and over every tenant, for "all").

    Raises:
        KpiUnavailable: if the run recorded no such series or a tenant has no value on a day.
    """
    points = data.extra_series.get(series)
    if points is None:
        raise KpiUnavailable(f"the run recorded no {series!r} series (fraud not run?)")
    tenants = data.tenants if tenant == ALL_TENANTS else [tenant]
    if not tenants:
        raise KpiUnavailable("the run has no KPI rows")
    total = 0
    for one in tenants:
        for day in days:
            value = points.get((one, day))
            if value is None:
                raise KpiUnavailable(f"no {series!r} value for {one} on {day.isoformat()}")
            total += int(value)
    return total


def _fraud_flow(series: str) -> KpiFunction:
    """A fraud daily amount or count: totalled since the first day, or over the window."""

    def flow(data: KpiData, tenant: str, at: datetime.date, window_days: int | None) -> Number:
        return _fraud_over(data, series, tenant, _span(data, at, window_days))

    return flow


def _fraud_share(hits: str, misses: str, undefined: str) -> KpiFunction:
    """hits / (hits + misses) of two fraud daily counts over the span."""

    def share(data: KpiData, tenant: str, at: datetime.date, window_days: int | None) -> Number:
        days = _span(data, at, window_days)
        found = _fraud_over(data, hits, tenant, days)
        total = found + _fraud_over(data, misses, tenant, days)
        if total == 0:
            raise KpiUnavailable(undefined)
        return _DECIMAL.divide(Decimal(found), Decimal(total))

    return share


register_kpi(
    "fraud_losses_cents",
    "fraudulent money that left the credit union since the first day (or window), cents",
)(_fraud_flow("fraud_losses_cents"))
register_kpi(
    "fraud_detected_cents",
    "fraudulent payments an alert named since the first day (or window), cents",
)(_fraud_flow("fraud_detected_cents"))
register_kpi(
    "fraud_prevented_cents",
    "outgoing fraud stopped campaigns still planned, since the first day (or window), cents",
)(_fraud_flow("fraud_prevented_cents"))
register_kpi("fraud_alerts", "FraudAlertRaised events since the first day (or window)")(
    _fraud_flow("fraud_alerts")
)
register_kpi("fraud_campaigns", "fraud campaigns started since the first day (or window)")(
    _fraud_flow("fraud_campaigns")
)


def _fraud_rate(series: Sequence[str]) -> KpiFunction:
    """Campaigns of some kinds started per 1,000 members a year over the span (scale-free).

    Members are the KPI rows' end-of-day members, summed over the span's days
    (member-days), so the rate is comparable between scales and tenant sizes.
    """

    def rate(data: KpiData, tenant: str, at: datetime.date, window_days: int | None) -> Number:
        days = _span(data, at, window_days)
        member_days = data.field_over("members", tenant, days)
        if member_days == 0:
            raise KpiUnavailable("no members in the span; the rate is undefined")
        started = sum(_fraud_over(data, name, tenant, days) for name in series)
        return _DECIMAL.divide(Decimal(started) * 365_250, Decimal(member_days))

    return rate


register_kpi(
    "fraud_campaign_rate",
    "fraud campaigns started per 1,000 members a year, since the first day (or over the window)",
)(_fraud_rate(("fraud_campaigns",)))
register_kpi(
    "fraud_ato_app_rate",
    "account takeovers and push-payment scams started per 1,000 members a year (or window)",
)(_fraud_rate(("fraud_takeovers", "fraud_scams")))
register_kpi(
    "fraud_precision",
    "alerted payments that were fraudulent / alerted payments, since the first day (or window)",
)(
    _fraud_share(
        "fraud_true_positives", "fraud_false_positives", "no payment was alerted in the span"
    )
)
register_kpi(
    "fraud_recall",
    "fraudulent payments an alert named / fraudulent payments, since the first day (or window)",
)(
    _fraud_share(
        "fraud_true_positives", "fraud_false_negatives", "no fraudulent payment in the span"
    )
)
register_kpi(
    "fraud_campaign_recall",
    "fraud campaigns detected / started, since the first day (or window)",
)(
    _fraud_share(
        "fraud_campaigns_detected",
        "fraud_campaigns_undetected",
        "no fraud campaign in the span",
    )
)
