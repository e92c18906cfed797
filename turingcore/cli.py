"""`turingcore`: run the reference platform as a service, and look after its database.

Exit codes: 0 on success, 2 on bad input or an unusable setting (the message
names the option or the setting), 1 when a check it runs fails.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from turingcore import auth

app = typer.Typer(
    name="turingcore",
    help="The TuringCore-v3 reference platform: HTTP service, PostgreSQL store, Kafka relay.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The PostgreSQL store.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `turingcore: error: message` to stderr and exit with `code`."""
    typer.echo(f"turingcore: error: {message}", err=True)
    raise typer.Exit(code)


#: Young-generation GC threshold of `turingcore serve` (CPython's default is 700).
YOUNG_GC_THRESHOLD = 100_000
# the defaults are turingcore.service's DEFAULT_MAX_*_BYTES (not imported: FastAPI is slow to load)
BodyOption = typer.Option(help="largest single-command body in bytes (413 above)", min=1024)
BatchOption = typer.Option(help="largest batch body in bytes (413 above)", min=1024)


@app.command()
def serve(
    store: Annotated[
        str, typer.Option(help="`memory`, or a postgresql:// URL (the PostgreSQL store)")
    ] = "memory",
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on", min=1, max=65535)] = 8080,
    jwt_secret_file: Annotated[
        Path | None,
        typer.Option(help=f"HS256 shared secret (else env {auth.SECRET_ENV}); >= 32 bytes"),
    ] = None,
    jwt_public_key_file: Annotated[
        Path | None,
        typer.Option(help="verify RS256 tokens with this public key (PEM) instead of HS256"),
    ] = None,
    jwt_issuer: Annotated[str, typer.Option(help="required `iss`")] = auth.DEFAULT_ISSUER,
    jwt_audience: Annotated[str, typer.Option(help="required `aud`")] = auth.DEFAULT_AUDIENCE,
    max_body_bytes: Annotated[int, BodyOption] = 65_536,
    max_batch_bytes: Annotated[int, BatchOption] = 16_777_216,
    access_log: Annotated[bool, typer.Option(help="log every request (uvicorn)")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the contract's HTTP API (FastAPI on uvicorn) over a store."""
    import uvicorn

    from turingcore.service import StoreError, create_app, open_store

    config = _auth_config(jwt_secret_file, jwt_public_key_file, jwt_issuer, jwt_audience)
    try:
        ledger = open_store(store)
    except StoreError as exc:
        fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure to open the store is a bad setting
        fail(f"cannot open the store {store!r}: {type(exc).__name__}: {exc}")
    # A batch of 2,000 envelopes in flight makes the cyclic GC's young collections
    # rescan thousands of containers again and again (~20-30% of a memory-store batch,
    # measured with benchmarks/bench_http.py); reference counting frees them anyway.
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_GC_THRESHOLD), older, oldest)
    try:
        app_ = create_app(
            ledger, config, max_body_bytes=max_body_bytes, max_batch_bytes=max_batch_bytes
        )
        uvicorn.run(
            app_,
            host=host,
            port=port,
            log_level=log_level,
            access_log=access_log,
            ws="none",
            lifespan="off",
        )
    finally:
        ledger.close()


def _auth_config(
    secret_file: Path | None, public_key_file: Path | None, issuer: str, audience: str
) -> auth.AuthConfig:
    """The service's token check from the options; exit 2 on anything unusable."""
    try:
        if public_key_file is not None:
            key = auth.read_key_file(public_key_file, "--jwt-public-key-file")
            config = auth.AuthConfig(key, issuer, audience, algorithm="RS256")
            auth.TokenVerifier(config)  # loads the key: fail now, not on the first request
            return config
        return auth.AuthConfig(auth.read_secret(secret_file), issuer, audience)
    except auth.ConfigError as exc:
        fail(str(exc))


@app.command()
def token(
    tenant: Annotated[str, typer.Option(help="the tenantId claim")],
    ttl: Annotated[int, typer.Option(help="lifetime in seconds", min=1)] = 3600,
    secret_file: Annotated[
        Path | None, typer.Option(help=f"HS256 shared secret (else env {auth.SECRET_ENV})")
    ] = None,
    private_key_file: Annotated[
        Path | None, typer.Option(help="sign RS256 with this private key (PEM) instead")
    ] = None,
    issuer: Annotated[str, typer.Option(help="the token's `iss`")] = auth.DEFAULT_ISSUER,
    audience: Annotated[str, typer.Option(help="the token's `aud`")] = auth.DEFAULT_AUDIENCE,
) -> None:
    """Print a bearer token for one tenant (for the local stack and the twin)."""
    if not tenant:
        fail("--tenant must not be empty")
    try:
        if private_key_file is not None:
            key = auth.read_key_file(private_key_file, "--private-key-file")
            algorithm: auth.Algorithm = "RS256"
        else:
            key, algorithm = auth.read_secret(secret_file), "HS256"
        minted = auth.issue_token(
            tenant, key, issuer=issuer, audience=audience, ttl_seconds=ttl, algorithm=algorithm
        )
    except auth.ConfigError as exc:
        fail(str(exc))
    except ValueError as exc:  # a private key PyJWT cannot use
        fail(f"--private-key-file: {exc}")
    sys.stdout.write(minted + "\n")


