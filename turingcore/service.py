"""The TuringCore HTTP service: CONTRACT.md's API over any `Ledger`, as a FastAPI app.

`create_app(ledger, auth)` builds the app; `turingcore serve` runs it on
uvicorn. The shape of every request is the same, thin on purpose so the
ledger's work dominates:

1. **Authenticate** (`turingcore.auth`): a bearer JWT names the caller's
   tenant. No or a bad token is a 401 with `WWW-Authenticate`. A token whose
   tenant is not the path's tenant is a 404, the same answer as for a tenant
   that does not exist, decided before anything else is read or written.
2. **Read the raw body** with a size limit (413 above it). Envelopes are
   decoded from those bytes by `turingcore.contract.decode_envelope`, which
   reads money exactly from the number's text: the body is never handed to
   FastAPI/pydantic, where JSON numbers would become floats.
3. **Call the ledger off the event loop** (FastAPI's thread pool): ledger
   calls block (a database round trip), so the store must be thread-safe.
4. **Answer with bytes**: events are returned as the stored EventEnvelope
   JSON (`SealedEvent.to_json_bytes()`), never re-serialised; everything else
   is encoded by msgspec (decimals as exact JSON numbers).

The tenant a command acts for is the authenticated one; an envelope naming
another tenant is refused with a 400 and never reaches the ledger. A
customer or account id of another tenant, asked for under one's own path,
is a 404 too (the ledger raises `NotFound`).

Every app has its own Prometheus `CollectorRegistry` (`app.state.registry`),
served at `/metrics`: requests by route template, method and status, latency
histograms by route, commands by outcome and rejections by rule per tenant,
and each tenant's chain length (events) as last answered.
"""

import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from msgspec import Meta, Struct
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from turingcore.auth import AuthConfig, AuthError, TokenVerifier
from turingcore.contract import (
    PAYLOAD_TYPES,
    CommandResult,
    Envelope,
    WireError,
    decode_envelope,
    envelope_from_json,
)
from turingcore.ledger import Ledger, NotFound

#: Largest single-command body accepted (bytes); a PostEntry is about 500.
DEFAULT_MAX_BODY_BYTES = 64 * 1024
#: Largest batch body accepted (bytes): 5,000 commands of up to ~3 KB each.
DEFAULT_MAX_BATCH_BYTES = 16 * 1024 * 1024
MAX_BATCH_COMMANDS = 5000
MAX_PAGE = 1000
JSON = "application/json"
log = logging.getLogger("turingcore.service")

_ENCODE = msgspec.json.Encoder(decimal_format="number").encode
_NOT_FOUND_MESSAGE = "no such tenant, or nothing of it at this path"
_TENANT_MISMATCH = "the command names another tenant than the caller's"

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class ApiError(Exception):
    """An answer other than success: status, the contract's Error body, extra headers."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": error, "message": message, "details": details or {}}
        self.headers = headers


def not_found(path: str) -> ApiError:
    """The one 404 of the API: the same for a foreign tenant, a missing one, or a foreign id."""
    return ApiError(404, "NOT_FOUND", _NOT_FOUND_MESSAGE, {"path": path})


def bad_request(error: WireError) -> dict[str, Any]:
    """The 400 body for a malformed envelope: names the field (empty: the whole body)."""
    return {
        "error": "BAD_REQUEST",
        "message": str(error),
        "details": {"field": error.field, "reason": error.reason},
    }


def result_status(result: CommandResult) -> int:
    """The HTTP status of a ledger answer: 202 accepted, 422 rule broken, 400 malformed."""
    if result.accepted:
        return 202
    if result.error in ("BAD_REQUEST", "FORBIDDEN"):
        return 400
    return 422


# --------------------------------------------------------------------------- wire shapes
# The bodies the API answers with, as msgspec Structs: they document the API
# (their JSON Schema goes into /openapi.json) without a pydantic copy.

_Number = Annotated[Decimal, Meta(extra_json_schema={"type": "number", "format": "decimal"})]


class _Doc(Struct, rename="camel"):
    """Documentation shapes: camelCase like the contract."""


class CommandAccepted(_Doc):
    command_id: str
    status: Literal["ACCEPTED"]
    correlation_id: str
    accepted_at: str


class Error(Struct):
    error: str
    message: str
    details: dict[str, Any]


class InvariantViolation(_Doc):
    command_id: str
    error: Literal["INVARIANT_VIOLATION"]
    invariant: str
    details: dict[str, Any]


class BatchRequest(Struct):
    commands: Annotated[list[Envelope], Meta(min_length=1, max_length=MAX_BATCH_COMMANDS)]


class BatchItem(_Doc):
    """One command's answer: `body` is what the single endpoint would have answered."""

    status: Literal[202, 400, 422]
    body: dict[str, Any]  # documented as oneOf CommandAccepted | Error | InvariantViolation
    first_seq: int
    last_seq: int


