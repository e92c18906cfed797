"""Australian identity data: BSBs, account numbers, mobiles and whole people.

Two pieces live here:

* `AustralianBankingProvider`, a Faker provider for the banking identifiers Faker
  has no `en_AU` provider for (BSBs, account numbers) plus E.164 mobiles. It is
  meant for one-off draws (a counterparty's account, a test fixture) through a
  seeded `Faker('en_AU')` instance.
* `IdentityFactory`, which makes the members of ONE tenant in bulk. Onboarding a
  baseline scenario creates ~115,000 people, and Faker spends ~25 us per name,
  so the factory asks its seeded Faker once for pools of first names, last
  names, streets and suburbs and then samples indices into those pools with an
  injected numpy `Generator`. Everything that must be unique in the tenant
  (email, mobile) is made unique by construction, not by retrying.

Reference data and the choices made (sources, or the word "assumed"):

* BSB (Bank-State-Branch) numbers are allocated by AusPayNet (formerly APCA) as
  `NNN-NNN`: two digits of financial institution, one digit of state, three of
  branch. The state digit convention is 2 NSW/ACT, 3 VIC, 4 QLD, 5 SA/NT,
  6 WA, 7 TAS. Digits 0, 1, 8 and 9 are not states: some institutions use them
  for head-office or centralised BSBs. We never *generate* them, and
  `bsb_state` answers `None` for them. Institutions that use one central BSB
  (e.g. Suncorp 484-799) or that number branches outside this scheme exist;
  BSBs carry no check digit, so `bsb_is_valid` can only check the shape.
* Credit unions and mutual banks mostly clear through an industry settlement
  provider and hold BSBs in its range; `CREDIT_UNION_INSTITUTIONS` lists
  examples (Cuscal 80x: e.g. 802 NSW, 803 VIC, 804 QLD, 805 SA branches of
  member credit unions; Indue 70x: e.g. 703 VIC).
* Account numbers: Australian institutions have no single public account
  number check-digit scheme (each institution validates its own, if at all).
  Ours is 8 random digits followed by a Damm check digit (H. M. Damm, 2004).
  Damm was chosen over Luhn because it detects *every* single-digit error and
  *every* adjacent transposition (Luhn misses 09 <-> 90), with one decimal
  digit and no "X" as mod-11 schemes need.
* Mobiles: every Australian mobile number is `04xx xxx xxx`, i.e. `+614`
  followed by 8 digits in E.164 (ITU-T E.164, ACMA numbering plan).
* Postcodes (Australia Post): street-delivery ranges per state are in
  `STREET_POSTCODE_RANGES`. The PO-box and large-volume-receiver ranges
  (NSW 1000-1999, ACT 0200-0299, VIC 8000-8999, QLD 9000-9999, SA 5800-5999,
  WA 6800-6999, TAS 7800-7999, NT 0900-0999) are left out on purpose: a
  member's residential address needs a street postcode. Not every number in a
  range is allocated; each drawn postcode lies in its state's range.
* Ages: drawn from the Australian adult population's age structure
  (`ADULT_AGE_GROUPS`, rounded from ABS National, state and territory
  population, June 2023, 5-year groups; approximate), uniform within a group,
  and the date of birth uniform among the dates giving that age on `as_of`.
* Units: `UNIT_SHARE` of addresses get a `line2` of "Unit N" (ABS Census 2021:
  ~14% of occupied private dwellings are flats or apartments; assumed as the
  share of members).
* Names: Faker `en_AU` has no person provider of its own and falls back to the
  `en_US` name lists; streets and suburbs come from Faker's `en_AU` address
  provider (invented names such as "Port Jessica", never a real address).
"""

from __future__ import annotations

import datetime
import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from faker import Faker
from faker.providers import BaseProvider

__all__ = [
    "ADULT_AGE_GROUPS",
    "AU_STATES",
    "BSB_STATE_DIGITS",
    "CREDIT_UNION_INSTITUTIONS",
    "DEFAULT_EMAIL_DOMAINS",
    "MAX_AGE_EXCLUSIVE",
    "MIN_AGE",
    "STREET_POSTCODE_RANGES",
    "UNIT_SHARE",
    "AustralianBankingProvider",
    "Identity",
    "IdentityFactory",
    "account_number_is_valid",
    "age_on",
    "bsb_is_valid",
    "bsb_state",
    "damm_check_digit",
]

