"""turingcore.broker: a real Tansu (and moto) as managed subprocesses on loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka_fixtures import LOCAL_S3, produce_raw, start_or_skip, wait_for
from services import service_missing

from turingcore.broker import (
    BrokerError,
    ManagedProcess,
    TansuBroker,
    durable_broker,
    free_port,
    log_tail,
)
from turingcore.topics import TopicReader


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _read_all(bootstrap: str, tenant_id: str) -> list[bytes]:
    with TopicReader(bootstrap) as reader:
        return [message.value for message in reader.messages(tenant_id)]


def test_free_port_is_bindable() -> None:
    """free_port hands out a loopback port that can be bound right away."""
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_memory_broker_serves_dies_and_comes_back_empty(
    make_broker: Callable[..., TansuBroker],
) -> None:
    """A memory broker answers Kafka; SIGKILL ends the process and frees the port;
    restart() brings it back on the same port with no topics (a lost cluster)."""
    broker = make_broker()
    port, pid = broker.port, broker.pid
    assert pid is not None
    assert broker.bootstrap == f"127.0.0.1:{port}"
    assert broker.url == f"kafka://127.0.0.1:{port}"
    produce_raw(broker.bootstrap, "cu-one", [b"a", b"b", b"c"])
    assert _read_all(broker.bootstrap, "cu-one") == [b"a", b"b", b"c"]

    broker.kill()
    assert not broker.running
    assert not _alive(pid)
    assert not _listening(port)

    broker.restart()
    assert broker.port == port
    assert broker.running
    assert broker.pid != pid
    with TopicReader(broker.bootstrap) as reader:
        assert reader.tenants() == []


def test_s3_broker_keeps_its_topics_across_a_kill(make_broker: Callable[..., TansuBroker]) -> None:
    """On S3-on-moto storage, every message produced before a SIGKILL is there after restart."""
    broker = make_broker(durable=True)
    assert broker.storage.startswith("s3://")
    sent = [f"message {number}".encode() for number in range(1000)]
    produce_raw(broker.bootstrap, "cu-durable", sent)
    broker.kill()
    broker.start()
    assert _read_all(broker.bootstrap, "cu-durable") == sent


def test_stop_leaves_no_process_behind(tansu_bin: str, tmp_path: Path) -> None:
    """stop() ends the broker process (polite, then forced) and the context manager stops too."""
    with TansuBroker(log_path=tmp_path / "tansu.log", binary=tansu_bin) as broker:
        pid = broker.pid
        assert pid is not None
        assert _alive(pid)
    assert not broker.running
    assert not _alive(pid)
    assert "tansu broker" in log_tail(tmp_path / "tansu.log")


def test_a_broker_that_fails_to_start_quotes_its_log(tansu_bin: str, tmp_path: Path) -> None:
    """A bad storage URL makes Tansu exit; the error names the broker and quotes its log."""
    broker = TansuBroker("bogus://nowhere/", log_path=tmp_path / "bad.log", binary=tansu_bin)
    with pytest.raises(BrokerError, match="exited with code") as caught:
        broker.start(timeout=20)
    assert "UnsupportedStorageUrl" in str(caught.value)
    assert str(tmp_path / "bad.log") in str(caught.value)
    assert not broker.running


def test_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    """A binary that does not exist is reported by path, nothing is left running."""
    broker = TansuBroker(log_path=tmp_path / "x.log", binary=str(tmp_path / "no-tansu"))
    with pytest.raises(BrokerError, match="cannot run"):
        broker.start()
    assert broker.pid is None


class _NeverReady(ManagedProcess):
    """A process that runs but never listens: the readiness deadline must end it."""

    name = "never-ready"

    def argv(self) -> list[str]:
        return [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]


def test_readiness_is_polled_against_a_deadline(tmp_path: Path) -> None:
    """A server that never becomes ready is killed at the deadline and the error says so."""
    process = _NeverReady(port=free_port(), log_path=tmp_path / "never.log")
    with pytest.raises(BrokerError, match=r"not ready within 1 s") as caught:
        process.start(timeout=1.0)
    assert "started" in str(caught.value)  # the log tail is quoted
    assert not process.running


def test_durable_broker_runs_tansu_on_moto_and_stops_both(tansu_bin: str, tmp_path: Path) -> None:
    """The local stack's broker: moto and Tansu up together, topics on S3, both gone after."""
    try:
        import moto.server  # noqa: F401 - only checking that it is installed
    except ImportError as exc:
        service_missing(LOCAL_S3, str(exc))
    assert tansu_bin  # the fixture reports a missing broker binary
    with durable_broker(tmp_path / "stack") as (broker, moto):
        assert broker.running
        assert moto.running
        assert broker.storage == "s3://tansu/"
        assert broker.env["AWS_ENDPOINT"] == moto.endpoint
        produce_raw(broker.bootstrap, "cu-stack", [b"kept"])
        broker.kill()
        broker.start()
        assert _read_all(broker.bootstrap, "cu-stack") == [b"kept"]
        pids = [broker.pid, moto.pid]
    assert not broker.running
    assert not moto.running
    assert not any(_alive(pid) for pid in pids if pid is not None)
    assert (tmp_path / "stack" / "tansu.log").is_file()
    assert (tmp_path / "stack" / "moto.log").is_file()


def test_a_broker_dies_with_a_parent_that_was_killed(tansu_bin: str, tmp_path: Path) -> None:
    """A process that started a broker and was SIGKILLed (no atexit) leaves no broker."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux's")
    script = (
        "import os, signal, sys\n"
        "from turingcore.broker import TansuBroker\n"
        f"broker = TansuBroker(log_path={str(tmp_path / 'orphan.log')!r}, binary={tansu_bin!r})\n"
        "broker.start()\n"
        "print(broker.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    parent = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert parent.returncode == -signal.SIGKILL, parent.stderr
    orphan = int(parent.stdout.split()[0])
    wait_for(lambda: not _alive(orphan), 10, f"broker {orphan} to die with its parent")


def test_a_broker_started_from_a_short_lived_thread_outlives_it(
    tansu_bin: str, tmp_path: Path
) -> None:
    """Started by a thread that then ends (a chaos thread restarting it), the broker runs on.

    The kill-with-parent hook follows the starting *thread*, so it is only
    set from the main thread; otherwise the broker died with its starter.
    """
    broker = TansuBroker(log_path=tmp_path / "t.log", binary=tansu_bin)
    starter = threading.Thread(target=start_or_skip, args=(broker,))
    starter.start()
    starter.join(60)
    try:
        assert broker.running
        assert broker.ready(5.0)
        assert broker.running  # still there once the starting thread is gone
    finally:
        broker.stop()