class BatchResponse(Struct):
    results: list[BatchItem]


class CustomerSummary(_Doc):
    customer_id: str
    external_ref: str | None
    full_name: str
    email: str
    segment: str | None
    kyc_status: str | None
    created_at: str


class CustomerPage(Struct):
    customers: list[CustomerSummary]
    total: int
    limit: int
    offset: int


class AccountSummary(_Doc):
    account_id: str
    customer_id: str | None
    product_code: str
    account_alias: str | None
    balance: _Number
    currency: str
    status: str
    opened_at: str


class AccountPage(Struct):
    accounts: list[AccountSummary]
    total: int


class EventEnvelope(_Doc):
    """A sealed event: the canonical object (money in integer cents) plus its chain hash."""

    event_id: str
    event_type: str
    tenant_id: str
    entity_id: str
    payload: dict[str, Any]
    occurred_at: str
    causation_id: str
    seq: int
    prev_hash: str
    hash: str


class EventPage(Struct):
    events: list[EventEnvelope]


class ChainHead(Struct):
    seq: int
    hash: str


class TenantEventPage(Struct):
    events: list[EventEnvelope]
    head: ChainHead


_DOC_TYPES = (
    Envelope,
    *PAYLOAD_TYPES.values(),
    BatchRequest,
    BatchResponse,
    CommandAccepted,
    Error,
    InvariantViolation,
    CustomerPage,
    AccountPage,
    EventPage,
    TenantEventPage,
    ChainHead,
)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(name)}}}


_ERRORS = {
    401: _content("Error", "no valid bearer token (see WWW-Authenticate)"),
    404: _content("Error", "no such tenant for this caller, or no such id in it"),
}
_BAD_QUERY = {400: _content("Error", "a query parameter is out of range (named in details)")}


class _BatchWire(Struct, forbid_unknown_fields=True):
    commands: list[msgspec.Raw]


_BATCH = msgspec.json.Decoder(_BatchWire)


# --------------------------------------------------------------------------- metrics


class ServiceMetrics:
    """The service's Prometheus metrics, registered in the app's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "turingcore_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "turingcore_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.commands = Counter(
            "turingcore_commands",
            "commands answered per tenant, by outcome (accepted, rejected, bad_request)",
            ["tenant", "outcome"],
            registry=registry,
        )
        self.rejections = Counter(
            "turingcore_rejections",
            "commands refused per tenant, by the rule they broke (BAD_REQUEST: malformed)",
            ["tenant", "rule"],
            registry=registry,
        )
        self.events = Gauge(
            "turingcore_tenant_events",
            "events in the tenant's chain (its head seq) as of the last answer",
            ["tenant"],
            registry=registry,
        )
        self.refused_callers = Counter(
            "turingcore_refused_callers",
            "requests refused before any work: unauthenticated (401) or another tenant (404)",
            ["reason"],
            registry=registry,
        )
        self._heads: dict[str, int] = {}
        self._heads_lock = threading.Lock()

    def answered(
        self, tenant: str, results: list[CommandResult], malformed: dict[str, int]
    ) -> None:
        """Count a call's answers (aggregated: one update per label, not per command)."""
        accepted = 0
        head = 0
        rules: dict[str, int] = dict(malformed)
        for result in results:
            if result.status == "ACCEPTED":
                accepted += 1
                if result.last_seq > head:
                    head = result.last_seq
            else:
                rule = result.rule or result.error or "UNKNOWN"
                rules[rule] = rules.get(rule, 0) + 1
        bad = sum(malformed.values())
        refused = len(results) - accepted
        if accepted:
            self.commands.labels(tenant, "accepted").inc(accepted)
        if refused:
            self.commands.labels(tenant, "rejected").inc(refused)
        if bad:
            self.commands.labels(tenant, "bad_request").inc(bad)
        for rule, count in rules.items():
            self.rejections.labels(tenant, rule).inc(count)
        if head:
            with self._heads_lock:
                if head > self._heads.get(tenant, 0):
                    self._heads[tenant] = head
                    self.events.labels(tenant).set(head)


