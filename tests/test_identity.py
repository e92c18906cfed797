"""Tests for models.identity: the banking Faker provider and the IdentityFactory."""

from __future__ import annotations

import datetime
import math
import re
from collections import Counter, defaultdict

import numpy as np
import pytest
from faker import Faker
from scipy import stats

from models import identity
from models.identity import (
    ADULT_AGE_GROUPS,
    CREDIT_UNION_INSTITUTIONS,
    UNIT_SHARE,
    AustralianBankingProvider,
    Identity,
    IdentityFactory,
    account_number_is_valid,
    age_on,
    bsb_is_valid,
    bsb_state,
    damm_check_digit,
)

# Australia Post street-delivery postcode ranges, written out independently of
# the module's table so that a wrong table fails here.
EXPECTED_POSTCODES: dict[str, list[range]] = {
    "NSW": [range(2000, 2600), range(2619, 2900), range(2921, 3000)],
    "ACT": [range(2600, 2619), range(2900, 2921)],
    "VIC": [range(3000, 4000)],
    "QLD": [range(4000, 5000)],
    "SA": [range(5000, 5800)],
    "WA": [range(6000, 6798)],
    "TAS": [range(7000, 7800)],
    "NT": [range(800, 900)],
}
EXPECTED_STATE_DIGIT = {
    "NSW": "2",
    "ACT": "2",
    "VIC": "3",
    "QLD": "4",
    "SA": "5",
    "NT": "5",
    "WA": "6",
    "TAS": "7",
}
BSB_RE = re.compile(r"[0-9]{3}-[0-9]{3}")
MOBILE_RE = re.compile(r"\+614[0-9]{8}")
SEEDS = (1, 2, 3, 4, 5)
AS_OF = datetime.date(2025, 7, 1)


def _fake(seed: int) -> Faker:
    """A seeded en_AU Faker with our provider, as the rest of the twin builds it."""
    fake = Faker("en_AU")
    fake.seed_instance(seed)
    fake.add_provider(AustralianBankingProvider)
    return fake


def _factory(seed: int, state: str = "NSW", faker_seed: int = 11, **kwargs) -> IdentityFactory:
    """A factory on a fresh Generator seeded with `seed`."""
    return IdentityFactory(np.random.default_rng(seed), faker_seed, state, **kwargs)


# --- provider: BSB ---------------------------------------------------------


def test_bsb_format_and_validity_over_many_draws() -> None:
    """Every drawn BSB is NNN-NNN, valid, and from a credit-union institution code."""
    fake = _fake(1)
    for _ in range(3000):
        bsb = fake.bsb()
        assert BSB_RE.fullmatch(bsb), bsb
        assert bsb_is_valid(bsb)
        assert bsb[:2] in CREDIT_UNION_INSTITUTIONS
        assert bsb_state(bsb) is not None


@pytest.mark.parametrize("state", sorted(EXPECTED_STATE_DIGIT))
def test_bsb_state_digit_honoured(state: str) -> None:
    """The third digit is the APCA state digit and bsb_state names the state."""
    fake = _fake(2)
    for _ in range(300):
        bsb = fake.bsb(state=state)
        assert bsb[2] == EXPECTED_STATE_DIGIT[state]
        region = bsb_state(bsb)
        assert region is not None
        assert state in region.split("/")


def test_bsb_institution_honoured() -> None:
    """An explicit institution code appears as the first two digits, any state."""
    fake = _fake(3)
    for code in ("80", "70", "06", "99"):
        for _ in range(100):
            assert fake.bsb(institution=code).startswith(code)
    assert fake.bsb(state="WA", institution="30")[:3] == "306"


def test_bsb_unspecified_state_digit_is_uniform_over_states() -> None:
    """Without a state, digits 2-7 are drawn evenly (chi-square over several seeds)."""
    for seed in SEEDS:
        fake = _fake(seed)
        counts = Counter(fake.bsb()[2] for _ in range(1200))
        assert set(counts) == {"2", "3", "4", "5", "6", "7"}
        observed = [counts[d] for d in "234567"]
        assert stats.chisquare(observed).pvalue > 1e-4


