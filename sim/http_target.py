"""The twin over the wire: a `Target` that speaks TuringCore's HTTP API.

`HttpTarget` sends each tenant's batch to `POST /v1/tenants/{t}/commands/batch`
(per-command answers, order kept), then follows the tenant's chain until it
holds every event the batch wrote, and hands those events to subscribers
exactly as the embedded platform does: so the twin's shadow book, id tap and
streaming invariants run unchanged on a real platform.

Where the events come from is a seam (`EventFeed`): the service's additive
`GET /v1/tenants/{t}/events?afterSeq=` (the default), or the tenant topics on
Kafka (`sim.kafka_feed.KafkaEventFeed`), in which case the five invariants
run on what the broker delivered. Either way nothing from the feed is
trusted: each event's canonical bytes are re-derived from its JSON and its
hash re-checked by the invariant suite.

Concurrency: `submit_many` (the twin's hourly payments, one batch per tenant)
sends up to `concurrency` tenants' batches at once from a thread pool, each
tenant's commands in order; events are then fetched and delivered on the
caller's thread in tenant order, so a concurrent run equals a sequential one.

Reliability: one pooled `httpx.Client`, timeouts on every call, and retries
with backoff on transport errors, 429 and 5xx. A retried batch is re-sent
with the same idempotency keys, so a command the platform already applied
answers with its first result and writes nothing: retries never duplicate.
Commands without an idempotency key are never retried after the request may
have reached the server.

Tokens: one bearer JWT per tenant (the service checks that the token's
`tenantId` claim is the path's tenant). `TokenBook` reads the claim from each
token (without verifying it: that is the server's job) to know which is whose.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import httpx
import jwt
import msgspec

from turingcore.contract import CommandResult, Envelope, encode_envelope
from turingcore.eventlog import EventLogWriter
from turingcore.events import (
    BalanceUpdatedPayload,
    EntryPostedPayload,
    Event,
    SealedEvent,
    canonical_from_json,
)
from turingcore.monitor import (
    FRAUD_ALERT_RAISED,
    THRESHOLD_TRANSACTION_REPORTED,
    FraudAlertPayload,
    ThresholdReportPayload,
)

Listener = Callable[[str, list[SealedEvent]], None]

#: The batch endpoint's limit on commands per request.
MAX_BATCH = 5000
#: Payload Structs of the hot-path event types (the rest stay plain dicts,
#: as the embedded platform makes them).
PAYLOAD_TYPES: dict[str, type[Any]] = {
    "EntryPosted": EntryPostedPayload,
    "AccountBalanceUpdated": BalanceUpdatedPayload,
    FRAUD_ALERT_RAISED: FraudAlertPayload,
    THRESHOLD_TRANSACTION_REPORTED: ThresholdReportPayload,
}
_RETRY_STATUS = frozenset({429, 502, 503, 504})


class TargetError(RuntimeError):
    """The platform could not be reached or answered in a way the contract does not allow."""


class TokenBook:
    """Bearer tokens by tenant, read from each token's `tenantId` claim."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self.by_tenant: dict[str, str] = {}
        for token in tokens:
            try:
                claims = jwt.decode(token, options={"verify_signature": False})
            except jwt.PyJWTError as exc:
                raise ValueError(f"not a JWT ({exc})") from None
            tenant = claims.get("tenantId")
            if not isinstance(tenant, str) or not tenant:
                raise ValueError("token has no tenantId claim")
            self.by_tenant[tenant] = token

    @classmethod
    def from_options(cls, values: Sequence[str]) -> TokenBook:
        """Tokens from CLI values: a JWT, or `@FILE` (a JSON object tenant -> token, or a list).

        Raises:
            ValueError: naming the value or file that is not usable.
        """
        tokens: list[str] = []
        for value in values:
            if value.startswith("@"):
                path = Path(value[1:])
                try:
                    data = json.loads(path.read_text())
                except (OSError, ValueError) as exc:
                    raise ValueError(f"{path}: cannot read a token file ({exc})") from None
                items = data.values() if isinstance(data, dict) else data
                if not isinstance(items, Iterable) or not all(isinstance(t, str) for t in items):
                    raise ValueError(f"{path}: expected a JSON object tenant -> token")
                tokens.extend(items)
            else:
                tokens.append(value)
        return cls(tokens)

    def header(self, tenant_id: str) -> dict[str, str]:
        token = self.by_tenant.get(tenant_id)
        if token is None:
            raise TargetError(f"no token for tenant {tenant_id} (give one with --token)")
        return {"Authorization": f"Bearer {token}"}