class _Instrument:
    """ASGI middleware: request counts and latency by route template (not raw path).

    It also turns an unexpected exception into a JSON 500 (logged with its
    traceback) instead of letting it reach uvicorn, which would drop the
    keep-alive connection under the client's feet.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        clock = time.perf_counter()
        status = 500
        answering = False

        async def send_status(message: Any) -> None:
            nonlocal status, answering
            if message["type"] == "http.response.start":
                status, answering = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except Exception:
            if answering:  # half an answer is out: nothing sane is left to send
                raise
            log.exception("unhandled error answering %s %s", scope["method"], scope["path"])
            status = 500
            await _send_internal_error(send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - clock)


_INTERNAL = _ENCODE(
    {"error": "INTERNAL", "message": "the service failed; see its log", "details": {}}
)


async def _send_internal_error(send: Callable[[Any], Awaitable[None]]) -> None:
    headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(_INTERNAL)).encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": _INTERNAL})


# --------------------------------------------------------------------------- the service


class CommandService:
    """What the endpoints do, in plain (blocking) Python: run in the thread pool."""

    def __init__(self, ledger: Ledger, metrics: ServiceMetrics) -> None:
        self.ledger = ledger
        self.metrics = metrics

    def one(self, tenant: str, body: bytes) -> tuple[int, bytes]:
        """One envelope's (status, JSON answer)."""
        try:
            envelope = decode_envelope(body)
        except WireError as exc:
            self.metrics.answered(tenant, [], {"BAD_REQUEST": 1})
            return 400, _ENCODE(bad_request(exc))
        if envelope.tenant_id != tenant:
            self.metrics.answered(tenant, [], {"TENANT_MISMATCH": 1})
            return 400, _ENCODE(_mismatch_body())
        (result,) = self.ledger.submit(tenant, [envelope])
        self.metrics.answered(tenant, [result], {})
        return result_status(result), _ENCODE(result.to_json())

    def batch(self, tenant: str, body: bytes) -> bytes:
        """A batch's answers, in order; malformed envelopes answered here, the rest in one call.

        Raises:
            ApiError: the body is not `{"commands": [envelope, ...]}` of 1..5000 items.
        """
        try:
            items = _batch_items(body)
        except WireError as exc:
            raise ApiError(400, "BAD_REQUEST", str(exc), bad_request(exc)["details"]) from None
        answers: list[dict[str, Any] | None] = []
        valid: list[Envelope] = []
        malformed: dict[str, int] = {}
        for item in items:
            try:
                envelope = (
                    decode_envelope(item)
                    if isinstance(item, msgspec.Raw)
                    else envelope_from_json(item)
                )
            except WireError as exc:
                answers.append(_item(400, bad_request(exc)))
                malformed["BAD_REQUEST"] = malformed.get("BAD_REQUEST", 0) + 1
                continue
            if envelope.tenant_id != tenant:
                answers.append(_item(400, _mismatch_body()))
                malformed["TENANT_MISMATCH"] = malformed.get("TENANT_MISMATCH", 0) + 1
                continue
            answers.append(None)
            valid.append(envelope)
        results = self.ledger.submit(tenant, valid) if valid else []
        if len(results) != len(valid):
            raise RuntimeError(f"the ledger answered {len(results)} of {len(valid)} commands")
        self.metrics.answered(tenant, results, malformed)
        answered = iter(results)
        out = []
        for answer in answers:
            if answer is None:
                result = next(answered)
                answer = {
                    "status": result_status(result),
                    "body": result.to_json(),
                    "firstSeq": result.first_seq,
                    "lastSeq": result.last_seq,
                }
            out.append(answer)
        return _ENCODE({"results": out})


def _item(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"status": status, "body": body, "firstSeq": 0, "lastSeq": 0}