#: The eight states and territories, by their usual abbreviations.
AU_STATES: Final[tuple[str, ...]] = ("NSW", "VIC", "QLD", "SA", "WA", "TAS", "ACT", "NT")

#: BSB third digit per state (AusPayNet/APCA convention). ACT shares NSW's digit
#: and NT shares SA's, so the digit cannot tell those apart.
BSB_STATE_DIGITS: Final[dict[str, int]] = {
    "NSW": 2,
    "ACT": 2,
    "VIC": 3,
    "QLD": 4,
    "SA": 5,
    "NT": 5,
    "WA": 6,
    "TAS": 7,
}

#: The region a BSB state digit stands for, as `bsb_state` reports it.
_BSB_DIGIT_REGIONS: Final[dict[str, str]] = {
    "2": "NSW/ACT",
    "3": "VIC",
    "4": "QLD",
    "5": "SA/NT",
    "6": "WA",
    "7": "TAS",
}

#: Example institution codes (first two BSB digits) that credit unions and
#: mutual banks clear through. Used when `bsb()` is asked for no institution.
CREDIT_UNION_INSTITUTIONS: Final[dict[str, str]] = {
    "80": "Cuscal (credit union settlement; e.g. 802-xxx NSW, 804-xxx QLD)",
    "70": "Indue (credit union settlement; e.g. 703-xxx VIC)",
    "81": "Cuscal second range for mutual banks (assumed)",
}

#: Street-delivery postcode ranges per state, inclusive (Australia Post).
STREET_POSTCODE_RANGES: Final[dict[str, tuple[tuple[int, int], ...]]] = {
    "NSW": ((2000, 2599), (2619, 2899), (2921, 2999)),
    "ACT": ((2600, 2618), (2900, 2920)),
    "VIC": ((3000, 3999),),
    "QLD": ((4000, 4999),),
    "SA": ((5000, 5799),),
    "WA": ((6000, 6797),),
    "TAS": ((7000, 7799),),
    "NT": ((800, 899),),
}

#: Adult age groups `(first age, last age, weight)` with weights in thousands of
#: people, rounded from ABS ERP June 2023 (18-19 is 2/5 of the 15-19 group).
ADULT_AGE_GROUPS: Final[tuple[tuple[int, int, float], ...]] = (
    (18, 19, 640.0),
    (20, 24, 1760.0),
    (25, 29, 1900.0),
    (30, 34, 2000.0),
    (35, 39, 1950.0),
    (40, 44, 1780.0),
    (45, 49, 1680.0),
    (50, 54, 1640.0),
    (55, 59, 1560.0),
    (60, 64, 1520.0),
    (65, 69, 1370.0),
    (70, 74, 1220.0),
    (75, 79, 960.0),
    (80, 84, 600.0),
    (85, 89, 340.0),
    (90, 94, 150.0),
)

#: Members are adults (the contract rejects CreateCustomer under 18) ...
MIN_AGE: Final[int] = 18
#: ... and younger than this on the day they are created.
MAX_AGE_EXCLUSIVE: Final[int] = 95

#: Share of addresses with a unit number in `line2` (ABS Census 2021; assumed).
UNIT_SHARE: Final[float] = 0.14

#: Common Australian email domains (assumed; drawn uniformly).
DEFAULT_EMAIL_DOMAINS: Final[tuple[str, ...]] = (
    "gmail.com",
    "outlook.com",
    "hotmail.com",
    "yahoo.com.au",
    "bigpond.com",
    "icloud.com",
    "optusnet.com.au",
)

# Damm's totally anti-symmetric quasigroup of order 10 (Damm 2004, as tabled on
# Wikipedia "Damm algorithm"). Row = interim digit, column = next input digit.
_DAMM_TABLE: Final[tuple[tuple[int, ...], ...]] = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

# ASCII-only patterns: `\d` would also accept Arabic-Indic and other digits.
_BSB_RE: Final = re.compile(r"[0-9]{3}-?[0-9]{3}")
_DIGITS_RE: Final = re.compile(r"[0-9]+")
_DOMAIN_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)+")
_NOT_LOWER_ASCII_RE: Final = re.compile(r"[^a-z]+")