@pytest.mark.parametrize("state", ["XX", "nsw", "", "Victoria", "NZ"])
def test_bsb_bad_state_is_a_clear_error(state: str) -> None:
    """An unknown state raises ValueError naming the accepted states."""
    with pytest.raises(ValueError, match="NSW, VIC, QLD"):
        _fake(1).bsb(state=state)


@pytest.mark.parametrize("institution", ["8", "800", "ab", "00", "", "٨٠"])
def test_bsb_bad_institution_is_a_clear_error(institution: str) -> None:
    """A malformed institution code raises ValueError saying what is expected."""
    with pytest.raises(ValueError, match="two-digit code"):
        _fake(1).bsb(institution=institution)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("802-123", True),
        ("802123", True),
        ("80-2123", False),
        ("802-1234", False),
        ("8021234", False),
        ("802 123", False),
        ("abc-def", False),
        ("٨٠٢-١٢٣", False),
        ("", False),
        (" 802-123", False),
    ],
)
def test_bsb_is_valid_shape(text: str, valid: bool) -> None:
    """bsb_is_valid accepts six ASCII digits with an optional hyphen, nothing else."""
    assert bsb_is_valid(text) is valid


@pytest.mark.parametrize(
    ("text", "region"),
    [
        ("802-001", "NSW/ACT"),
        ("703-232", "VIC"),
        ("804-087", "QLD"),
        ("805107", "SA/NT"),
        ("306-059", "WA"),
        ("807-000", "TAS"),
        ("800-000", None),
        ("811-000", None),
        ("808-000", None),
        ("809-000", None),
        ("not-bsb", None),
    ],
)
def test_bsb_state_of_known_bsbs(text: str, region: str | None) -> None:
    """bsb_state reads the third digit; non-state digits and non-BSBs give None."""
    assert bsb_state(text) == region


# --- provider: account numbers -------------------------------------------


def test_damm_known_vector() -> None:
    """Damm's published example: the check digit of 572 is 4."""
    assert damm_check_digit("572") == 4
    assert damm_check_digit("5724") == 0


def test_damm_rejects_non_digits() -> None:
    """damm_check_digit refuses anything but ASCII digits."""
    with pytest.raises(ValueError, match="ASCII decimal digits"):
        damm_check_digit("12a4")


def test_account_numbers_have_nine_digits_and_verify() -> None:
    """Drawn account numbers are 9 ASCII digits, valid, and rarely repeat."""
    fake = _fake(4)
    drawn = [fake.account_number() for _ in range(3000)]
    for number in drawn:
        assert len(number) == 9
        assert number.isascii()
        assert number.isdigit()
        assert account_number_is_valid(number)
    assert len(set(drawn)) > 2990


def test_account_check_digit_detects_every_single_digit_change() -> None:
    """Changing any one digit of a valid number to any other digit makes it invalid."""
    fake = _fake(5)
    for _ in range(200):
        number = fake.account_number()
        for pos in range(9):
            for digit in "0123456789":
                if digit != number[pos]:
                    changed = number[:pos] + digit + number[pos + 1 :]
                    assert not account_number_is_valid(changed), (number, changed)


def test_account_check_digit_detects_every_adjacent_transposition() -> None:
    """Swapping any two different adjacent digits makes the number invalid (Damm)."""
    fake = _fake(6)
    swaps = 0
    for _ in range(500):
        number = fake.account_number()
        for pos in range(8):
            a, b = number[pos], number[pos + 1]
            if a != b:
                swapped = number[:pos] + b + a + number[pos + 2 :]
                assert not account_number_is_valid(swapped), (number, swapped)
                swaps += 1
    assert swaps > 3000


def test_adjacent_transposition_exhaustive_for_all_digit_pairs() -> None:
    """Every pair ab != ba after every possible interim prefix digit is caught."""
    for prefix in range(100):
        for a in range(10):
            for b in range(10):
                if a == b:
                    continue
                body = f"{prefix:02d}{a}{b}"
                check = damm_check_digit(body)
                assert damm_check_digit(f"{prefix:02d}{b}{a}{check}") != 0