def _mismatch_body() -> dict[str, Any]:
    return {
        "error": "BAD_REQUEST",
        "message": f"tenantId: {_TENANT_MISMATCH}",
        "details": {"field": "tenantId", "reason": _TENANT_MISMATCH, "rule": "TENANT_MISMATCH"},
    }


def _batch_items(body: bytes) -> list[Any]:
    """The batch's envelopes: raw JSON slices on the fast path, parsed objects otherwise.

    msgspec refuses NaN/Infinity literals; the whole batch is then parsed by
    `json` with exact Decimals, so such an envelope still gets its own 400
    naming the field instead of failing the batch.

    Raises:
        WireError: the body is not a JSON object with a `commands` list of 1..5000.
    """
    try:
        items: list[Any] = _BATCH.decode(body).commands
    except (msgspec.DecodeError, RecursionError):
        try:
            parsed = json.loads(body, parse_float=Decimal, parse_constant=Decimal)
        except (ValueError, RecursionError) as exc:
            raise WireError("", f"body is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise WireError("", 'the batch must be a JSON object {"commands": [...]}') from None
        unknown = sorted(set(parsed) - {"commands"})
        if unknown:
            raise WireError(unknown[0], "unknown field (a batch has only `commands`)") from None
        items = parsed.get("commands")  # type: ignore[assignment]
        if not isinstance(items, list):
            raise WireError("commands", "must be a list of command envelopes") from None
    if not 1 <= len(items) <= MAX_BATCH_COMMANDS:
        raise WireError(
            "commands", f"holds {len(items)} commands; 1 to {MAX_BATCH_COMMANDS} are accepted"
        )
    return items


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with a 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        "PAYLOAD_TOO_LARGE",
        f"the body is at least {size} bytes; at most {limit} are accepted",
        {"limit": limit},
    )


def _json(body: Any, status: int = 200) -> Response:
    return Response(_ENCODE(body), status_code=status, media_type=JSON)


def _events_json(events: list[bytes], head: tuple[int, str] | None = None) -> bytes:
    """`{"events": [...]}` (and the head) around stored event bytes, untouched."""
    out = b'{"events":[' + b",".join(events) + b"]"
    if head is not None:
        out += b',"head":' + _ENCODE({"seq": head[0], "hash": head[1]})
    return out + b"}"


# --------------------------------------------------------------------------- the app