_ACCOUNT_BODY_DIGITS: Final[int] = 8
_MOBILE_SPACE: Final[int] = 10**8  # the 8 digits after +614

# Pool sizes: large enough that the weighted Faker name lists show through
# (en_US has 690 first and 1,000 last names), small enough to draw in ~0.2 s.
_STREET_POOL: Final[int] = 400
_SUBURB_POOL: Final[int] = 150


def damm_check_digit(digits: str) -> int:
    """Return the Damm check digit that makes `digits + str(check)` verify.

    Args:
        digits: ASCII decimal digits (may be empty).

    Returns:
        The check digit, 0-9.

    Raises:
        ValueError: if `digits` is not all ASCII decimal digits.
    """
    if digits and not _DIGITS_RE.fullmatch(digits):
        raise ValueError(f"expected ASCII decimal digits, got {digits!r}")
    interim = 0
    for char in digits:
        interim = _DAMM_TABLE[interim][ord(char) - 48]
    return interim


def account_number_is_valid(text: str) -> bool:
    """Whether `text` is one of our account numbers: 9 ASCII digits, Damm-valid.

    Args:
        text: the candidate account number, without spaces.

    Returns:
        True when it has 9 digits and its last digit is the Damm check digit
        of the first 8 (equivalently, the Damm fold of all 9 is zero).
    """
    if len(text) != _ACCOUNT_BODY_DIGITS + 1 or not _DIGITS_RE.fullmatch(text):
        return False
    return damm_check_digit(text) == 0


def bsb_is_valid(text: str) -> bool:
    """Whether `text` has the shape of a BSB: `NNN-NNN` or `NNNNNN`.

    BSBs carry no check digit and the register of allocated numbers is
    AusPayNet's, so the shape is all that can be checked offline.

    Args:
        text: the candidate BSB.

    Returns:
        True for six ASCII digits, optionally with a hyphen after the third.
    """
    return _BSB_RE.fullmatch(text) is not None


def bsb_state(text: str) -> str | None:
    """The state or state pair a BSB's third digit names.

    Args:
        text: a BSB, `NNN-NNN` or `NNNNNN`.

    Returns:
        "NSW/ACT", "VIC", "QLD", "SA/NT", "WA" or "TAS"; None when `text` is
        not a BSB or its third digit (0, 1, 8, 9) is not a state digit.
    """
    if not bsb_is_valid(text):
        return None
    return _BSB_DIGIT_REGIONS.get(text[2])


def age_on(date_of_birth: datetime.date, as_of: datetime.date) -> int:
    """Age in completed years on `as_of` (a 29 February birthday counts from 1 March).

    Args:
        date_of_birth: the person's date of birth.
        as_of: the day the age is wanted for.

    Returns:
        Whole years lived by `as_of`.
    """
    before_birthday = (as_of.month, as_of.day) < (date_of_birth.month, date_of_birth.day)
    return as_of.year - date_of_birth.year - int(before_birthday)


def _check_state(state: str) -> None:
    """Raise a ValueError naming the valid states unless `state` is one."""
    if state not in BSB_STATE_DIGITS:
        raise ValueError(f"state must be one of {', '.join(AU_STATES)}; got {state!r}")