@pytest.mark.parametrize(
    "text", ["", "12345678", "1234567890", "12345678a", "١٢٣٤٥٦٧٨٩", " 12345678", "-12345678"]
)
def test_account_number_is_valid_rejects_malformed(text: str) -> None:
    """Wrong lengths, letters, signs and non-ASCII digits are never valid."""
    assert not account_number_is_valid(text)


# --- provider: mobiles and determinism ----------------------------------


def test_mobile_e164_format() -> None:
    """Mobiles are +614 followed by 8 digits, and vary."""
    fake = _fake(7)
    drawn = [fake.mobile_e164() for _ in range(2000)]
    assert all(MOBILE_RE.fullmatch(m) for m in drawn)
    assert len(set(drawn)) > 1990


def test_provider_is_deterministic_per_seeded_instance() -> None:
    """Two Faker instances seeded alike draw the same banking data; other seeds differ."""

    def draws(seed: int) -> list[str]:
        fake = _fake(seed)
        return [f() for _ in range(50) for f in (fake.bsb, fake.account_number, fake.mobile_e164)]

    assert draws(8) == draws(8)
    assert draws(8) != draws(9)


# --- age_on ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dob", "as_of", "age"),
    [
        (datetime.date(2006, 2, 28), datetime.date(2024, 2, 28), 18),
        (datetime.date(2006, 3, 1), datetime.date(2024, 2, 29), 17),
        (datetime.date(2006, 2, 28), datetime.date(2024, 2, 29), 18),
        (datetime.date(2004, 2, 29), datetime.date(2022, 2, 28), 17),
        (datetime.date(2004, 2, 29), datetime.date(2022, 3, 1), 18),
        (datetime.date(2000, 12, 31), datetime.date(2018, 12, 30), 17),
        (datetime.date(2000, 12, 31), datetime.date(2018, 12, 31), 18),
    ],
)
def test_age_on_completed_years(dob: datetime.date, as_of: datetime.date, age: int) -> None:
    """age_on counts completed years; a 29 Feb birthday is reached on 1 March."""
    assert age_on(dob, as_of) == age


# --- IdentityFactory -------------------------------------------------------


@pytest.mark.parametrize(
    "as_of",
    [
        datetime.date(2024, 2, 29),
        datetime.date(2023, 2, 28),
        datetime.date(2023, 3, 1),
        datetime.date(2025, 1, 1),
        datetime.date(2025, 12, 31),
        datetime.date(1990, 6, 15),
    ],
)
def test_every_person_is_an_adult_under_95(as_of: datetime.date) -> None:
    """All ages on as_of are 18-94, and both ends of the range are reached."""
    people = _factory(21).people(20_000, as_of)
    ages = Counter(age_on(p.date_of_birth, as_of) for p in people)
    assert min(ages) == 18
    assert max(ages) == 94
    # Birthdays spread over the year rather than all falling on as_of's day.
    assert len({(p.date_of_birth.month, p.date_of_birth.day) for p in people}) > 350


def test_age_distribution_follows_adult_age_groups() -> None:
    """Age-group counts fit ADULT_AGE_GROUPS' weights (chi-square, several seeds)."""
    weights = np.array([w for _, _, w in ADULT_AGE_GROUPS])
    edges = [lo for lo, _, _ in ADULT_AGE_GROUPS] + [ADULT_AGE_GROUPS[-1][1] + 1]
    for seed in SEEDS:
        people = _factory(seed).people(8000, AS_OF)
        ages = [age_on(p.date_of_birth, AS_OF) for p in people]
        observed, _ = np.histogram(ages, bins=edges)
        expected = weights / weights.sum() * len(ages)
        assert stats.chisquare(observed, expected).pvalue > 1e-4
    # Within a group ages are uniform: 20-24 has five ages of similar counts.
    people = _factory(99).people(20_000, AS_OF)
    counts = Counter(age_on(p.date_of_birth, AS_OF) for p in people)
    assert stats.chisquare([counts[a] for a in range(20, 25)]).pvalue > 1e-4


