"""The HTTP service over a real uvicorn server: contract answers, isolation, auth, batches, metrics.

One server per store runs in a thread for the session, on a free loopback
port, and is driven with httpx like any client. The store comes from the
`ledger_factory` fixture, parametrised over `STORES`: the in-memory store and
the PostgreSQL store on the session's fresh database (which calls
`services.service_missing` when PostgreSQL is not usable). Two tenants,
alpha and bravo, are set up over HTTP once; every test that sends something
checks what must not have changed (heads, listings) before and after.
"""

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jwt
import msgspec
import pytest
from http_server import running
from platform_builders import Commands
from prometheus_client.parser import text_string_to_metric_families
from token_builders import (
    AUDIENCE,
    ISSUER,
    SECRET,
    claims_for,
    hmac_token,
    rsa_key_pair,
    unsigned_token,
)
from typer.testing import CliRunner

from turingcore.auth import SECRET_ENV, AuthConfig, issue_token
from turingcore.cli import app as cli_app
from turingcore.contract import Envelope, encode_envelope
from turingcore.events import GENESIS_HASH, verify_chain
from turingcore.ledger import Ledger
from turingcore.memledger import MemoryLedger
from turingcore.pgstore import PostgresLedger
from turingcore.service import StoreError, create_app, open_store

#: The stores the API tests run against: in memory, and PostgreSQL (row-level
#: security) on the session's fresh database (`pg_fixtures.pg_database`).
STORES = ("memory", "postgresql")

MAX_BODY = 64 * 1024
MAX_BATCH = 2 * 1024 * 1024
_EXACT = msgspec.json.Encoder(decimal_format="number")
RUN = uuid.uuid4().hex[:6]


@pytest.fixture(scope="session", params=STORES)
def ledger_factory(request: pytest.FixtureRequest) -> Callable[[], Ledger]:
    """Makes a fresh, empty store of one kind (the test session runs once per kind)."""
    if request.param == "memory":
        return MemoryLedger
    database = request.getfixturevalue("pg_database")
    return lambda: PostgresLedger(database.dsn)


# --------------------------------------------------------------------------- server


@dataclass
class Server:
    """The running service: its URL, the app (for its registry) and the store behind it."""

    url: str
    app: Any
    ledger: Ledger
    http: httpx.Client


@pytest.fixture(scope="session")
def server(ledger_factory: Callable[[], Ledger]) -> Iterator[Server]:
    """The service on a fresh store, for the whole session."""
    ledger = ledger_factory()
    app = create_app(
        ledger,
        AuthConfig(SECRET, ISSUER, AUDIENCE),
        max_body_bytes=MAX_BODY,
        max_batch_bytes=MAX_BATCH,
    )
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Server(url, app, ledger, http)
    ledger.close()


def token_for(tenant: str, **changes: Any) -> str:
    """A good HS256 token for `tenant` (claims changed or dropped by `changes`)."""
    return jwt.encode(claims_for(tenant, **changes), SECRET, algorithm="HS256")


@dataclass
class Api:
    """One tenant as a client sees it: its token, its command maker, its ids."""

    http: httpx.Client
    tenant: str
    code: str
    cmd: Commands
    token: str = ""
    customers: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def path(self, rest: str = "", tenant: str | None = None) -> str:
        return f"/v1/tenants/{tenant or self.tenant}{rest}"

    def post(self, body: Envelope | bytes | str, tenant: str | None = None) -> httpx.Response:
        content = encode_envelope(body) if isinstance(body, Envelope) else body
        return self.http.post(self.path("/commands", tenant), content=content, headers=self.auth)

    def batch(self, items: list[Envelope | bytes], tenant: str | None = None) -> httpx.Response:
        parts = [encode_envelope(i) if isinstance(i, Envelope) else i for i in items]
        body = b'{"commands":[' + b",".join(parts) + b"]}"
        return self.http.post(self.path("/commands/batch", tenant), content=body, headers=self.auth)

    def get(self, rest: str, tenant: str | None = None, **params: Any) -> httpx.Response:
        return self.http.get(self.path(rest, tenant), params=params, headers=self.auth)

    def head(self) -> tuple[int, str]:
        answer = self.get("/head")
        assert answer.status_code == 200, answer.text
        return answer.json()["seq"], answer.json()["hash"]

    def snapshot(self) -> tuple[Any, ...]:
        """What a refused or foreign request must leave as it was."""
        return (
            self.head(),
            self.get("/customers", limit=1000).content,
            self.get("/accounts", limit=1000).content,
            self.get("/events", limit=1000).content,
        )

    def salary(self, cents: int = 100, account: int = 0, **kw: Any) -> Envelope:
        legs = [(self.accounts[account], "DEBIT", cents), ("GL_SALARY_CLEARING", "CREDIT", cents)]
        return self.cmd.post(legs, **kw)

    def spend(self, cents: int, account: int = 0, **kw: Any) -> Envelope:
        legs = [(self.accounts[account], "CREDIT", cents), ("GL_CARD_CLEARING", "DEBIT", cents)]
        return self.cmd.post(legs, **kw)


