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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
