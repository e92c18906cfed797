"""`turingcore`: run the reference platform as a service, and look after its database.

Exit codes: 0 on success, 2 on bad input or an unusable setting (the message
names the option or the setting), 1 when a check it runs fails.
"""

from __future__ import annotations

from typing import NoReturn

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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
