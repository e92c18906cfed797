"""The validated, frozen shape of a scenario: which credit unions, for how long, how they behave.

A `Scenario` is the single input of a run besides the seed, so it is strict:
every model is frozen (a run cannot change its own inputs) and forbids
unknown keys (a typo in a YAML file must fail loudly, not be ignored). It
knows nothing about YAML; `scenarios.loader` turns files into `Scenario`s
and maps the validation errors raised here back to file lines.

Behaviour is layered: `models.params.Behaviour` holds the defaults, the
scenario's `behaviour` block overrides some of them, and each tenant's
`behaviour` block overrides some more. Both layers are *partial* and merged
key by key (deep merge), so a file says only what differs. Every tenant's
resulting behaviour is validated when the scenario is built, not when a
model first asks for it, so a bad override fails at load time with its
full key path (`tenants[1].behaviour.card_spend.rate_per_day`).

A scenario may also declare `expectations`: bands on KPIs at stated dates
(`DeclaredExpectation`), checked after the run by `analysis.expectations`.
Units follow the KPI's name: a KPI ending in `_cents` (`deposits_cents`) is
in integer cents and so is its band (AUD 1,000 is `100000`, not `1000.00`);
counts are counts; rates and growth are fractions (0.05 = 5%), not
percentages. Each `at` must fall within the run as written; a run later
shortened with `with_overrides(days=...)` keeps them and reports the ones it
no longer reaches as not evaluated (`passed: null`), without failing.
"""

from __future__ import annotations

import datetime
import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from analysis.expectations import ALL_TENANTS, KNOWN_KPIS
from models.macro import MacroParams
from models.params import Behaviour

__all__ = [
    "DEFAULT_YEARS",
    "MAX_DAYS",
    "MAX_YEARS",
    "DeclaredExpectation",
    "OverridesOf",
    "Scenario",
    "State",
    "TenantSpec",
    "add_years",
    "deep_merge",
]

#: Australian states and territories; a tenant's head office is in one of them.
State = Literal["NSW", "VIC", "QLD", "SA", "WA", "TAS", "NT", "ACT"]

#: Length of a scenario that gives neither `years` nor `days`.
DEFAULT_YEARS = 1
#: Upper bounds on a run's length: a century is far beyond any useful horizon
#: and keeps every end date well inside `datetime.date`'s range.
MAX_YEARS = 100
MAX_DAYS = 36600

#: Validation context under which an expectation's `at` may lie after the run's
#: end: set by `Scenario.with_overrides`, whose shorter runs report such
#: expectations as not reached instead of refusing the scenario.
_AT_MAY_PASS_END = "expectations_may_pass_end"


@dataclass(frozen=True, slots=True)
class OverridesOf:
    """Marks a `dict` field as a partial override of a parameter model.

    The tenant's `behaviour` stays a plain mapping (it is partial, so it is
    not a valid `Behaviour` by itself); this marker records which model it
    overrides so that tools, such as the loader's "did you mean" hints, can
    find the valid keys at any depth below it.
    """

    model: type[BaseModel]


class _Frozen(BaseModel):
    """Base of the scenario models: immutable, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return `base` with `override` laid over it, mapping by mapping.

    Where both sides hold a mapping, the merge recurses, so overriding
    `card_spend.rate_per_day` keeps `card_spend.mean_amount`. Anything else
    in `override` (numbers, lists, None) replaces the base value whole: a
    list of multipliers is one parameter, not seven.

    Args:
        base: the complete lower layer (e.g. a dumped `Behaviour`).
        override: the partial upper layer; neither argument is modified.
    """
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = deep_merge(below, value)
        else:
            merged[key] = value
    return merged


def add_years(start: datetime.date, years: int) -> datetime.date:
    """Return the same calendar day `years` later; 29 February falls back to the 28th.

    A scenario of "one year" from 2024-02-29 ends on 2025-02-28 (365 days),
    the way `dateutil.relativedelta` and most people count, rather than
    spilling into March.

    Raises:
        ValueError: if the result would lie beyond `datetime.date.max`.
    """
    year = start.year + years
    if not datetime.MINYEAR <= year <= datetime.MAXYEAR:
        raise ValueError(f"{start.isoformat()} plus {years} years is beyond the calendar")
    if start.month == 2 and start.day == 29:
        try:
            return start.replace(year=year)
        except ValueError:
            return start.replace(year=year, day=28)
    return start.replace(year=year)