DSN_OPTION = typer.Option(
    ...,
    "--dsn",
    envvar="TURINGCORE_DSN",
    help="PostgreSQL connection string, e.g. postgresql://postgres@127.0.0.1:5432/turingcore",
)


@db_app.command("migrate")
def db_migrate(dsn: str = DSN_OPTION) -> None:
    """Create the roles and apply the schema migrations not yet applied (idempotent).

    Run as a role that may create roles (the service itself connects as
    turingcore_app, which may not).
    """
    from turingcore.pgstore import StoreError, catalogue_problems, connect, describe, migrate

    try:
        applied = migrate(dsn)
        with connect(dsn, autocommit=True) as conn:
            problems = catalogue_problems(conn)
    except StoreError as exc:
        fail(str(exc))
    where = describe(dsn)
    if applied:
        typer.echo(f"{where}: applied {', '.join(applied)}")
    else:
        typer.echo(f"{where}: up to date")
    if problems:
        for problem in problems:
            typer.echo(f"turingcore: unsafe: {problem}", err=True)
        raise typer.Exit(1)


@db_app.command("check")
def db_check(dsn: str = DSN_OPTION) -> None:
    """Check the catalogue holds tenants apart (row security, policies, role attributes).

    Exit 1 listing every problem found, 0 when there is none.
    """
    from turingcore.pgstore import StoreError, check_catalogue, describe

    try:
        problems = check_catalogue(dsn)
    except StoreError as exc:
        fail(str(exc))
    for problem in problems:
        typer.echo(f"turingcore: unsafe: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{describe(dsn)}: row-level security holds (no problem found)")


def bootstrap_servers(value: str, option: str = "--bootstrap") -> str:
    """HOST:PORT[,HOST:PORT...] (a kafka:// prefix is accepted), or exit 2 naming the option."""
    from turingcore.topics import parse_source

    source = value if value.startswith("kafka://") else f"kafka://{value}"
    try:
        return parse_source(source)
    except ValueError as exc:
        fail(f"{option}: {exc}")


def open_outbox(dsn: str) -> Any:  # noqa: ANN401 - whatever Outbox the store provides
    """The PostgreSQL store's outbox for `dsn` (`turingcore.pgstore.open_outbox`).

    Imported here, not at the top, so `turingcore --help` and the other
    commands work without the store's dependencies.
    """
    try:
        from turingcore import pgstore
    except ImportError as exc:
        fail(f"--dsn: the PostgreSQL store (turingcore.pgstore) is not available: {exc}")
    opener = getattr(pgstore, "open_outbox", None)
    if opener is None:
        fail("--dsn: turingcore.pgstore has no open_outbox(dsn) to give the relay its outbox")
    try:
        return opener(dsn)
    except Exception as exc:  # noqa: BLE001 - any driver error: the setting is unusable
        fail(f"--dsn: cannot open the outbox at {dsn!r}: {exc}")


@app.command()
def relay(
    dsn: Annotated[str, typer.Option(help="PostgreSQL DSN of the store whose outbox to relay")],
    bootstrap: Annotated[str, typer.Option(help="Kafka brokers, HOST:PORT[,HOST:PORT]")],
    once: Annotated[
        bool, typer.Option(help="relay what is unsent now (and audit the topics), then exit")
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="with --once: seconds before giving up (exit 2)")
    ] = 120.0,
    batch_size: Annotated[int, typer.Option(help="rows per tenant per pass")] = 5000,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
) -> None:
    """Publish the store's outbox to the tenants' Kafka topics (ledger_events.<tenantId>).

    Rows are marked sent only after the broker confirmed them; when the
    broker is down they wait and the relay retries; a topic that lost events
    (a broker that came back empty) is republished from the outbox. Runs until
    SIGINT/SIGTERM, or with --once until nothing is unsent.
    """
    import logging
    import signal
    import threading

    from turingcore.relay import OutboxRelay, RelayError

    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        fail(f"--log-level: {log_level!r} is not one of DEBUG, INFO, WARNING, ERROR")
    if batch_size < 1:
        fail("--batch-size: must be at least 1")
    if timeout <= 0:
        fail("--timeout: must be positive")
    servers = bootstrap_servers(bootstrap)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    outbox = open_outbox(dsn)
    worker = OutboxRelay(
        outbox, servers, batch_size=batch_size, request_timeout_s=min(10.0, timeout)
    )
    try:
        if once:
            try:
                confirmed = worker.run_until_idle(timeout)
            except RelayError as exc:
                fail(str(exc))
            typer.echo(f"relayed {confirmed:,} events to {servers}; nothing is unsent")
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_args: stop.set())
        worker.start()
        typer.echo(f"relaying the outbox to {servers} (Ctrl-C to stop)", err=True)
        while not stop.wait(1.0):
            pass
    finally:
        worker.stop()
        close = getattr(outbox, "close", None)
        if callable(close):
            close()
    typer.echo(f"stopped; {worker.stats.published:,} events relayed", err=True)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
