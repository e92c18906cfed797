"""sim.stack: `twin stack` starts the local real path, its printed line drives it, Ctrl-C stops it.

The stack runs as the user would run it: a `twin stack` process of its own.
Its printed `twin run` line is run as printed (plus a shorter horizon), and
must give the embedded run's fingerprints; SIGINT must stop the broker, the
local S3, the service and the relay, leaving nothing listening.
"""

from __future__ import annotations

import json
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import SMALL_YAML
from pg_fixtures import admin_connection, drop_database
from typer.testing import CliRunner

from sim.cli import app
from sim.stack import StackError, prepare_database

TWIN = [sys.executable, "-c", "from sim.cli import app; app()"]


def _listening(url: str) -> bool:
    parsed = urlparse(url)
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((parsed.hostname, parsed.port)) == 0


@pytest.mark.slow
def test_the_stack_runs_the_printed_line_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """Start `twin stack`, run its line on a small scenario, interrupt it: all of it stops.

    The run over the stack passes with the embedded run's fingerprints.
    """
    admin = admin_connection()  # skips locally / fails in CI without PostgreSQL
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL_YAML)
    database = f"tc_stack_{secrets.token_hex(4)}"
    embedded = CliRunner().invoke(
        app, ["run", str(scenario), "--days", "1", "--quiet", "--out", str(tmp_path / "emb")]
    )
    assert embedded.exit_code == 0, embedded.output
    expected = json.loads((tmp_path / "emb" / "summary.json").read_text())["fingerprint"]
    stack = subprocess.Popen(
        [*TWIN, "stack", "--scenario", str(scenario), "--dir", str(tmp_path / "stack"),
         "--database", database],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        line = stack.stdout.readline().strip() if stack.stdout else ""
        assert line.startswith("twin run "), stack.stderr.read() if stack.stderr else ""
        argv = shlex.split(line)
        target = argv[argv.index("--target") + 1]
        kafka = argv[argv.index("--events") + 1].replace("kafka://", "http://")
        assert _listening(target)
        run = subprocess.run(
            [*TWIN, *argv[1:], "--days", "1", "--quiet", "--out", str(tmp_path / "real")],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        summary = json.loads((tmp_path / "real" / "summary.json").read_text())
        assert summary["fingerprint"] == expected
    finally:
        stack.send_signal(signal.SIGINT)
        try:
            stack.wait(60)
        finally:
            if stack.poll() is None:
                stack.kill()
            for pipe in (stack.stdout, stack.stderr):
                if pipe is not None:
                    pipe.close()
            drop_database(admin, database)
            admin.close()
    assert stack.returncode == 0
    deadline = time.monotonic() + 10
    while (_listening(target) or _listening(kafka)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _listening(target)
    assert not _listening(kafka)


def test_an_unreachable_postgresql_is_a_clear_error() -> None:
    """Nothing listens on the DSN's port: a StackError naming the address, nothing started."""
    with pytest.raises(StackError, match="PostgreSQL at postgresql://postgres@127.0.0.1:9/"):
        prepare_database("postgresql://postgres@127.0.0.1:9/postgres", "turingcore")


def test_the_stack_refuses_a_bad_scenario_with_exit_2(tmp_path: Path) -> None:
    """A scenario that does not parse: exit 2 naming the file, before anything starts."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntenants: [\n")
    result = CliRunner().invoke(app, ["stack", "--scenario", str(bad), "--check"])
    assert result.exit_code == 2
    assert "bad.yaml" in result.output