def _located_error(loc: tuple[str | int, ...], error_type: str, message: str) -> ValidationError:
    """Build a ValidationError whose location is a specific key, not the whole model.

    Cross-field checks run in model validators, whose plain `ValueError`s are
    reported at the model's root. Raising a `ValidationError` from inside the
    validator instead keeps the location, so the loader can point at the
    offending key and its line.
    """
    detail = InitErrorDetails(
        type=PydanticCustomError(error_type, message),
        loc=loc,
        input=None,
    )
    return ValidationError.from_exception_data("Scenario", [detail])


class TenantSpec(_Frozen):
    """One credit union in the scenario: who it is, where, how big, how it grows.

    `id` becomes the platform's `tenantId` (lowercase, URL- and topic-safe);
    `code` its `tenantCode`. `state` drives public holidays, the BSB state
    digit and member addresses.
    """

    id: str = Field(pattern=r"^[a-z][a-z0-9-]{1,39}$", description="tenantId, e.g. cu-small")
    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]{1,39}$", description="tenantCode, e.g. CU_SMALL")
    display_name: str = Field(min_length=1, max_length=120)
    archetype: str = Field(min_length=1, max_length=40, description="free label, e.g. digital")
    state: State
    members: int = Field(ge=1, le=10_000_000, description="initial members at full scale")
    annual_growth: float = Field(default=0.03, ge=-0.5, le=1.0, description="net growth per year")
    behaviour: Annotated[dict[str, Any], OverridesOf(Behaviour)] = Field(
        default_factory=dict,
        description="partial overrides of the scenario's behaviour, deep-merged",
    )