def set_up(http: httpx.Client, name: str, members: int = 3) -> Api:
    """Create a tenant over HTTP with a SAVER product and funded members."""
    tenant = f"{name}-{RUN}"
    code = f"{name.upper()}_{RUN.upper()}"
    api = Api(http, tenant, code, Commands(tenant), token_for(tenant))
    cmd = api.cmd
    for envelope in [cmd.create_tenant(code), cmd.product("SAVER")]:
        assert api.post(envelope).status_code == 202
    answer = api.batch([cmd.customer(n) for n in range(members)])
    assert [r["status"] for r in answer.json()["results"]] == [202] * members
    api.customers = [c["customerId"] for c in api.get("/customers").json()["customers"]]
    opened = api.batch([cmd.open_account(c, "SAVER", 10_000) for c in api.customers])
    assert [r["status"] for r in opened.json()["results"]] == [202] * members
    api.accounts = [a["accountId"] for a in api.get("/accounts").json()["accounts"]]
    return api


@pytest.fixture(scope="session")
def alpha(server: Server) -> Api:
    """Tenant alpha, with its own token."""
    return set_up(server.http, "alpha")


@pytest.fixture(scope="session")
def bravo(server: Server) -> Api:
    """Tenant bravo, with its own token."""
    return set_up(server.http, "bravo", members=2)


def with_amount(api: Api, text: str) -> bytes:
    """A PostEntry envelope of `api` whose first leg amount is spelled `text` on the wire."""
    raw = encode_envelope(api.salary(1)).decode()
    marker = '"amount":0.01'
    assert raw.count(marker) == 2
    return raw.replace(marker, f'"amount":{text}', 1).encode()


def mutated(api: Api, change: Callable[[dict[str, Any]], None]) -> bytes:
    """A PostEntry envelope of `api` changed as JSON (numbers kept exact)."""
    body = json.loads(encode_envelope(api.salary(1)), parse_float=Decimal)
    change(body)
    return _EXACT.encode(body)


# --------------------------------------------------------------------------- commands


def test_a_command_is_accepted_with_the_contracts_answer(alpha: Api) -> None:
    """202 CommandAccepted {commandId, status, correlationId, acceptedAt}; the chain grows."""
    seq, _ = alpha.head()
    envelope = alpha.salary(250)
    answer = alpha.post(envelope)
    assert answer.status_code == 202
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "commandId": envelope.command_id,
        "status": "ACCEPTED",
        "correlationId": envelope.command_id,
        "acceptedAt": envelope.timestamp,
    }
    assert alpha.head()[0] > seq


def test_a_business_rule_refusal_is_a_422_naming_the_invariant(alpha: Api) -> None:
    """A card spend beyond the balance is 422 InvariantViolation OVERDRAFT_LIMIT; nothing stored."""
    before = alpha.snapshot()
    envelope = alpha.spend(10**9)
    answer = alpha.post(envelope)
    assert answer.status_code == 422
    body = answer.json()
    assert set(body) == {"commandId", "error", "invariant", "details"}
    assert (body["commandId"], body["error"]) == (envelope.command_id, "INVARIANT_VIOLATION")
    assert body["invariant"] == "OVERDRAFT_LIMIT"
    assert body["details"]["message"]
    assert alpha.snapshot() == before


def test_an_idempotent_replay_returns_the_first_answer_and_writes_nothing(alpha: Api) -> None:
    """The same key again gives the same status and body, for an acceptance and a refusal."""
    key = f"pay-{uuid.uuid4().hex}"
    first = alpha.post(alpha.salary(300, key=key))
    assert first.status_code == 202
    after_first = alpha.snapshot()
    again = alpha.post(alpha.salary(999, key=key))  # another body, same key
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert alpha.snapshot() == after_first
    refused_key = f"spend-{uuid.uuid4().hex}"
    refused = alpha.post(alpha.spend(10**9, key=refused_key))
    assert refused.status_code == 422
    replayed = alpha.post(alpha.spend(1, key=refused_key))
    assert (replayed.status_code, replayed.content) == (422, refused.content)
    assert alpha.snapshot() == after_first