def test_emails_and_mobiles_unique_over_several_calls() -> None:
    """20,000 people made in four calls have distinct emails and distinct mobiles."""
    factory = _factory(31)
    people: list[Identity] = []
    for as_of, count in [
        (datetime.date(2024, 1, 1), 5000),
        (datetime.date(2024, 6, 30), 1),
        (datetime.date(2025, 2, 28), 9999),
        (datetime.date(2026, 3, 1), 5000),
    ]:
        people += factory.people(count, as_of)
    assert factory.issued == len(people) == 20_000
    assert len({p.email for p in people}) == len(people)
    assert len({p.mobile for p in people}) == len(people)
    assert all(MOBILE_RE.fullmatch(p.mobile) for p in people)


def test_emails_derive_from_names_with_numbered_collisions() -> None:
    """Emails are first.last@domain in lowercase ASCII, suffixed 2, 3, ... on reuse."""
    domains = ("example.com.au", "mail.example.org")
    factory = _factory(41, email_domains=domains)
    people = factory.people(6000, AS_OF) + factory.people(6000, AS_OF)
    suffixes: dict[str, list[int]] = defaultdict(list)
    for p in people:
        local, domain = p.email.split("@")
        assert domain in domains
        assert p.email.isascii()
        assert p.email == p.email.lower()
        match = re.fullmatch(r"([a-z]+\.[a-z]+)([0-9]*)", local)
        assert match, p.email
        first = re.sub(r"[^a-z]", "", p.first_name.lower())
        last = re.sub(r"[^a-z]", "", p.last_name.lower())
        assert match.group(1) == f"{first}.{last}"
        suffixes[f"{match.group(1)}@{domain}"].append(int(match.group(2) or 1))
    assert any(len(s) > 1 for s in suffixes.values()), "expected some name collisions"
    for used in suffixes.values():
        assert used == list(range(1, len(used) + 1))


def test_email_slug_strips_accents_apostrophes_and_spaces() -> None:
    """Names are folded to lowercase ASCII letters; nothing usable gives a fallback."""
    assert identity._email_slug("Zoë O'Brien-Smith") == "zoeobriensmith"
    assert identity._email_slug("Mary Ann") == "maryann"
    assert identity._email_slug("José") == "jose"
    assert identity._email_slug("李") == "member"


@pytest.mark.parametrize("state", sorted(EXPECTED_POSTCODES))
def test_addresses_in_tenant_state_with_postcode_in_range(state: str) -> None:
    """Every address is in the tenant's state, AU, with a 4-digit in-range postcode."""
    people = _factory(51, state=state).people(3000, AS_OF)
    for p in people:
        assert p.state == state
        assert p.country == "AU"
        assert re.fullmatch(r"[0-9]{4}", p.postcode)
        assert any(int(p.postcode) in r for r in EXPECTED_POSTCODES[state]), p.postcode
        assert re.fullmatch(r"[0-9]+ \S.*", p.line1), p.line1
        assert p.line2 is None or re.fullmatch(r"Unit [0-9]+", p.line2)
        assert p.suburb
    # Suburbs keep one postcode each.
    by_suburb: dict[str, set[str]] = defaultdict(set)
    for p in people:
        by_suburb[p.suburb].add(p.postcode)
    assert all(len(codes) == 1 for codes in by_suburb.values())


def test_unit_share_matches_parameter() -> None:
    """The share of addresses with a unit is UNIT_SHARE within 4 sigma (several seeds)."""
    n = 5000
    sigma = (UNIT_SHARE * (1 - UNIT_SHARE) / n) ** 0.5
    for seed in SEEDS:
        people = _factory(seed).people(n, AS_OF)
        share = sum(p.line2 is not None for p in people) / n
        assert abs(share - UNIT_SHARE) < 4 * sigma