class DeclaredExpectation(_Frozen):
    """A band a KPI should lie in on a stated day, checked after the run.

    For example: members of cu-large on 2026-06-30 between 1450 and 1700.
    `kpi` names a KPI registered in `analysis.expectations` (`KNOWN_KPIS`).
    Its unit is the KPI's: names ending in `_cents` are integer cents (so is
    the band), counts are counts, rates and growth are fractions (0.1 = 10%).
    `tenant` is a tenant id of the scenario or `"all"` (every tenant summed;
    rates of sums, not sums of rates). `at` is a day of the run, read at its
    end. `window_days` turns a flow's total-so-far into the total over the N
    days up to and including `at` (a level into its mean over them; a growth
    into the change over them). `min` and `max` bound the band inclusively;
    at least one is needed, and both are exact decimals as written.
    """

    name: str = Field(min_length=1, max_length=200)
    kpi: str
    tenant: str = Field(min_length=1, max_length=40, description='a tenant id, or "all"')
    at: datetime.date
    window_days: int | None = Field(default=None, ge=1, le=MAX_DAYS)
    min: Decimal | None = Field(default=None, allow_inf_nan=False)
    max: Decimal | None = Field(default=None, allow_inf_nan=False)

    @field_validator("kpi")
    @classmethod
    def _known_kpi(cls, value: str) -> str:
        """Refuse a KPI that is not registered, suggesting the closest known name."""
        if value in KNOWN_KPIS:
            return value
        known = sorted(KNOWN_KPIS)
        close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
        raise PydanticCustomError("unknown_kpi", "unknown KPI; " + hint)

    @model_validator(mode="after")
    def _check_band(self) -> Self:
        """At least one bound, and not an empty band."""
        if self.min is None and self.max is None:
            raise _located_error(
                ("min",), "no_bound", "give min, max or both: a band needs at least one bound"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _located_error(
                ("max",), "empty_band", f"max {self.max} is below min {self.min}: the band is empty"
            )
        return self


class Scenario(_Frozen):
    """A whole run's input: start, length, scale, default behaviour and the tenants.

    Exactly one of `years` and `days` sets the length; with neither, the
    scenario lasts `DEFAULT_YEARS` and `years` is filled in, so a resolved
    scenario always states its length. `scale` shrinks (or grows) every
    tenant's member count so the same file can run as a quick demo or at
    full size.
    """

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    start: datetime.date
    years: int | None = Field(default=None, ge=1, le=MAX_YEARS)
    days: int | None = Field(default=None, ge=1, le=MAX_DAYS)
    seed: int = Field(default=0, ge=0, description="root seed; the CLI's --seed overrides it")
    scale: float = Field(default=1.0, gt=0, le=10, description="multiplies member counts")
    currency: Literal["AUD"] = "AUD"
    behaviour: Behaviour = Behaviour()
    economy: MacroParams = Field(
        default_factory=MacroParams,
        description="the Australian economy: regimes, cash rate, unemployment, shocks",
    )
    tenants: list[TenantSpec] = Field(min_length=1)
    expectations: tuple[DeclaredExpectation, ...] = Field(
        default=(), description="bands on KPIs at stated dates, checked after the run"
    )

    _tenant_behaviours: dict[str, Behaviour] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_length(cls, data: Any) -> Any:
        """Fill in `years` when no length is given, so resolved files state it."""
        if isinstance(data, Mapping) and data.get("years") is None and data.get("days") is None:
            return {**data, "years": DEFAULT_YEARS}
        return data

    @field_validator("behaviour", mode="before")
    @classmethod
    def _merge_onto_defaults(cls, value: Any) -> Any:
        """Treat a scenario-level behaviour mapping as partial, like a tenant's.

        Without this, `card_spend: {rate_per_day: 2}` would replace the whole
        default flow and then fail for the missing `mean_amount`.
        """
        if isinstance(value, Mapping):
            return deep_merge(Behaviour().model_dump(), value)
        return value

    @model_validator(mode="after")
    def _check_whole(self, info: ValidationInfo) -> Self:
        """Check what spans fields: length, unique tenants, behaviours, expectations."""
        if self.years is not None and self.days is not None:
            raise _located_error(
                ("days",), "length_conflict", "give either years or days, not both"
            )
        try:
            self.end  # noqa: B018 - evaluated for its ValueError only
        except ValueError as exc:
            key = "years" if self.years is not None else "days"
            raise _located_error((key,), "date_range", str(exc)) from None
        self._check_unique("id")
        self._check_unique("code")
        self._resolve_tenant_behaviours()
        self._check_expectations(bool(info.context and info.context.get(_AT_MAY_PASS_END)))
        return self

    def _check_expectations(self, at_may_pass_end: bool) -> None:
        """Each expectation names a tenant of this scenario and a day (and window) in the run.

        Args:
            at_may_pass_end: allow an `at` after the last day (a shortened run).
        """
        ids = [tenant.id for tenant in self.tenants]
        last = self.end - datetime.timedelta(days=1)
        for index, item in enumerate(self.expectations):
            if item.tenant != ALL_TENANTS and item.tenant not in ids:
                close = difflib.get_close_matches(item.tenant, ids, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise _located_error(
                    ("expectations", index, "tenant"),
                    "unknown_tenant",
                    f"unknown tenant {item.tenant!r}; {hint}"
                    f"(tenants: {', '.join(ids)}, or {ALL_TENANTS!r} for all together)",
                )
            if item.at < self.start or (item.at > last and not at_may_pass_end):
                raise _located_error(
                    ("expectations", index, "at"),
                    "date_outside_run",
                    f"{item.at.isoformat()} is outside the run "
                    f"({self.start.isoformat()} to {last.isoformat()}, inclusive)",
                )
            if item.window_days is not None:
                first = item.at - datetime.timedelta(days=item.window_days - 1)
                if first < self.start:
                    raise _located_error(
                        ("expectations", index, "window_days"),
                        "window_outside_run",
                        f"the {item.window_days}-day window up to {item.at.isoformat()} "
                        f"starts on {first.isoformat()}, before the run "
                        f"({self.start.isoformat()}); at most "
                        f"{(item.at - self.start).days + 1} days fit",
                    )

    def _check_unique(self, attribute: str) -> None:
        """Refuse two tenants with the same id or code: ids key everything per tenant."""
        first_index: dict[str, int] = {}
        for index, tenant in enumerate(self.tenants):
            value = getattr(tenant, attribute)
            if value in first_index:
                raise _located_error(
                    ("tenants", index, attribute),
                    f"duplicate_{attribute}",
                    f"duplicate tenant {attribute} {value!r} "
                    f"(already used by tenants[{first_index[value]}])",
                )
            first_index[value] = index

    def _resolve_tenant_behaviours(self) -> None:
        """Validate and cache every tenant's merged behaviour, or report all bad keys.

        Errors are re-rooted at `tenants[i].behaviour` so they name the key
        the user wrote, not a key inside an anonymous Behaviour.
        """
        base = self.behaviour.model_dump()
        resolved: dict[str, Behaviour] = {}
        details: list[InitErrorDetails] = []
        for index, tenant in enumerate(self.tenants):
            try:
                resolved[tenant.id] = Behaviour.model_validate(deep_merge(base, tenant.behaviour))
            except ValidationError as exc:
                for error in exc.errors(include_url=False):
                    details.append(
                        InitErrorDetails(
                            type=error["type"],
                            loc=("tenants", index, "behaviour", *error["loc"]),
                            input=error["input"],
                            ctx=error.get("ctx", {}),
                        )
                    )
        if details:
            raise ValidationError.from_exception_data("Scenario", details)
        self._tenant_behaviours = resolved

    @property
    def duration_days(self) -> int:
        """Length of the run in days; years are counted on the calendar from `start`."""
        return (self.end - self.start).days

    @property
    def end(self) -> datetime.date:
        """First day after the run (exclusive end): `start` plus the length.

        Raises:
            ValueError: if the end lies beyond the calendar (caught at validation).
        """
        if self.days is not None:
            try:
                return self.start + datetime.timedelta(days=self.days)
            except OverflowError:
                raise ValueError(
                    f"{self.start.isoformat()} plus {self.days} days is beyond the calendar"
                ) from None
        return add_years(self.start, self.years if self.years is not None else DEFAULT_YEARS)

    def tenant(self, tenant_id: str) -> TenantSpec:
        """Return the tenant with this id.

        Raises:
            KeyError: naming the unknown id and the known ones.
        """
        for tenant in self.tenants:
            if tenant.id == tenant_id:
                return tenant
        known = ", ".join(t.id for t in self.tenants)
        raise KeyError(f"no tenant {tenant_id!r} in scenario {self.name!r} (known: {known})")

    def tenant_behaviour(self, tenant_id: str) -> Behaviour:
        """The tenant's effective behaviour: defaults, then scenario, then tenant overrides.

        Resolved and validated once when the scenario is built; this is a lookup.

        Raises:
            KeyError: for an unknown tenant id.
        """
        self.tenant(tenant_id)  # uniform KeyError message for unknown ids
        return self._tenant_behaviours[tenant_id]

    def members_at_scale(self, tenant_id: str) -> int:
        """The tenant's initial member count after `scale`, never below one.

        Computed in decimal from the text of `scale` (its shortest repr, i.e.
        what the file said), so 5000 x 0.04 is exactly 200 rather than a float
        product a hair off; exact halves round to even (banker's rounding),
        which is deterministic and unbiased.

        Raises:
            KeyError: for an unknown tenant id.
        """
        members = Decimal(self.tenant(tenant_id).members) * Decimal(repr(self.scale))
        return max(1, int(members.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)))

    def with_overrides(
        self,
        *,
        seed: int | None = None,
        days: int | None = None,
        years: int | None = None,
        scale: float | None = None,
    ) -> Scenario:
        """Return a new, re-validated scenario with command-line style overrides.

        A given `days` or `years` replaces the scenario's length entirely
        (both fields), so `--days 7` on a three-year file means seven days.
        Arguments left as None keep the scenario's value. Declared
        expectations are kept as they are; those whose `at` a shortened run
        no longer reaches are reported as not evaluated, so they do not make
        the new length invalid.

        Raises:
            pydantic.ValidationError: if an override is out of range.
        """
        data = self.model_dump()
        if seed is not None:
            data["seed"] = seed
        if scale is not None:
            data["scale"] = scale
        if days is not None or years is not None:
            data["days"] = days
            data["years"] = years
        return Scenario.model_validate(data, context={_AT_MAY_PASS_END: True})

    def canonical_json(self) -> str:
        """The resolved scenario as canonical JSON: the input of `fingerprint`.

        Keys are sorted and separators fixed; decimals are strings in plain
        notation by value (`41.00` as `"41"`, since 41 and 41.00 are the same
        amount); each tenant's `behaviour` is its full resolved behaviour. So
        two files that spell the same effective inputs differently hash alike.
        An empty `expectations` list is left out, so a scenario without them
        keeps the fingerprint it had before expectations existed.
        """
        data = self.model_dump()
        for tenant in data["tenants"]:
            tenant["behaviour"] = self._tenant_behaviours[tenant["id"]].model_dump()
        if not data["expectations"]:
            # Scenarios without expectations hash as they did before the block existed.
            del data["expectations"]
        return json.dumps(
            data,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_json_default,
        )

    def fingerprint(self) -> str:
        """SHA-256 hex of `canonical_json()`: names this exact input in manifests."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


def _json_default(value: object) -> str:
    """Encode the non-JSON types a dumped scenario holds, exactly."""
    if isinstance(value, Decimal):
        # By value: 41, 41.0 and 41.00 are the same amount and hash alike.
        return format(value.normalize(), "f")
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} in a scenario fingerprint")