class AustralianBankingProvider(BaseProvider):
    """Faker provider for Australian BSBs, account numbers and mobile numbers.

    Add it to a seeded `Faker('en_AU')` with `fake.add_provider(...)`; all
    draws then come from that instance's own random state, so they are
    reproducible per instance and never touch a global RNG.
    """

    def bsb(self, state: str | None = None, institution: str | None = None) -> str:
        """A BSB `NNN-NNN` with a meaningful institution and state digit.

        Args:
            state: "NSW", "VIC", "QLD", "SA", "WA", "TAS", "ACT" or "NT"; the
                third digit follows `BSB_STATE_DIGITS`. None draws a state
                digit 2-7 uniformly.
            institution: the two-digit institution code (e.g. "80"); any code
                01-99 is accepted so counterparties at other banks can be made.
                None draws from `CREDIT_UNION_INSTITUTIONS`.

        Returns:
            The BSB, e.g. "802-417".

        Raises:
            ValueError: on an unknown state or a malformed institution code.
        """
        if state is None:
            state_digit = self.random_int(2, 7)
        else:
            _check_state(state)
            state_digit = BSB_STATE_DIGITS[state]
        if institution is None:
            institution = self.random_element(tuple(CREDIT_UNION_INSTITUTIONS))
        elif len(institution) != 2 or not _DIGITS_RE.fullmatch(institution) or institution == "00":
            raise ValueError(
                "institution must be a two-digit code 01-99 such as "
                f"{', '.join(CREDIT_UNION_INSTITUTIONS)}; got {institution!r}"
            )
        branch = self.random_int(0, 999)
        return f"{institution}{state_digit}-{branch:03d}"

    def account_number(self) -> str:
        """A 9-digit account number: 8 random digits and a Damm check digit.

        Returns:
            The account number; `account_number_is_valid` accepts it.
        """
        body = f"{self.random_int(0, 10**_ACCOUNT_BODY_DIGITS - 1):08d}"
        return body + str(damm_check_digit(body))

    def mobile_e164(self) -> str:
        """An Australian mobile number in E.164 form, `+614` and 8 digits.

        Returns:
            The number, e.g. "+61412345678". Not unique: use `IdentityFactory`
            when a tenant needs distinct mobiles.
        """
        return f"+614{self.random_int(0, _MOBILE_SPACE - 1):08d}"


@dataclass(frozen=True, slots=True)
class Identity:
    """One synthetic person, shaped like CreateCustomer's `person` + `address`.

    Attributes:
        first_name: given name.
        last_name: family name.
        date_of_birth: birth date; the person is 18-94 on the factory's `as_of`.
        email: lowercase ASCII, unique within the tenant.
        mobile: E.164 `+614XXXXXXXX`, unique within the tenant.
        line1: street number and street.
        line2: unit, or None.
        suburb: suburb or town.
        state: state or territory abbreviation.
        postcode: four digits, inside the state's street-delivery range.
        country: ISO 3166 alpha-2, always "AU".
    """

    first_name: str
    last_name: str
    date_of_birth: datetime.date
    email: str
    mobile: str
    line1: str
    line2: str | None
    suburb: str
    state: str
    postcode: str
    country: str = "AU"


def _email_slug(name: str) -> str:
    """Lowercase ASCII letters of `name`: accents folded, everything else dropped.

    "Zoë O'Brien-Smith" -> "zoeobriensmith". Letters only, so a numeric
    suffix appended on collision can never recreate another person's slug.
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return _NOT_LOWER_ASCII_RE.sub("", folded.lower()) or "member"


@dataclass(frozen=True, slots=True)
class _Pools:
    """Faker's name lists with their frequencies, streets and suburbs drawn once.

    Names come straight from Faker's weighted lists (every name it knows,
    with its published frequency) rather than from one Faker call per name:
    the same distribution, ~100x cheaper to set up.
    """

    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    first_cumulative: np.ndarray
    last_cumulative: np.ndarray
    first_slugs: tuple[str, ...]
    last_slugs: tuple[str, ...]
    streets: tuple[str, ...]
    suburbs: tuple[str, ...]


@functools.lru_cache(maxsize=32)
def _faker_pools(faker_seed: int) -> _Pools:
    """Draw the name, street and suburb pools from `Faker('en_AU')` seeded with `faker_seed`.

    Cached because the pools are a pure function of the seed and drawing them
    costs ~0.2 s; several factories (replications, tests) may share a seed.
    """
    fake = Faker("en_AU")
    fake.seed_instance(faker_seed)
    person = fake.provider("faker.providers.person")
    first, first_weights = _weighted(person.first_names)
    last, last_weights = _weighted(person.last_names)
    streets = tuple(fake.street_name() for _ in range(_STREET_POOL))
    # Unique suburb names, so that a suburb always has the same postcode.
    suburbs = tuple(dict.fromkeys(fake.city() for _ in range(_SUBURB_POOL)))
    return _Pools(
        first_names=first,
        last_names=last,
        first_cumulative=np.cumsum(first_weights),
        last_cumulative=np.cumsum(last_weights),
        first_slugs=tuple(_email_slug(n) for n in first),
        last_slugs=tuple(_email_slug(n) for n in last),
        streets=streets,
        suburbs=suburbs,
    )


def _weighted(names: object) -> tuple[tuple[str, ...], np.ndarray]:
    """A Faker name list as (names, weights); plain sequences are uniform."""
    if isinstance(names, dict):
        return tuple(names), np.asarray(list(names.values()), dtype=np.float64)
    values = tuple(names)  # type: ignore[arg-type]
    return values, np.ones(len(values), dtype=np.float64)


def _draw_postcodes(rng: np.random.Generator, state: str, size: int) -> np.ndarray:
    """Postcodes uniform over the union of the state's street-delivery ranges."""
    ranges = STREET_POSTCODE_RANGES[state]
    lows = np.array([lo for lo, _ in ranges], dtype=np.int64)
    widths = np.array([hi - lo + 1 for lo, hi in ranges], dtype=np.int64)
    offsets = rng.integers(0, int(widths.sum()), size=size)
    ends = np.cumsum(widths)
    which = np.searchsorted(ends, offsets, side="right")
    starts = ends - widths
    return lows[which] + offsets - starts[which]


