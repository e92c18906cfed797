"""The shadow book: what every balance should be, kept by the twin alone.

The twin applies every command the platform acknowledged to its own book of
expected balances (same convention as the platform: debits minus credits). It
never reads a balance from the platform; at the end the book is compared with
the platform's read model and with a replay of the platform's events, account
by account, exact to the cent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from turingcore.contract import Leg


class ShadowBook:
    """Expected balances in integer cents for one tenant."""

    __slots__ = ("tenant_id", "balances", "entries")

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.balances: dict[str, int] = {}
        self.entries = 0

    def apply(self, legs: Sequence[Leg]) -> None:
        """Apply an acknowledged entry."""
        balances = self.balances
        for leg in legs:
            signed = leg.amount if leg.direction == "DEBIT" else -leg.amount
            balances[leg.account_id] = balances.get(leg.account_id, 0) + signed
        self.entries += 1

    def revert(self, legs: Sequence[Leg]) -> None:
        """Undo an entry applied on the expectation that it would be accepted."""
        balances = self.balances
        for leg in legs:
            signed = leg.amount if leg.direction == "DEBIT" else -leg.amount
            balances[leg.account_id] -= signed
        self.entries -= 1

    def transfer(self, debit_account: str, credit_account: str, amount: int) -> None:
        """Apply an acknowledged two-leg entry (the common case, kept cheap)."""
        balances = self.balances
        balances[debit_account] = balances.get(debit_account, 0) + amount
        balances[credit_account] = balances.get(credit_account, 0) - amount
        self.entries += 1

    def reverse(self, debit_account: str, credit_account: str, amount: int) -> None:
        """Undo a `transfer` applied on the expectation that it would be accepted."""
        balances = self.balances
        balances[debit_account] -= amount
        balances[credit_account] += amount
        self.entries -= 1

    def open(self, account_id: str) -> None:
        """Know an account opened with nothing in it (a card not yet used): balance zero."""
        self.balances.setdefault(account_id, 0)

    def balance(self, account_id: str) -> int:
        return self.balances.get(account_id, 0)

    def total(self) -> int:
        """Sum of all balances: zero whenever every entry balanced."""
        return sum(self.balances.values())


def shadow_view(books: Mapping[str, ShadowBook]) -> dict[str, dict[str, int]]:
    """tenant -> account -> expected cents, for the invariant checks and snapshots."""
    return {tenant: dict(book.balances) for tenant, book in books.items()}