class EventFeed(Protocol):
    """Where the twin reads a tenant's sealed events from."""

    def follow(self, tenant_id: str, after_seq: int, through_seq: int) -> list[bytes]:
        """EventEnvelope JSON of events after_seq+1 .. through_seq, in order (waits for them)."""
        ...

    def close(self) -> None: ...


class _EventsPage(msgspec.Struct):
    """`{events: [...]}` with each event kept as its raw JSON bytes."""

    events: list[msgspec.Raw]


_EVENTS_PAGE = msgspec.json.Decoder(_EventsPage)


class HttpEventFeed:
    """Follows a tenant's chain through `GET /v1/tenants/{t}/events?afterSeq=`."""

    def __init__(self, target: HttpTarget, page: int = 1000) -> None:
        # 1000: the largest page the service gives (`limit` 1..1000, as for every listing)
        self.target = target
        self.page = page

    def follow(self, tenant_id: str, after_seq: int, through_seq: int) -> list[bytes]:
        out: list[bytes] = []
        seq = after_seq
        while seq < through_seq:
            limit = min(self.page, through_seq - seq)
            answer = self.target.request(
                "GET",
                tenant_id,
                "/events",
                params={"afterSeq": seq, "limit": limit},
            )
            if answer.status_code != 200:
                raise TargetError(f"tenant {tenant_id}: event feed HTTP {answer.status_code}")
            try:
                events = _EVENTS_PAGE.decode(answer.content).events
            except msgspec.DecodeError as exc:
                raise TargetError(f"tenant {tenant_id}: event feed answer: {exc}") from None
            if not events:
                raise TargetError(
                    f"tenant {tenant_id}: the platform acknowledged events up to seq "
                    f"{through_seq} but its event feed ends at {seq}"
                )
            out.extend(bytes(raw) for raw in events)
            seq += len(events)
        return out

    def close(self) -> None:
        return None


