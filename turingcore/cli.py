"""`turingcore`: run the reference platform as a service, and look after its database.

Exit codes: 0 on success, 2 on bad input or an unusable setting (the message
names the option or the setting), 1 when a check it runs fails.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer

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