class IdentityFactory:
    """Makes the people of one tenant: deterministic, fast, unique where it must be.

    Emails and mobiles are unique across every call on the same factory, so
    one factory must serve one tenant for the whole run. The same
    `(rng seed, faker_seed, state)` and the same sequence of calls give the
    same people.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        faker_seed: int,
        state: str,
        email_domains: Sequence[str] = DEFAULT_EMAIL_DOMAINS,
    ) -> None:
        """Draw the tenant's pools and its mobile-number permutation.

        Args:
            rng: the tenant's identity stream; the factory owns it from now on.
            faker_seed: seeds the `Faker('en_AU')` instance the pools come from.
            state: the tenant's state or territory; every address is in it.
            email_domains: domains to draw from uniformly; lowercase ASCII.

        Raises:
            ValueError: on an unknown state or an empty or malformed domain list.
        """
        _check_state(state)
        domains = tuple(email_domains)
        if not domains:
            raise ValueError("email_domains must not be empty")
        bad = [d for d in domains if not isinstance(d, str) or not _DOMAIN_RE.fullmatch(d)]
        if bad:
            raise ValueError(f"email domains must be lowercase ASCII host names; got {bad!r}")
        self._rng = rng
        self._state = state
        self._domains = domains
        self._pools = _faker_pools(faker_seed)
        self._suburb_postcodes = tuple(
            f"{p:04d}" for p in _draw_postcodes(rng, state, len(self._pools.suburbs)).tolist()
        )
        # Mobile = (a * n + b) mod 10**8 for the n-th person: a bijection on
        # 8-digit numbers because a is a unit mod 10**8 (odd, not a multiple
        # of 5), so the first 10**8 people get distinct numbers with no lookup.
        unit_last_digit = (1, 3, 7, 9)[int(rng.integers(0, 4))]
        self._mobile_mul = 10 * int(rng.integers(0, _MOBILE_SPACE // 10)) + unit_last_digit
        self._mobile_add = int(rng.integers(0, _MOBILE_SPACE))
        self._issued = 0
        self._email_uses: dict[str, int] = {}
        weights = np.array([w for _, _, w in ADULT_AGE_GROUPS])
        self._age_group_p = weights / weights.sum()
        self._age_group_lo = np.array([lo for lo, _, _ in ADULT_AGE_GROUPS], dtype=np.int64)
        self._age_group_n = np.array([hi - lo + 1 for lo, hi, _ in ADULT_AGE_GROUPS])

    @property
    def state(self) -> str:
        """The tenant's state or territory."""
        return self._state

    @property
    def issued(self) -> int:
        """How many people this factory has made so far."""
        return self._issued

    def people(self, count: int, as_of: datetime.date) -> list[Identity]:
        """Make `count` new people, each an adult (18-94) on `as_of`.

        Args:
            count: how many people; 0 gives an empty list.
            as_of: the simulated date they join (a `date`, not a `datetime`,
                so no time zone question can arise).

        Returns:
            The new identities, emails and mobiles distinct from every
            identity this factory made before.

        Raises:
            TypeError: if `as_of` is a `datetime` or not a date.
            ValueError: if `count` is negative or would exhaust the 10**8
                mobile numbers.
        """
        if isinstance(as_of, datetime.datetime) or not isinstance(as_of, datetime.date):
            raise TypeError(f"as_of must be a datetime.date (not datetime); got {as_of!r}")
        if count < 0:
            raise ValueError(f"count must be >= 0; got {count}")
        if self._issued + count > _MOBILE_SPACE:
            raise ValueError("a tenant cannot have more than 10**8 distinct mobile numbers")
        if count == 0:
            return []
        rng = self._rng
        pools = self._pools
        first_cum, last_cum = pools.first_cumulative, pools.last_cumulative
        first_idx = np.searchsorted(
            first_cum, rng.random(count) * first_cum[-1], side="right"
        ).tolist()
        last_idx = np.searchsorted(
            last_cum, rng.random(count) * last_cum[-1], side="right"
        ).tolist()
        street_idx = rng.integers(0, len(pools.streets), size=count).tolist()
        suburb_idx = rng.integers(0, len(pools.suburbs), size=count).tolist()
        domain_idx = rng.integers(0, len(self._domains), size=count).tolist()
        # House numbers: mostly small, a long tail (geometric, mean 30; assumed).
        house = np.minimum(rng.geometric(1 / 30, size=count), 999).tolist()
        has_unit = (rng.random(count) < UNIT_SHARE).tolist()
        unit = rng.integers(1, 60, size=count).tolist()
        births = self._dates_of_birth(count, as_of).tolist()
        counters = np.arange(self._issued, self._issued + count, dtype=np.int64)
        mobiles = ((counters * self._mobile_mul + self._mobile_add) % _MOBILE_SPACE).tolist()

        first_names, last_names = pools.first_names, pools.last_names
        first_slugs, last_slugs = pools.first_slugs, pools.last_slugs
        streets, suburbs, postcodes = pools.streets, pools.suburbs, self._suburb_postcodes
        domains, uses, state = self._domains, self._email_uses, self._state
        out: list[Identity] = []
        append = out.append
        for i in range(count):
            f, last, s = first_idx[i], last_idx[i], suburb_idx[i]
            local = f"{first_slugs[f]}.{last_slugs[last]}"
            domain = domains[domain_idx[i]]
            key = f"{local}@{domain}"
            n = uses.get(key, 0) + 1
            uses[key] = n
            append(
                Identity(
                    first_name=first_names[f],
                    last_name=last_names[last],
                    date_of_birth=births[i],
                    email=key if n == 1 else f"{local}{n}@{domain}",
                    mobile=f"+614{mobiles[i]:08d}",
                    line1=f"{house[i]} {streets[street_idx[i]]}",
                    line2=f"Unit {unit[i]}" if has_unit[i] else None,
                    suburb=suburbs[s],
                    state=state,
                    postcode=postcodes[s],
                )
            )
        self._issued += count
        return out

    def _dates_of_birth(self, count: int, as_of: datetime.date) -> np.ndarray:
        """Dates of birth (datetime64[D]) for ages drawn from `ADULT_AGE_GROUPS`.

        For age `a`, the latest birth date is `as_of` moved back `a` years
        (29 Feb -> 28 Feb in common years); the earliest is the day after the
        latest for `a + 1`. Drawing uniformly between them gives exactly age
        `a` on `as_of` under `age_on`'s rule.
        """
        rng = self._rng
        group = rng.choice(len(self._age_group_p), size=count, p=self._age_group_p)
        ages = self._age_group_lo[group] + np.floor(
            rng.random(count) * self._age_group_n[group]
        ).astype(np.int64)
        latest = np.array(
            [_years_before(as_of, a) for a in range(MIN_AGE, MAX_AGE_EXCLUSIVE + 1)],
            dtype="datetime64[D]",
        )
        upper = latest[ages - MIN_AGE]
        span = (upper - latest[ages - MIN_AGE + 1]).astype(np.int64)  # 365 or 366 days
        back = np.floor(rng.random(count) * span).astype(np.int64)
        return (upper - back.astype("timedelta64[D]")).astype(object)


def _years_before(day: datetime.date, years: int) -> datetime.date:
    """`day` moved back `years` years, 29 February becoming 28 February if needed."""
    target = day.year - years
    try:
        return day.replace(year=target)
    except ValueError:  # 29 Feb into a common year
        return datetime.date(target, 2, 28)