class HttpTarget:
    """A TuringCore reached over HTTP, as a `Target` for the twin."""

    name = "http"

    def __init__(
        self,
        base_url: str,
        tokens: TokenBook,
        event_log: Path | None = None,
        feed: Callable[[HttpTarget], EventFeed] | None = None,
        *,
        timeout_s: float = 60.0,
        retries: int = 6,
        max_connections: int = 8,
        concurrency: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not 1 <= concurrency <= max_connections:
            raise ValueError(
                f"concurrency must be between 1 and max_connections ({max_connections}), "
                f"not {concurrency}"
            )
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.retries = retries
        #: tenants' batches in flight at once (`submit_many`); one per tenant at a time
        self.concurrency = concurrency
        self._pool = (
            ThreadPoolExecutor(concurrency, thread_name_prefix="twin-http")
            if concurrency > 1
            else None
        )
        self._count_lock = threading.Lock()
        self.client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
        )
        self.log = EventLogWriter(event_log) if event_log is not None else None
        self.listeners: list[Listener] = []
        #: tenant -> seq of the last event handed to listeners
        self.seen: dict[str, int] = {}
        self.feed = (feed or HttpEventFeed)(self)
        self.requests = 0
        self.retried = 0

    # ------------------------------------------------------------------ wire

    def request(
        self,
        method: str,
        tenant_id: str,
        path: str,
        *,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        retry_after_send: bool = True,
    ) -> httpx.Response:
        """One call under `/v1/tenants/{tenant}`, retried on transport errors, 429 and 5xx."""
        url = f"/v1/tenants/{tenant_id}{path}"
        headers = self.tokens.header(tenant_id)
        if content is not None:
            headers["Content-Type"] = "application/json"
        delay = 0.05
        for attempt in range(self.retries + 1):
            with self._count_lock:
                self.requests += 1
            try:
                answer = self.client.request(
                    method, url, content=content, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                sent = not isinstance(exc, httpx.ConnectError)
                if attempt == self.retries or (sent and not retry_after_send):
                    raise TargetError(f"{method} {self.base_url}{url}: {exc!r}") from None
            else:
                if answer.status_code not in _RETRY_STATUS or attempt == self.retries:
                    if answer.status_code >= 500 or answer.status_code in (401, 403):
                        raise TargetError(
                            f"{method} {self.base_url}{url}: HTTP {answer.status_code}: "
                            f"{answer.text[:300]}"
                        )
                    return answer
            with self._count_lock:
                self.retried += 1
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ Target

    def submit(self, tenant_id: str, commands: Sequence[Envelope]) -> list[CommandResult]:
        """Send the batch (in chunks of at most MAX_BATCH), then deliver its events."""
        results = self._send(tenant_id, commands)
        self._deliver(tenant_id, commands, results)
        return results

    def submit_many(
        self, batches: Sequence[tuple[str, Sequence[Envelope]]]
    ) -> list[list[CommandResult]]:
        """Several tenants' batches, up to `concurrency` in flight at once.

        Each tenant's batch is one task (its chunks in order), so per-tenant
        order is kept; events are fetched and delivered afterwards on the
        caller's thread, tenant by tenant in the order given, so listeners see
        exactly what a sequential run shows them.
        """
        if self._pool is None or len(batches) < 2:
            answers = [self._send(tenant, commands) for tenant, commands in batches]
        else:
            futures = [self._pool.submit(self._send, tenant, cmds) for tenant, cmds in batches]
            answers = [future.result() for future in futures]
        for (tenant_id, commands), results in zip(batches, answers, strict=True):
            self._deliver(tenant_id, commands, results)
        return answers

    def _send(self, tenant_id: str, commands: Sequence[Envelope]) -> list[CommandResult]:
        """POST the batch in chunks, in order; the answers (events not yet fetched)."""
        results: list[CommandResult] = []
        keyed = all(envelope.idempotency_key is not None for envelope in commands)
        for start in range(0, len(commands), MAX_BATCH):
            chunk = commands[start : start + MAX_BATCH]
            body = b'{"commands":[' + b",".join(encode_envelope(e) for e in chunk) + b"]}"
            answer = self.request(
                "POST", tenant_id, "/commands/batch", content=body, retry_after_send=keyed
            )
            if answer.status_code != 200:
                raise TargetError(
                    f"tenant {tenant_id}: batch refused with HTTP {answer.status_code}: "
                    f"{answer.text[:300]}"
                )
            items = _decode_json(answer)["results"]
            if len(items) != len(chunk):
                raise TargetError(
                    f"tenant {tenant_id}: {len(items)} answers to {len(chunk)} commands"
                )
            results.extend(
                _result(envelope, item) for envelope, item in zip(chunk, items, strict=True)
            )
        return results

    def _deliver(
        self, tenant_id: str, commands: Sequence[Envelope], results: Sequence[CommandResult]
    ) -> None:
        """Fetch the events the batch wrote, log them, and hand them to subscribers."""
        if self.log is not None:
            for envelope, result in zip(commands, results, strict=True):
                if not result.accepted:
                    self.log.rejected(tenant_id, envelope, result)
        seen = self.seen.get(tenant_id, 0)
        through = max((r.last_seq for r in results if r.accepted), default=0)
        if through <= seen:
            return
        messages = self.feed.follow(tenant_id, seen, through)
        sealed = [sealed_from_json(message) for message in messages]
        self.seen[tenant_id] = through
        if self.log is not None:
            self.log.append(tenant_id, sealed)
        for listener in self.listeners:
            listener(tenant_id, sealed)

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def customers(self, tenant_id: str, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        answer = self.request(
            "GET", tenant_id, "/customers", params={"limit": limit, "offset": offset}
        )
        return _page(answer, tenant_id)

    def accounts(
        self, tenant_id: str, customer_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if customer_id is not None:
            params["customerId"] = customer_id
        return _page(self.request("GET", tenant_id, "/accounts", params=params), tenant_id)

    def head(self, tenant_id: str) -> tuple[int, str]:
        answer = self.request("GET", tenant_id, "/head")
        if answer.status_code == 404:
            raise KeyError(tenant_id)
        body = _decode_json(answer)
        return int(body["seq"]), str(body["hash"])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.feed.close()
        self.client.close()
        if self.log is not None:
            self.log.close()


# --------------------------------------------------------------------------- decoding


def _decode_json(answer: httpx.Response) -> Any:
    """A JSON answer with exact decimals (money never goes through a float)."""
    try:
        return json.loads(answer.content, parse_float=Decimal)
    except ValueError:
        raise TargetError(
            f"{answer.request.method} {answer.request.url}: HTTP {answer.status_code} "
            f"is not JSON: {answer.text[:200]}"
        ) from None


def _page(answer: httpx.Response, tenant_id: str) -> dict[str, Any]:
    if answer.status_code == 404:
        raise LookupError(f"tenant {tenant_id} is not visible to this token")
    if answer.status_code != 200:
        raise TargetError(f"HTTP {answer.status_code}: {answer.text[:300]}")
    return _decode_json(answer)


def _result(envelope: Envelope, item: dict[str, Any]) -> CommandResult:
    """A batch item (`{status, body, firstSeq, lastSeq}`) as the embedded CommandResult."""
    status, body = item.get("status"), item.get("body") or {}
    if status == 202:
        return CommandResult(
            body["commandId"],
            "ACCEPTED",
            body["correlationId"],
            body["acceptedAt"],
            first_seq=int(item["firstSeq"]),
            last_seq=int(item["lastSeq"]),
        )
    if status == 422:
        details = body.get("details") or {}
        return CommandResult(
            body.get("commandId", envelope.command_id),
            "REJECTED",
            envelope.command_id,
            envelope.timestamp,
            rule=body.get("invariant"),
            error="INVARIANT_VIOLATION",
            message=details.get("message"),
        )
    if status == 400:
        details = body.get("details") or {}
        return CommandResult(
            envelope.command_id,
            "REJECTED",
            envelope.command_id,
            envelope.timestamp,
            rule=details.get("rule") or "BAD_REQUEST",
            error=body.get("error") or "BAD_REQUEST",
            message=body.get("message"),
        )
    raise TargetError(f"command {envelope.command_id}: unexpected batch status {status!r}")


def sealed_from_json(message: bytes) -> SealedEvent:
    """An EventEnvelope received as JSON, as the SealedEvent the twin's observers read.

    The canonical bytes are re-derived from the message (never taken on
    trust); hot-path payloads become their Structs so the invariant suite's
    live checks apply unchanged, and re-encoding the Event must give those
    bytes back (the suite checks it).
    """
    body, canonical, claimed = canonical_from_json(message)
    event_type = body.get("eventType")
    payload = body.get("payload")
    kind = PAYLOAD_TYPES.get(event_type) if isinstance(event_type, str) else None
    if kind is not None and isinstance(payload, dict):
        # left as a dict when it does not convert: the suite reports what does not fold
        with contextlib.suppress(msgspec.ValidationError):
            payload = msgspec.convert(payload, kind)
    event = Event(
        event_id=body.get("eventId"),
        event_type=event_type,
        tenant_id=body.get("tenantId"),
        entity_id=body.get("entityId"),
        payload=payload,
        occurred_at=body.get("occurredAt"),
        causation_id=body.get("causationId"),
        seq=body.get("seq"),
        prev_hash=body.get("prevHash"),
    )
    return SealedEvent(event, claimed, canonical)