MALFORMED: dict[str, tuple[Callable[[Api], bytes], str]] = {
    "three decimals": (lambda a: with_amount(a, "0.001"), "payload.legs[0].amount"),
    "NaN": (lambda a: with_amount(a, "NaN"), "payload.legs[0].amount"),
    "Infinity": (lambda a: with_amount(a, "Infinity"), "payload.legs[0].amount"),
    "huge exponent": (lambda a: with_amount(a, "1e999"), "payload.legs[0].amount"),
    "negative": (lambda a: with_amount(a, "-5.00"), "payload.legs[0].amount"),
    "zero": (lambda a: with_amount(a, "0.00"), "payload.legs[0].amount"),
    "string amount": (lambda a: with_amount(a, '"12.30"'), "payload.legs[0].amount"),
    "boolean amount": (lambda a: with_amount(a, "true"), "payload.legs[0].amount"),
    "unknown payload field": (
        lambda a: mutated(a, lambda b: b["payload"].update(colour="red")),
        "payload",
    ),
    "unknown envelope field": (lambda a: mutated(a, lambda b: b.update(extra=1)), ""),
    "narrative a number": (
        lambda a: mutated(a, lambda b: b["payload"].update(narrative=5)),
        "payload.narrative",
    ),
    "legs not a list": (
        lambda a: mutated(a, lambda b: b["payload"].update(legs={"a": 1})),
        "payload.legs",
    ),
    "one leg": (
        lambda a: mutated(a, lambda b: b["payload"].update(legs=b["payload"]["legs"][:1])),
        "payload.legs",
    ),
    "direction unknown": (
        lambda a: mutated(a, lambda b: b["payload"]["legs"][1].update(direction="UP")),
        "payload.legs[1].direction",
    ),
    "bad date": (
        lambda a: mutated(a, lambda b: b["payload"].update(bookingDate="2025-02-30")),
        "payload.bookingDate",
    ),
    "timestamp without offset": (
        lambda a: mutated(a, lambda b: b.update(timestamp="2025-07-01T09:00:00")),
        "timestamp",
    ),
    "unknown command type": (
        lambda a: mutated(a, lambda b: b.update(commandType="CloseAccount")),
        "commandType",
    ),
    "actor type unknown": (
        lambda a: mutated(a, lambda b: b["actor"].update(actorType="ROBOT")),
        "actor.actorType",
    ),
    "commandId a number": (lambda a: mutated(a, lambda b: b.update(commandId=7)), "commandId"),
    "payload missing": (lambda a: mutated(a, lambda b: b.pop("payload")), "payload"),
    "not JSON": (lambda a: b"{not json", ""),
    "a JSON list": (lambda a: b"[1, 2]", ""),
    "empty body": (lambda a: b"", ""),
    "deep nesting": (lambda a: b"[" * 50_000, ""),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_envelopes_are_400_naming_the_field_and_store_nothing(
    alpha: Api, case: str
) -> None:
    """Wrong types, unknown fields, bad money (3 places, NaN, 1e999, negative, strings): 400."""
    make, field_name = MALFORMED[case]
    before = alpha.snapshot()
    answer = alpha.post(make(alpha))
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "BAD_REQUEST"
    assert body["details"]["field"] == field_name
    assert body["message"].startswith(f"{field_name}: " if field_name else "")
    assert alpha.snapshot() == before


def test_an_envelope_naming_another_tenant_is_400_and_changes_no_one(
    alpha: Api, bravo: Api
) -> None:
    """alpha's caller sending an envelope with bravo's tenantId: 400 on tenantId, no writes."""
    before = (alpha.snapshot(), bravo.snapshot())
    forged = alpha.cmd.post(
        [(bravo.accounts[0], "DEBIT", 500), ("GL_SALARY_CLEARING", "CREDIT", 500)],
        tenant_id=bravo.tenant,
    )
    answer = alpha.post(forged)
    assert answer.status_code == 400
    assert answer.json()["details"]["field"] == "tenantId"
    batch = alpha.batch([forged]).json()["results"]
    assert batch[0]["status"] == 400
    assert batch[0]["body"]["details"]["field"] == "tenantId"
    assert (alpha.snapshot(), bravo.snapshot()) == before


def test_bodies_above_the_limit_are_413_and_store_nothing(alpha: Api) -> None:
    """A declared or streamed (chunked) body above the limit is refused with 413."""
    before = alpha.snapshot()
    padded = mutated(alpha, lambda b: b["payload"].update(narrative="x" * (MAX_BODY + 10)))
    answer = alpha.post(padded)
    assert answer.status_code == 413
    assert answer.json()["error"] == "PAYLOAD_TOO_LARGE"

    def chunks() -> Iterator[bytes]:
        yield padded[: MAX_BODY // 2]
        yield padded[MAX_BODY // 2 :]

    streamed = alpha.http.post(alpha.path("/commands"), content=chunks(), headers=alpha.auth)
    assert streamed.status_code == 413
    big_batch = alpha.batch([encode_envelope(alpha.salary(1))] * (MAX_BATCH // 400))
    assert big_batch.status_code == 413
    assert alpha.snapshot() == before


def test_money_is_exact_from_the_request_to_the_balance_and_the_event(alpha: Api) -> None:
    """0.29 and 9999999999999.99 arrive as 29 and 999999999999999 cents (floats would not)."""
    assert int(0.29 * 100) == 28  # what a float on the way would have done
    account = alpha.accounts[2]
    before = Decimal(
        next(a for a in alpha.get("/accounts").json()["accounts"] if a["accountId"] == account)[
            "balance"
        ]
    )
    for text in ("0.29", "9999999999999.99"):
        raw = encode_envelope(alpha.salary(1, account=2)).decode()
        answer = alpha.post(raw.replace('"amount":0.01', f'"amount":{text}').encode())
        assert answer.status_code == 202, answer.text
    listing = alpha.get("/accounts", limit=1000)
    rows = json.loads(listing.content, parse_float=Decimal)["accounts"]
    balance = next(row["balance"] for row in rows if row["accountId"] == account)
    assert balance == before + Decimal("10000000000000.28")
    assert b'"balance":' + str(balance).encode() in listing.content
    events = alpha.get(f"/accounts/{account}/events", limit=1000).json()["events"]
    deltas = [e["payload"]["deltaCents"] for e in events if "deltaCents" in e["payload"]]
    assert deltas[-2:] == [29, 999_999_999_999_999]


# --------------------------------------------------------------------------- batches


def test_a_batch_keeps_order_and_gives_each_command_its_own_answer(alpha: Api) -> None:
    """Good, malformed, refused and good again: answers in order, seqs only for the accepted."""
    seq, _ = alpha.head()
    good = [alpha.salary(10 + n, key=f"b-{uuid.uuid4().hex}") for n in range(3)]
    refused = alpha.spend(10**9)
    bad = with_amount(alpha, "1.234")
    answer = alpha.batch([good[0], bad, good[1], refused, good[2]])
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [202, 400, 202, 422, 202]
    assert [r["body"].get("commandId") for r in results] == [
        good[0].command_id,
        None,
        good[1].command_id,
        refused.command_id,
        good[2].command_id,
    ]
    assert results[1]["body"]["details"]["field"] == "payload.legs[0].amount"
    assert results[3]["body"]["invariant"] == "OVERDRAFT_LIMIT"
    spans = [(r["firstSeq"], r["lastSeq"]) for r in results]
    assert spans[1] == spans[3] == (0, 0)
    accepted = [spans[0], spans[2], spans[4]]
    assert accepted[0][0] == seq + 1
    assert all(accepted[i][1] + 1 == accepted[i + 1][0] for i in range(2))
    assert alpha.head()[0] == accepted[-1][1]
    # the single endpoint answers a replay of a batch item's key with the same body
    again = alpha.post(good[1])
    assert (again.status_code, again.json()) == (202, results[2]["body"])


def test_a_replayed_batch_returns_the_first_answers_and_writes_nothing(alpha: Api) -> None:
    """Sending a keyed batch twice gives identical answers; the chain does not move."""
    batch = [alpha.salary(5, key=f"r-{uuid.uuid4().hex}") for _ in range(4)]
    first = alpha.batch(batch)
    after = alpha.snapshot()
    again = alpha.batch(batch)
    assert again.content == first.content
    assert alpha.snapshot() == after


def test_a_batch_with_nan_still_answers_each_command(alpha: Api) -> None:
    """NaN (not JSON to msgspec) goes through the exact fallback: that command's own 400."""
    good = alpha.salary(7)
    answer = alpha.batch([with_amount(alpha, "NaN"), good])
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [400, 202]
    assert results[0]["body"]["details"]["field"] == "payload.legs[0].amount"
    assert results[1]["body"]["commandId"] == good.command_id


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        (b"not json", ""),
        (b"[]", ""),
        (b'{"commands": []}', "commands"),
        (b'{"commands": {}}', "commands"),
        (b'{"commands": "x"}', "commands"),
        (b'{"cmds": [{}]}', "cmds"),
        (b'{"commands": [{}], "extra": 1}', "extra"),
        (b'{"commands": [' + b",".join([b"{}"] * 5001) + b"]}", "commands"),
    ],
    ids=["not-json", "list", "empty", "object", "string", "misnamed", "extra", "5001"],
)
def test_batch_bodies_that_are_not_a_list_of_commands_are_400(
    alpha: Api, body: bytes, field_name: str
) -> None:
    """Only {"commands": [1..5000 envelopes]} is a batch; anything else is one 400."""
    before = alpha.snapshot()
    answer = alpha.http.post(alpha.path("/commands/batch"), content=body, headers=alpha.auth)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "BAD_REQUEST"
    assert answer.json()["details"]["field"] == field_name
    assert alpha.snapshot() == before


# --------------------------------------------------------------------------- reads


def test_customers_page_with_limit_and_offset(alpha: Api) -> None:
    """customers?limit&offset pages the listing and reports total, limit and offset."""
    everyone = alpha.get("/customers", limit=1000).json()
    assert everyone["total"] == len(everyone["customers"]) == len(alpha.customers)
    page = alpha.get("/customers", limit=1, offset=1).json()
    assert page["customers"] == everyone["customers"][1:2]
    assert (page["total"], page["limit"], page["offset"]) == (everyone["total"], 1, 1)
    row = page["customers"][0]
    assert set(row) == {
        "customerId",
        "externalRef",
        "fullName",
        "email",
        "segment",
        "kycStatus",
        "createdAt",
    }
    assert alpha.get("/customers").json()["limit"] == 50


def test_accounts_filter_by_customer_and_show_exact_balances(alpha: Api) -> None:
    """accounts?customerId gives that customer's accounts; balances are two-place numbers."""
    answer = alpha.get("/accounts", customerId=alpha.customers[1])
    rows = answer.json()["accounts"]
    assert [row["accountId"] for row in rows] == [alpha.accounts[1]]
    assert rows[0]["customerId"] == alpha.customers[1]
    assert set(rows[0]) == {
        "accountId",
        "customerId",
        "productCode",
        "accountAlias",
        "balance",
        "currency",
        "status",
        "openedAt",
    }
    assert b'"balance":' in answer.content
    assert not any(
        row["accountId"].startswith("GL_") for row in alpha.get("/accounts").json()["accounts"]
    )


def test_account_events_are_the_stored_event_bytes(alpha: Api) -> None:
    """An account's events are EventEnvelopes with seq, prevHash and hash, in seq order."""
    answer = alpha.get(f"/accounts/{alpha.accounts[0]}/events", limit=3)
    events = answer.json()["events"]
    assert 1 <= len(events) <= 3
    assert {e["entityId"] for e in events} == {alpha.accounts[0]}
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    chain = alpha.get("/events", limit=1000).json()["events"]
    by_seq = {e["seq"]: e for e in chain}
    for event in events:
        assert event == by_seq[event["seq"]]
        assert set(event) >= {"eventId", "eventType", "tenantId", "payload", "prevHash", "hash"}


def test_tenant_events_follow_the_chain_to_the_head(alpha: Api) -> None:
    """events?afterSeq pages the whole chain; it verifies from genesis and ends at the head."""
    seq, head = alpha.head()
    collected: list[bytes] = []
    after = 0
    while True:
        answer = alpha.get("/events", afterSeq=after, limit=7)
        page = json.loads(answer.content)
        assert page["head"]["seq"] >= after
        if not page["events"]:
            break
        collected.extend(msgspec.json.encode(e) for e in page["events"])
        after = page["events"][-1]["seq"]
    assert len(collected) >= seq
    assert list(verify_chain(alpha.tenant, collected)) == []
    assert json.loads(collected[seq - 1])["hash"] == head


def test_event_json_is_returned_byte_for_byte_as_stored(server: Server, alpha: Api) -> None:
    """The API's event bytes are the store's EventEnvelope JSON, not a re-serialisation."""
    stored = server.ledger.tenant_events(alpha.tenant, 0, 5)
    answer = alpha.get("/events", afterSeq=0, limit=5)
    assert answer.content.startswith(b'{"events":[' + b",".join(stored) + b"]")


@pytest.mark.parametrize(
    ("rest", "params", "parameter"),
    [
        ("/customers", {"limit": 0}, "limit"),
        ("/customers", {"limit": 1001}, "limit"),
        ("/customers", {"limit": "ten"}, "limit"),
        ("/customers", {"offset": -1}, "offset"),
        ("/accounts", {"limit": "1.5"}, "limit"),
        ("/accounts", {"customerId": ""}, "customerId"),
        ("/events", {"afterSeq": -1}, "afterSeq"),
        ("/events", {"afterSeq": "x"}, "afterSeq"),
        ("/events", {"limit": 5000}, "limit"),
        ("/accounts/GL_CARD_CLEARING/events", {"limit": 0}, "limit"),
    ],
)
def test_bad_query_values_are_400_naming_the_parameter(
    alpha: Api, rest: str, params: dict[str, Any], parameter: str
) -> None:
    """Out-of-range or mistyped query values: 400 whose details name the parameter."""
    answer = alpha.get(rest, **params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "BAD_REQUEST"
    assert answer.json()["details"]["parameter"] == parameter


# --------------------------------------------------------------------------- isolation


def foreign_requests(alpha: Api, bravo: Api) -> dict[str, Callable[[], httpx.Response]]:
    """Every endpoint, called with alpha's token on bravo's path and with bravo's ids."""
    bravo_entry = bravo.salary(100)  # bravo's own envelope: right tenantId, bravo's account
    return {
        "POST commands": lambda: alpha.post(bravo_entry, tenant=bravo.tenant),
        "POST batch": lambda: alpha.batch([bravo_entry], tenant=bravo.tenant),
        "GET customers": lambda: alpha.get("/customers", tenant=bravo.tenant),
        "GET accounts": lambda: alpha.get("/accounts", tenant=bravo.tenant),
        "GET accounts of a customer": lambda: alpha.get(
            "/accounts", tenant=bravo.tenant, customerId=bravo.customers[0]
        ),
        "GET account events": lambda: alpha.get(
            f"/accounts/{bravo.accounts[0]}/events", tenant=bravo.tenant
        ),
        "GET events": lambda: alpha.get("/events", tenant=bravo.tenant),
        "GET head": lambda: alpha.get("/head", tenant=bravo.tenant),
        "GET with a bad query": lambda: alpha.get("/customers", tenant=bravo.tenant, limit=0),
        "POST malformed": lambda: alpha.post(b"{", tenant=bravo.tenant),
    }


ENDPOINTS = [
    "POST commands",
    "POST batch",
    "POST malformed",
    "GET customers",
    "GET accounts",
    "GET accounts of a customer",
    "GET account events",
    "GET events",
    "GET head",
    "GET with a bad query",
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_another_tenants_path_is_404_with_no_side_effect(
    alpha: Api, bravo: Api, endpoint: str
) -> None:
    """alpha's valid token on bravo's path: 404 whatever is asked; no one's state changes."""
    before = (alpha.snapshot(), bravo.snapshot())
    requests = foreign_requests(alpha, bravo)
    assert sorted(requests) == sorted(ENDPOINTS)
    answer = requests[endpoint]()
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] == "NOT_FOUND"
    assert bravo.tenant.encode() not in answer.content.replace(
        f"/v1/tenants/{bravo.tenant}".encode(), b""
    )
    assert (alpha.snapshot(), bravo.snapshot()) == before


def test_a_foreign_tenant_is_indistinguishable_from_a_missing_one(
    server: Server, alpha: Api, bravo: Api
) -> None:
    """bravo (exists) and ghost (does not) give alpha the same 404; ghost's own token too."""
    ghost = f"ghost-{RUN}"
    for rest in ("/customers", "/accounts", "/head", "/events"):
        seen = alpha.get(rest, tenant=bravo.tenant)
        missing = alpha.get(rest, tenant=ghost)
        assert seen.status_code == missing.status_code == 404
        assert {k: v for k, v in seen.json().items() if k != "details"} == {
            k: v for k, v in missing.json().items() if k != "details"
        }
    own_ghost = server.http.get(
        f"/v1/tenants/{ghost}/customers", headers={"Authorization": f"Bearer {token_for(ghost)}"}
    )
    assert own_ghost.status_code == 404
    assert (
        own_ghost.json()["message"]
        == alpha.get("/customers", tenant=bravo.tenant).json()["message"]
    )


def test_another_tenants_ids_under_ones_own_path_are_404(alpha: Api, bravo: Api) -> None:
    """bravo's customer or account id asked for on alpha's own path: 404, like a missing id."""
    before = bravo.snapshot()
    foreign_customer = alpha.get("/accounts", customerId=bravo.customers[0])
    foreign_account = alpha.get(f"/accounts/{bravo.accounts[0]}/events")
    missing = alpha.get("/accounts/no-such-account/events")
    assert foreign_customer.status_code == foreign_account.status_code == missing.status_code
    assert missing.status_code == 404
    assert foreign_account.json()["message"] == missing.json()["message"]
    assert bravo.snapshot() == before


def test_commands_naming_another_tenants_ids_are_refused_and_change_nothing(
    alpha: Api, bravo: Api
) -> None:
    """alpha posting to bravo's account or opening one for bravo's customer: 422 not found."""
    before = (alpha.snapshot(), bravo.snapshot())
    posted = alpha.post(
        alpha.cmd.post([(bravo.accounts[0], "DEBIT", 100), ("GL_SALARY_CLEARING", "CREDIT", 100)])
    )
    assert (posted.status_code, posted.json()["invariant"]) == (422, "ACCOUNT_NOT_FOUND")
    opened = alpha.post(alpha.cmd.open_account(bravo.customers[0], "SAVER", 100))
    assert (opened.status_code, opened.json()["invariant"]) == (422, "CUSTOMER_NOT_FOUND")
    assert (alpha.snapshot(), bravo.snapshot()) == before


# --------------------------------------------------------------------------- authentication

BAD_TOKENS: dict[str, Callable[[str], str | None]] = {
    "none": lambda tenant: None,
    "garbage": lambda tenant: "Bearer garbage",
    "not bearer": lambda tenant: f"Basic {token_for(tenant)}",
    "alg none": lambda tenant: f"Bearer {unsigned_token(claims_for(tenant))}",
    "wrong secret": lambda tenant: (
        "Bearer " + jwt.encode(claims_for(tenant), b"another-secret-" * 3, algorithm="HS256")
    ),
    "wrong iss": lambda tenant: f"Bearer {token_for(tenant, iss='intruder')}",
    "wrong aud": lambda tenant: f"Bearer {token_for(tenant, aud='elsewhere')}",
    "expired": lambda tenant: f"Bearer {token_for(tenant, exp=int(time.time()) - 5)}",
    "no exp": lambda tenant: f"Bearer {token_for(tenant, exp=None)}",
    "no tenantId": lambda tenant: f"Bearer {token_for(tenant, tenantId=None)}",
    "tenantId not a string": lambda tenant: f"Bearer {token_for(tenant, tenantId=42)}",
    "HS512": lambda tenant: f"Bearer {hmac_token(claims_for(tenant), SECRET, 'HS512')}",
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_requests_without_a_valid_token_are_401_with_a_challenge(alpha: Api, case: str) -> None:
    """Every bad token on a valid command: 401, WWW-Authenticate, nothing stored."""
    before = alpha.snapshot()
    header = BAD_TOKENS[case](alpha.tenant)
    headers = {} if header is None else {"Authorization": header}
    answer = alpha.http.post(
        alpha.path("/commands"), content=encode_envelope(alpha.salary(1)), headers=headers
    )
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"].startswith('Bearer realm="turingcore"')
    assert answer.json()["error"] == "UNAUTHENTICATED"
    for rest in ("/customers", "/head", "/events"):
        read = alpha.http.get(alpha.path(rest), headers=headers)
        assert read.status_code == 401
    assert alpha.snapshot() == before


def test_an_rs256_server_refuses_the_hs256_confusion_attack() -> None:
    """With RS256 pinned, an HS256 token keyed with the public PEM is 401; RS256 works."""
    private_pem, public_pem = rsa_key_pair()
    ledger = MemoryLedger()
    app = create_app(ledger, AuthConfig(public_pem, ISSUER, AUDIENCE, algorithm="RS256"))
    with running(app) as url, httpx.Client(base_url=url) as http:
        good = issue_token("rs", private_pem, issuer=ISSUER, audience=AUDIENCE, algorithm="RS256")
        assert (
            http.get("/v1/tenants/rs/head", headers={"Authorization": f"Bearer {good}"}).json()[
                "seq"
            ]
            == 0
        )
        for forged in (
            hmac_token(claims_for("rs"), public_pem),
            unsigned_token(claims_for("rs")),
            token_for("rs"),
        ):
            answer = http.post(
                "/v1/tenants/rs/commands",
                content=encode_envelope(Commands("rs").create_tenant("RS")),
                headers={"Authorization": f"Bearer {forged}"},
            )
            assert answer.status_code == 401
            assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    assert ledger.head("rs") == (0, GENESIS_HASH)


# --------------------------------------------------------------------------- operations


def test_health_and_readiness(server: Server) -> None:
    """/healthz answers while the process lives; /readyz when the ledger is reachable."""
    assert server.http.get("/healthz").json() == {"status": "ok"}
    ready = server.http.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")


class _BrokenLedger(MemoryLedger):
    """A store whose readiness probe fails (the database is down)."""

    def __init__(self, answer: bool | None) -> None:
        super().__init__()
        self.answer = answer

    def ready(self) -> bool:
        if self.answer is None:
            raise ConnectionError("connection refused")
        return self.answer


@pytest.mark.parametrize("answer", [False, None], ids=["not-ready", "raises"])
def test_readiness_fails_when_the_ledger_is_not_reachable(answer: bool | None) -> None:
    """ready() False or raising: /readyz is 503 with the reason; /healthz stays 200."""
    app = create_app(_BrokenLedger(answer), AuthConfig(SECRET, ISSUER, AUDIENCE))
    with running(app) as url, httpx.Client(base_url=url) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        if answer is None:
            assert "connection refused" in ready.json()["message"]
        assert client.get("/healthz").status_code == 200


class _FailingLedger(MemoryLedger):
    """A store that fails every write (a bug, or the database gone mid-request)."""

    def submit(self, tenant_id: str, commands: Any) -> Any:
        raise RuntimeError("disk on fire")


def test_a_failing_ledger_is_a_json_500_and_counted() -> None:
    """An exception inside the ledger: a JSON 500 without internals, counted under its route."""
    app = create_app(_FailingLedger(), AuthConfig(SECRET, ISSUER, AUDIENCE))
    with running(app) as url, httpx.Client(base_url=url) as client:
        answer = client.post(
            "/v1/tenants/f/commands",
            content=encode_envelope(Commands("f").create_tenant("F")),
            headers={"Authorization": f"Bearer {token_for('f')}"},
        )
        assert answer.status_code == 500
        assert answer.json()["error"] == "INTERNAL"
        assert "disk on fire" not in answer.text
        metrics = client.get("/metrics").text
    assert (
        'turingcore_http_requests_total{method="POST",route="/v1/tenants/{tenantId}/commands",'
        'status="500"} 1.0' in metrics
    )


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    text = server.http.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_rejections_commands_and_events(server: Server, alpha: Api) -> None:
    """One accepted, one 422 and one 400 move exactly the counters they should."""
    tenant = alpha.tenant
    route = "/v1/tenants/{tenantId}/commands"
    before = scrape(server)
    assert alpha.post(alpha.salary(1)).status_code == 202
    assert alpha.post(alpha.spend(10**9)).status_code == 422
    assert alpha.post(with_amount(alpha, "0.001")).status_code == 400
    assert alpha.get("/head", tenant="someone-else").status_code == 404
    after = scrape(server)

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    requests = "turingcore_http_requests_total"
    for status in ("202", "422", "400"):
        assert moved(requests, route=route, method="POST", status=status) == 1
    assert moved("turingcore_http_request_duration_seconds_count", route=route, method="POST") == 3
    assert moved("turingcore_commands_total", tenant=tenant, outcome="accepted") == 1
    assert moved("turingcore_commands_total", tenant=tenant, outcome="rejected") == 1
    assert moved("turingcore_commands_total", tenant=tenant, outcome="bad_request") == 1
    assert moved("turingcore_rejections_total", tenant=tenant, rule="OVERDRAFT_LIMIT") == 1
    assert moved("turingcore_rejections_total", tenant=tenant, rule="BAD_REQUEST") == 1
    assert moved("turingcore_refused_callers_total", reason="other_tenant") == 1
    assert after[("turingcore_tenant_events", (("tenant", tenant),))] == alpha.head()[0]
    labels = {value for (_name, pairs) in after for _key, value in pairs}
    assert "someone-else" not in labels  # a path tenant never becomes a label


def test_each_app_has_its_own_metrics_registry() -> None:
    """Two apps in one process keep separate registries (no duplicate-metric clash)."""
    first = create_app(MemoryLedger(), AuthConfig(SECRET, ISSUER, AUDIENCE))
    second = create_app(MemoryLedger(), AuthConfig(SECRET, ISSUER, AUDIENCE))
    assert first.state.registry is not second.state.registry
    with running(first) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
    with running(second) as url:
        text = httpx.get(f"{url}/metrics").text
    assert 'route="/healthz"' not in text


def test_openapi_documents_the_contract_bodies(server: Server) -> None:
    """/openapi.json names every route, the envelope body (payload one of five) and answers."""
    document = server.http.get("/openapi.json").json()
    paths = document["paths"]
    for path in (
        "/v1/tenants/{tenantId}/commands",
        "/v1/tenants/{tenantId}/commands/batch",
        "/v1/tenants/{tenantId}/customers",
        "/v1/tenants/{tenantId}/accounts",
        "/v1/tenants/{tenantId}/accounts/{accountId}/events",
        "/v1/tenants/{tenantId}/events",
        "/v1/tenants/{tenantId}/head",
    ):
        assert path in paths, path
    command = paths["/v1/tenants/{tenantId}/commands"]["post"]
    body = command["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Envelope"}
    assert set(command["responses"]) >= {"202", "400", "401", "404", "413", "422"}
    for operations in (paths[p] for p in paths if p.startswith("/v1/tenants/{tenantId}")):
        for operation in operations.values():
            names = {(p["name"], p["in"]) for p in operation["parameters"]}
            assert ("tenantId", "path") in names
            assert operation["security"] == [{"HTTPBearer": []}]
    schemas = document["components"]["schemas"]
    payload = schemas["Envelope"]["properties"]["payload"]["oneOf"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in payload} == {
        "CreateTenant",
        "UpsertProduct",
        "CreateCustomer",
        "OpenAccount",
        "PostEntry",
    }
    assert schemas["Leg"]["properties"]["amount"]["type"] == "number"
    assert "amount" in schemas["Leg"]["required"]
    assert "HTTPValidationError" not in json.dumps(document)
    assert "422" not in paths["/v1/tenants/{tenantId}/customers"]["get"]["responses"]
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_unknown_routes_are_the_same_404(server: Server, alpha: Api) -> None:
    """A path that exists nowhere gives the API's one 404 body (nothing to tell apart)."""
    answer = server.http.get("/v1/nothing-here", headers=alpha.auth)
    assert answer.status_code == 404
    assert answer.json()["message"] == alpha.get("/head", tenant="x").json()["message"]


# --------------------------------------------------------------------------- turingcore serve

runner = CliRunner()


def test_serve_without_a_secret_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """No --jwt-secret-file and no TURINGCORE_JWT_SECRET: exit 2 before anything listens."""
    monkeypatch.delenv(SECRET_ENV, raising=False)
    result = runner.invoke(cli_app, ["serve", "--store", "memory", "--port", "1"])
    assert result.exit_code == 2
    assert SECRET_ENV in result.stderr
    assert "--jwt-secret-file" in result.stderr


@pytest.mark.parametrize(
    ("setting", "mentions"),
    [
        ("short secret", "at least 32"),
        ("missing secret file", "cannot read"),
        ("unknown store", "--store"),
        ("public key not PEM", "not a PEM"),
    ],
)
def test_serve_refuses_unusable_settings_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, mentions: str
) -> None:
    """Each unusable setting is named in the message and the exit code is 2."""
    monkeypatch.delenv(SECRET_ENV, raising=False)
    good, short, junk = tmp_path / "good", tmp_path / "short", tmp_path / "junk.pem"
    good.write_bytes(SECRET)
    short.write_bytes(b"tiny")
    junk.write_text("nope")
    args = {
        "short secret": ["--jwt-secret-file", str(short)],
        "missing secret file": ["--jwt-secret-file", str(tmp_path / "absent")],
        "unknown store": ["--jwt-secret-file", str(good), "--store", "sqlite:///x.db"],
        "public key not PEM": ["--jwt-public-key-file", str(junk)],
    }[setting]
    result = runner.invoke(cli_app, ["serve", *args, "--port", "1"])
    assert result.exit_code == 2, result.output
    assert mentions in result.stderr


def test_open_store_names_the_store_or_refuses() -> None:
    """`memory` is a MemoryLedger; anything not memory or postgresql:// is a StoreError."""
    store = open_store("memory")
    assert isinstance(store, MemoryLedger)
    store.close()
    for spec in ("", "mysql://db", "Memory"):
        with pytest.raises(StoreError, match="--store"):
            open_store(spec)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_serve_runs_the_service_until_stopped(tmp_path: Path) -> None:
    """`turingcore serve` listens, takes a token from `turingcore token`, stops on SIGTERM."""
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    port = free_port()
    exe = Path(sys.executable).with_name("turingcore")
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    process = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--jwt-secret-file", str(secret)]
        + ["--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "turingcore serve did not come up"
            time.sleep(0.05)
        minted = subprocess.run(
            [str(exe), "token", "--tenant", "cli-t", "--secret-file", str(secret)]
            + ["--issuer", ISSUER, "--audience", AUDIENCE],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout.strip()
        answer = httpx.post(
            f"{url}/v1/tenants/cli-t/commands",
            content=encode_envelope(Commands("cli-t").create_tenant("CLI_T")),
            headers={"Authorization": f"Bearer {minted}"},
        )
        assert answer.status_code == 202, answer.text
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=15)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status reports it
    assert process.returncode in (0, -15)
    assert b"Finished server process" in err
