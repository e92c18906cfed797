"""The shadow book: the twin's own expected balances, debits minus credits, summing to zero."""

from __future__ import annotations

import numpy as np

from sim.shadow import ShadowBook, shadow_view
from turingcore.contract import Leg
from turingcore.eventlog import EventLogReader


def test_transfer_debits_one_account_and_credits_the_other() -> None:
    """transfer(d, c, n): d gains n, c loses n (debits minus credits); the sum stays zero."""
    book = ShadowBook("cu-a")
    book.transfer("member-1", "GL_SALARY_CLEARING", 250_000)
    assert book.balance("member-1") == 250_000
    assert book.balance("GL_SALARY_CLEARING") == -250_000
    assert book.balance("never-touched") == 0
    assert book.total() == 0
    assert book.entries == 1


def test_open_knows_an_empty_account_without_touching_a_used_one() -> None:
    """open(): an account opened empty is known at zero; a used one keeps its balance."""
    book = ShadowBook("cu-a")
    book.open("card-1")
    assert book.balances == {"card-1": 0}
    book.transfer("GL_CARD_CLEARING", "card-1", 700)
    book.open("card-1")
    assert book.balance("card-1") == -700
    assert book.entries == 1


def test_reverse_undoes_a_transfer_exactly() -> None:
    """reverse() after transfer() restores every balance and the entry count."""
    book = ShadowBook("cu-a")
    book.transfer("member-1", "GL_SALARY_CLEARING", 10_000)
    before = dict(book.balances)
    book.transfer("GL_CARD_CLEARING", "member-1", 4_321)
    assert book.balance("member-1") == 10_000 - 4_321
    book.reverse("GL_CARD_CLEARING", "member-1", 4_321)
    assert {k: v for k, v in book.balances.items() if v} == before
    assert book.total() == 0
    assert book.entries == 1


def test_apply_and_revert_multi_leg_entries() -> None:
    """apply() signs legs by direction; revert() undoes it; balanced legs keep the sum at zero."""
    book = ShadowBook("cu-a")
    legs = [
        Leg("member-1", "DEBIT", 700),
        Leg("member-2", "DEBIT", 300),
        Leg("GL_NPP_CLEARING", "CREDIT", 1_000),
    ]
    book.apply(legs)
    assert book.balances == {"member-1": 700, "member-2": 300, "GL_NPP_CLEARING": -1_000}
    assert book.total() == 0
    assert book.entries == 1
    book.apply([Leg("member-1", "CREDIT", 200), Leg("member-2", "DEBIT", 200)])
    assert (book.balance("member-1"), book.balance("member-2")) == (500, 500)
    book.revert([Leg("member-1", "CREDIT", 200), Leg("member-2", "DEBIT", 200)])
    book.revert(legs)
    assert all(cents == 0 for cents in book.balances.values())
    assert book.entries == 0


def test_random_sequences_keep_the_sum_at_zero() -> None:
    """A long random mix of transfers, reverses and applies: always zero-sum, exactly folded."""
    rng = np.random.default_rng(20250701)
    accounts = [f"acct-{i}" for i in range(12)] + ["GL_CARD_CLEARING", "GL_SALARY_CLEARING"]
    book = ShadowBook("cu-a")
    expected: dict[str, int] = {}
    done: list[tuple[str, str, int]] = []
    for _ in range(3_000):
        kind = rng.integers(0, 3)
        if kind == 0 or not done:
            debit, credit = rng.choice(accounts, 2, replace=False).tolist()
            amount = int(rng.integers(1, 10**7))
            book.transfer(debit, credit, amount)
            done.append((debit, credit, amount))
            expected[debit] = expected.get(debit, 0) + amount
            expected[credit] = expected.get(credit, 0) - amount
        elif kind == 1:
            debit, credit, amount = done.pop(int(rng.integers(0, len(done))))
            book.reverse(debit, credit, amount)
            expected[debit] -= amount
            expected[credit] += amount
        else:
            a, b, c = rng.choice(accounts, 3, replace=False).tolist()
            x, y = int(rng.integers(1, 10**6)), int(rng.integers(1, 10**6))
            book.apply([Leg(a, "DEBIT", x + y), Leg(b, "CREDIT", x), Leg(c, "CREDIT", y)])
            for account, delta in ((a, x + y), (b, -x), (c, -y)):
                expected[account] = expected.get(account, 0) + delta
        assert book.total() == 0
    assert {k: v for k, v in book.balances.items() if v} == {k: v for k, v in expected.items() if v}


def test_shadow_view_is_a_copy() -> None:
    """shadow_view gives tenant -> account -> cents; changing it leaves the books alone."""
    books = {"cu-a": ShadowBook("cu-a"), "cu-b": ShadowBook("cu-b")}
    books["cu-a"].transfer("x", "y", 5)
    view = shadow_view(books)
    assert view == {"cu-a": {"x": 5, "y": -5}, "cu-b": {}}
    view["cu-a"]["x"] = 999
    assert books["cu-a"].balance("x") == 5


def test_shadow_book_equals_the_read_model_at_the_end_of_a_run(small_run) -> None:
    """After a run each tenant's book sums to zero and equals the platform's read model."""
    with EventLogReader(small_run.dir / "events.sqlite") as reader:
        read_model = reader.table("read_model_accounts")
    for tenant in ("cu-a", "cu-b"):
        book = small_run.twin.worlds[tenant].shadow
        assert book.total() == 0
        platform = {row[1]: row[3] for row in read_model if row[0] == tenant}
        members = {k: v for k, v in book.balances.items() if not k.startswith("GL_")}
        assert len(platform) > 50
        assert members == platform


def test_shadow_entries_count_every_acknowledged_posting(small_run, small_events) -> None:
    """The book applied exactly one entry per accepted posting (opening deposits included)."""
    for tenant, events in small_events.items():
        postings = sum(e["eventType"] in ("EntryPosted", "FundsPosted") for e in events)
        assert small_run.twin.worlds[tenant].shadow.entries == postings