def test_same_seeds_give_identical_people() -> None:
    """Same (rng seed, faker seed, state) and calls give identical people, even after
    the Faker pool cache is cleared (so Faker's own seeding is exercised)."""

    def run() -> list[Identity]:
        factory = _factory(61, state="QLD", faker_seed=7)
        return factory.people(500, AS_OF) + factory.people(700, datetime.date(2026, 2, 1))

    first = run()
    identity._faker_pools.cache_clear()
    assert run() == first


def test_different_seeds_give_different_people() -> None:
    """Changing the rng seed or the Faker seed changes the people made.

    Names are drawn by the numpy stream from Faker's weighted lists; the
    Faker seed draws the street and suburb pools.
    """
    base = _factory(71, faker_seed=7).people(300, AS_OF)
    other_rng = _factory(72, faker_seed=7).people(300, AS_OF)
    other_faker = _factory(71, faker_seed=8).people(300, AS_OF)
    assert base != other_rng
    assert base != other_faker
    assert {p.mobile for p in base} != {p.mobile for p in other_rng}
    assert {p.last_name for p in base} != {p.last_name for p in other_rng}
    assert {p.suburb for p in base} != {p.suburb for p in other_faker}


@pytest.mark.parametrize("state", ["XX", "nsw", "", "New South Wales"])
def test_factory_bad_state_is_a_clear_error(state: str) -> None:
    """An unknown tenant state raises ValueError listing the valid states."""
    with pytest.raises(ValueError, match="state must be one of NSW"):
        _factory(1, state=state)


@pytest.mark.parametrize("domains", [(), ("Gmail.com",), ("nodot",), ("bad domain.com",)])
def test_factory_bad_domains_are_errors(domains: tuple[str, ...]) -> None:
    """Empty or malformed email domain lists are rejected up front."""
    with pytest.raises(ValueError, match="email"):
        _factory(1, email_domains=domains)


def test_people_argument_errors() -> None:
    """Negative counts, datetimes and exhausting the mobile space are refused."""
    factory = _factory(81)
    with pytest.raises(ValueError, match="count"):
        factory.people(-1, AS_OF)
    with pytest.raises(TypeError, match="datetime.date"):
        factory.people(1, datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC))
    with pytest.raises(ValueError, match="10\\*\\*8"):
        factory.people(10**8 + 1, AS_OF)
    assert factory.people(0, AS_OF) == []
    assert factory.issued == 0


@pytest.mark.parametrize(
    ("day", "years", "expected"),
    [
        (datetime.date(2024, 2, 29), 18, datetime.date(2006, 2, 28)),
        (datetime.date(2024, 2, 29), 20, datetime.date(2004, 2, 29)),
        (datetime.date(2025, 3, 1), 18, datetime.date(2007, 3, 1)),
        (datetime.date(2025, 12, 31), 94, datetime.date(1931, 12, 31)),
    ],
)
def test_years_before_clamps_29_february(
    day: datetime.date, years: int, expected: datetime.date
) -> None:
    """Moving 29 Feb back into a common year lands on 28 Feb, the latest birth date
    that already has that age by age_on's rule."""
    moved = identity._years_before(day, years)
    assert moved == expected
    assert age_on(moved, day) == years
    assert age_on(moved + datetime.timedelta(days=1), day) == years - 1


def test_age_groups_cover_18_to_94_without_gaps() -> None:
    """The age table is contiguous from 18 to 94 with positive weights."""
    ages = [a for lo, hi, _ in ADULT_AGE_GROUPS for a in range(lo, hi + 1)]
    assert ages == list(range(18, 95))
    assert all(w > 0 for _, _, w in ADULT_AGE_GROUPS)


def test_mobile_multiplier_is_a_unit_mod_10_to_the_8() -> None:
    """The mobile permutation's multiplier is coprime to 10**8 for every seed, which is
    what makes counter -> mobile a bijection beyond the sizes tested above."""
    for seed in range(300):
        factory = IdentityFactory(np.random.default_rng(seed), 11, "NSW")
        assert math.gcd(factory._mobile_mul, 10**8) == 1