def create_app(
    ledger: Ledger,
    auth: AuthConfig | TokenVerifier,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The service's FastAPI app over `ledger`, authenticating with `auth`.

    The caller owns the ledger (and closes it); the app only calls it.
    `app.state.registry` is the app's own Prometheus registry.
    """
    verifier = auth if isinstance(auth, TokenVerifier) else TokenVerifier(auth)
    registry = registry if registry is not None else CollectorRegistry()
    ProcessCollector(registry=registry)
    metrics = ServiceMetrics(registry)
    service = CommandService(ledger, metrics)
    app = FastAPI(
        title="TuringCore-v3 reference platform",
        version="1.0",
        description=(
            "The command contract of TuringCore-v3 (CONTRACT.md) over HTTP. Bearer JWT "
            "with a `tenantId` claim; the path tenant must be the token's (else 404). "
            "Money is exact: amounts are decimal JSON numbers with at most two places."
        ),
    )
    app.state.registry = registry
    app.state.metrics = metrics
    app.state.ledger = ledger
    app.add_middleware(_Instrument, metrics=metrics)
    bearer = HTTPBearer(auto_error=False, description="a JWT with a tenantId claim")

    async def caller(
        request: Request,
        tenantId: Annotated[str, Path(description="the tenant; must be the token's")],  # noqa: N803
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        """The authenticated tenant, which must be the path's (401 / 404 otherwise)."""
        try:
            tenant = verifier.tenant_of(request.headers.get("authorization"))
        except AuthError as exc:
            metrics.refused_callers.labels("unauthenticated").inc()
            raise ApiError(
                401,
                "UNAUTHENTICATED",
                exc.message,
                headers={"WWW-Authenticate": exc.challenge()},
            ) from None
        if tenant != tenantId:
            metrics.refused_callers.labels("other_tenant").inc()
            raise not_found(request.url.path)
        return tenant

    Tenant = Annotated[str, Depends(caller)]
    Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size (1..1000)")]
    Offset = Annotated[int, Query(ge=0, description="rows to skip")]

    # ----------------------------------------------------------- errors

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        return Response(
            _ENCODE(exc.body), status_code=exc.status, media_type=JSON, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _bad_query(_request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        location = [str(part) for part in first.get("loc", ())]
        parameter = location[-1] if location else ""
        message = f"{parameter}: {first.get('msg', 'invalid value')}"
        details = {"parameter": parameter, "in": location[0] if location else ""}
        return _json({"error": "BAD_REQUEST", "message": message, "details": details}, 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            error = not_found(request.url.path)
            return _json(error.body, 404)
        body = {"error": "HTTP_ERROR", "message": str(exc.detail), "details": {}}
        return Response(
            _ENCODE(body), status_code=exc.status_code, media_type=JSON, headers=exc.headers
        )

    # ----------------------------------------------------------- commands

    @app.post(
        "/v1/tenants/{tenantId}/commands",
        summary="Submit one command envelope",
        status_code=202,
        response_class=Response,
        responses={
            202: _content("CommandAccepted", "accepted (or the first answer to its key)"),
            400: _content("Error", "a malformed envelope or payload (the field is named)"),
            **_ERRORS,
            413: _content("Error", "the body is above the size limit"),
            422: _content("InvariantViolation", "a business rule refused it"),
        },
        openapi_extra={
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("Envelope")}}}
        },
    )
    async def submit_command(request: Request, tenant: Tenant) -> Response:
        body = await read_body(request, max_body_bytes)
        status, answer = await run_in_threadpool(service.one, tenant, body)
        return Response(answer, status_code=status, media_type=JSON)

    @app.post(
        "/v1/tenants/{tenantId}/commands/batch",
        summary="Submit up to 5,000 envelopes; one answer each, in order",
        response_class=Response,
        responses={
            200: _content("BatchResponse", "per-command answers in the order sent"),
            400: _content("Error", 'the body is not {"commands": [1..5000 envelopes]}'),
            **_ERRORS,
            413: _content("Error", "the body is above the size limit"),
        },
        openapi_extra={
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("BatchRequest")}}}
        },
    )
    async def submit_batch(request: Request, tenant: Tenant) -> Response:
        body = await read_body(request, max_batch_bytes)
        answer = await run_in_threadpool(service.batch, tenant, body)
        return Response(answer, media_type=JSON)

    # ----------------------------------------------------------- reads

    @app.get(
        "/v1/tenants/{tenantId}/customers",
        summary="The tenant's customers, a page at a time",
        response_class=Response,
        responses={200: _content("CustomerPage", "a page of customers"), **_ERRORS, **_BAD_QUERY},
    )
    def list_customers(
        request: Request, tenant: Tenant, limit: Limit = 50, offset: Offset = 0
    ) -> Response:
        try:
            return _json(ledger.customers(tenant, limit, offset))
        except NotFound:
            raise not_found(request.url.path) from None

    @app.get(
        "/v1/tenants/{tenantId}/accounts",
        summary="The tenant's accounts (GL accounts excluded), optionally one customer's",
        response_class=Response,
        responses={200: _content("AccountPage", "a page of accounts"), **_ERRORS, **_BAD_QUERY},
    )
    def list_accounts(
        request: Request,
        tenant: Tenant,
        customer_id: Annotated[str | None, Query(alias="customerId", min_length=1)] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Response:
        try:
            return _json(ledger.accounts(tenant, customer_id, limit, offset))
        except NotFound:
            raise not_found(request.url.path) from None

    @app.get(
        "/v1/tenants/{tenantId}/accounts/{accountId}/events",
        summary="An account's events in seq order (the first `limit`)",
        response_class=Response,
        responses={200: _content("EventPage", "the account's events"), **_ERRORS, **_BAD_QUERY},
    )
    def account_events(
        request: Request,
        tenant: Tenant,
        accountId: str,  # noqa: N803 - the contract's path parameter name
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> Response:
        try:
            events = ledger.account_events(tenant, accountId, limit)
        except NotFound:
            raise not_found(request.url.path) from None
        return Response(_events_json(events), media_type=JSON)

    @app.get(
        "/v1/tenants/{tenantId}/events",
        summary="The tenant's chain after a seq, with its head (follow a chain over HTTP)",
        response_class=Response,
        responses={
            200: _content("TenantEventPage", "events with seq > afterSeq, in seq order"),
            **_ERRORS,
            **_BAD_QUERY,
        },
    )
    def tenant_events(
        tenant: Tenant,
        after_seq: Annotated[int, Query(alias="afterSeq", ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
    ) -> Response:
        events = ledger.tenant_events(tenant, after_seq, limit)
        head = ledger.head(tenant)  # read after the events: head.seq >= the last one's seq
        return Response(_events_json(events, head), media_type=JSON)

    @app.get(
        "/v1/tenants/{tenantId}/head",
        summary="The tenant's chain head (seq 0 and 64 zeros before its first event)",
        response_class=Response,
        responses={200: _content("ChainHead", "the chain head"), **_ERRORS},
    )
    def chain_head(tenant: Tenant) -> Response:
        seq, head = ledger.head(tenant)
        return _json({"seq": seq, "hash": head})

    # ----------------------------------------------------------- operations

    @app.get("/healthz", summary="The process is alive", response_class=Response)
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz", summary="The ledger is reachable", response_class=Response)
    def readyz() -> Response:
        check = getattr(ledger, "ready", None)
        try:
            ready = True if check is None else bool(check())
        except Exception as exc:  # noqa: BLE001 - any failure of the probe means not ready
            return _json({"status": "unavailable", "message": f"{type(exc).__name__}: {exc}"}, 503)
        if not ready:
            return _json({"status": "unavailable", "message": "the ledger is not ready"}, 503)
        return _json({"status": "ready"})

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        """FastAPI's document plus the contract's shapes (msgspec JSON Schema)."""
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            _drop_pydantic_validation_errors(document)
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            schemas.update(contract_schemas())
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _drop_pydantic_validation_errors(document: dict[str, Any]) -> None:
    """Remove FastAPI's automatic 422s: a bad parameter is a 400 here (422 is a rule)."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422")
            if answer is not None and "HTTPValidationError" in json.dumps(answer):
                del operation["responses"]["422"]


def _money_as_numbers(node: Any) -> None:
    """Money fields are integer cents inside but decimal numbers on the wire.

    msgspec keeps `"type": "integer"` for an `int` even under `extra_json_schema`,
    so the money marker (`multipleOf: 0.01`, from `turingcore.contract.Cents`)
    is turned into `"type": "number"` here.
    """
    if isinstance(node, dict):
        if node.get("multipleOf") == 0.01:
            node["type"] = "number"
        for value in node.values():
            _money_as_numbers(value)
    elif isinstance(node, list):
        for value in node:
            _money_as_numbers(value)


def contract_schemas() -> dict[str, Any]:
    """JSON Schema components of the envelope, the five payloads and the answers."""
    _, components = msgspec.json.schema_components(
        _DOC_TYPES, ref_template="#/components/schemas/{name}"
    )
    _money_as_numbers(components)
    components["Envelope"]["properties"]["payload"] = {
        "oneOf": [_ref(kind.__name__) for kind in PAYLOAD_TYPES.values()],
        "description": "the payload of `commandType`",
    }
    components["BatchItem"]["properties"]["body"] = {
        "oneOf": [_ref("CommandAccepted"), _ref("Error"), _ref("InvariantViolation")],
        "description": "what the single-command endpoint would have answered",
    }
    return components


# --------------------------------------------------------------------------- stores


class StoreError(ValueError):
    """A `--store` value that names no usable store."""


def open_store(spec: str) -> Ledger:
    """The ledger a `--store` value names: `memory`, or a `postgresql://` URL.

    Raises:
        StoreError: an unknown kind of store, or the PostgreSQL store is not installed.
    """
    if spec == "memory":
        from turingcore.memledger import MemoryLedger

        return MemoryLedger()
    if spec.startswith(("postgresql://", "postgres://")):
        try:
            from turingcore.pgstore import PostgresLedger  # type: ignore[import-not-found]
        except ImportError as exc:
            raise StoreError(
                f"the PostgreSQL store (turingcore.pgstore) cannot be imported: {exc}"
            ) from None
        return PostgresLedger(spec)
    raise StoreError(f"--store must be 'memory' or a postgresql:// URL, not {spec!r}")
