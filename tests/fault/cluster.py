"""What the fault suites run against: a PostgreSQL cluster and a platform process of their own, each of which
the test can kill and start again.

`PostgresCluster` is an embedded PostgreSQL (the `pgserver` wheel) keeping its data in a directory of the
test's own, so stopping it at once (`pg_ctl stop -m immediate`: no checkpoint, crash recovery at the next
start, as after a power cut) disturbs nothing else. `PlatformProcess` is the platform served by `dfa serve`
in a process of its own, configured only through environment variables, as a deployment is; `kill()` is
SIGKILL, and its output goes to `test-artifacts/fault/<name>.log`. Its processes are forked from one that
imported the platform beforehand (see `_ForkServer`), so that a test can afford to kill and start it often.
"""

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url

from dfa.platform.database import run_migrations
from dfa.platform.settings import Settings
from tests.factories import SECURITY_PROTOCOL_SUBMITTED_ON
from tests.servers import free_port

REPOSITORY = Path(__file__).resolve().parents[2]
LOG_DIR = REPOSITORY / "test-artifacts" / "fault"
START_TIMEOUT_S = 90.0
PG_CTL_TIMEOUT_S = 120.0


def _program(name: str) -> str:
    """A PostgreSQL program of the version the `pgserver` wheel ships."""
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


class PostgresCluster:
    """An embedded PostgreSQL cluster in `directory`, which the test may stop at once and start again on the
    same data."""

    def __init__(self, directory: Path) -> None:
        self.pgdata = (directory / "pg").resolve()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server: Any = None
        self._url: str | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        """The URL of the cluster's `postgres` database; the same after every restart."""
        if self._url is None:
            raise RuntimeError("the cluster has not been started")
        return self._url

    def start(self) -> str:
        """Initialise the cluster on first use, start it, and return its URL."""
        if self._server is None:
            import pgserver

            # No clean-up at exit: the test stops the cluster itself, and a stopped cluster stays stopped.
            self._server = pgserver.get_server(self.pgdata, cleanup_mode=None)
            self._url = self._server.get_uri()
            return self._url
        socket_dir = self._server.get_postmaster_info().socket_dir
        listen = f"-k {socket_dir}" if socket_dir is not None else f"-p {make_url(self.url).port}"
        self._pg_ctl("-w", "-o", '-h ""', "-o", listen, "-l", str(self.pgdata / "log"), "start")
        return self.url

    def stop_immediately(self) -> None:
        """Stop at once, as a power cut would: every backend dies, nothing is checkpointed, and the next start
        recovers from the write-ahead log."""
        self._pg_ctl("-w", "-m", "immediate", "stop")

    def restart_immediately(self, *, down_s: float = 0.0) -> None:
        """Stop at once, stay down for `down_s` seconds, and start again on the same data."""
        self.stop_immediately()
        time.sleep(down_s)
        self.start()
        self.restarts += 1

    def stop(self, *, mode: str = "fast") -> None:
        """Stop (cleanly by default); nothing when it is not running."""
        if self._server is not None:
            with contextlib.suppress(subprocess.CalledProcessError):
                self._pg_ctl("-w", "-m", mode, "stop")

    def database_url(self, name: str) -> str:
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def create_database(self, name: str) -> str:
        """A new database `name`, migrated to the newest schema; returns its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        url = self.database_url(name)
        run_migrations(url)
        return url

    def psql(self, command: str, *, database: str = "postgres") -> str:
        """Run `command` with psql on the cluster; returns what psql printed."""
        result = subprocess.run(
            [_program("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-c", command,
             self.database_url(database)],
            check=True, capture_output=True, text=True, timeout=PG_CTL_TIMEOUT_S,
        )
        return result.stdout

    def _pg_ctl(self, *args: str) -> None:
        # pg_ctl start leaves the server holding its output streams, so they go to a file, never a pipe.
        with open(self.pgdata.parent / "pg_ctl.log", "a") as output:
            subprocess.run(
                [_program("pg_ctl"), "-D", str(self.pgdata), *args],
                check=True, stdout=output, stderr=output, timeout=PG_CTL_TIMEOUT_S, user=self._server.system_user,
            )


@contextlib.contextmanager
def postgres_cluster(name: str = "cluster") -> Iterator[PostgresCluster]:
    """A started cluster in a temporary directory, stopped at once and removed at the end.

    The directory is a fresh one under the system's temporary directory, not pytest's: the server runs as
    another user, and pytest (anyone's run, at its start) makes its own base directory private again."""
    with tempfile.TemporaryDirectory(prefix=f"dfa-{name}-") as directory:
        cluster = PostgresCluster(Path(directory))
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop(mode="immediate")  # its data is about to go: no shutdown checkpoint to wait for


def platform_settings(*, database_url: str, data_dir: Path, **overrides: Any) -> dict[str, Any]:
    """The settings of a platform under test: the session's test settings (no demo data, no chain mirror,
    no background jobs the test does not drive), on this database and data directory."""
    return {
        "database_url": database_url,
        "data_dir": data_dir,
        "demo_data": False,
        "chain_mirror_enabled": False,
        "bank_poll_interval_s": 0,
        "withdrawal_submit_interval_s": 0,
        "settlement_end_of_day_interval_s": 0,
        "issuance_job_interval_s": 0,
        "reconciliation_schedule": "",
        "notice_delivery_interval_s": 0,
        "security_protocol_submitted_on": SECURITY_PROTOCOL_SUBMITTED_ON,
        "sign_in_attempts_per_minute": 100_000,
        "cabinet_default_language": "en",
        **overrides,
    }


def _environment_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


class _ForkServer:
    """A process that has imported the platform once and forks a fresh server process for every start.

    Importing the platform costs about 7 s of CPU on a 2-core machine, which a suite that kills and starts
    it a dozen times cannot pay each time. Each server is still a process of its own (its own memory,
    event loop, sockets and database connections), forked before any of those exist, configured by its
    own environment, and killed by SIGKILL like any other; only its imports were done beforehand.
    """

    def __init__(self) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with open(LOG_DIR / "fork-server.log", "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.fault.cluster"], cwd=REPOSITORY, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1,
            )
        self._lock = threading.Lock()  # restarts run in worker threads; one request and its answer at a time

    def spawn(self, *, argv: list[str], environment: dict[str, str], log_path: Path) -> int:
        """Fork a process that runs `dfa <argv>` with this environment and its output in `log_path`; its pid."""
        assert self.process.stdin is not None and self.process.stdout is not None
        request = json.dumps({"argv": argv, "env": environment, "log": str(log_path.resolve())})
        with self._lock:
            self.process.stdin.write(request + "\n")
            self.process.stdin.flush()
            answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError("the fork server died")
        return int(answer)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


_fork_server: _ForkServer | None = None


def warm_up() -> None:
    """Start the fork server now, so that it imports the platform while the test prepares its database."""
    global _fork_server
    if _fork_server is None or _fork_server.process.poll() is not None:
        _fork_server = _ForkServer()
        atexit.register(_fork_server.close)


def _forked(*, argv: list[str], environment: dict[str, str], log_path: Path) -> int:
    warm_up()
    assert _fork_server is not None
    return _fork_server.spawn(argv=argv, environment=environment, log_path=log_path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class PlatformProcess:
    """The platform served by `dfa serve` in a process of its own, on a fixed port that survives restarts.

    `settings` are Settings field names and values (see `platform_settings`); they reach the process as
    environment variables only. `faults` is its `DFA_FAULTS` value (see `dfa.platform.faults`).
    """

    def __init__(self, name: str, *, settings: Mapping[str, Any], faults: str = "", faults_seed: str | None = None) -> None:
        self.name = name
        self.values = dict(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.faults = faults
        self.faults_seed = faults_seed
        self.log_path = LOG_DIR / f"{name}.log"
        self.pid: int | None = None
        self.kills = 0
        self.starts = 0

    def settings(self) -> Settings:
        """The same settings as a Settings object, for the test's own use of the services on the same database."""
        return Settings(**self.values, _env_file=None)

    def environment(self) -> dict[str, str]:
        # Nothing of the caller's configuration leaks in: every setting the process uses is named here.
        ours = {field.upper() for field in Settings.model_fields}
        inherited = {
            name: value for name, value in os.environ.items()
            if name.upper() not in ours and not name.startswith("DFA_FAULTS")
        }
        configured = {name.upper(): _environment_value(value) for name, value in self.values.items()}
        faults = {"DFA_FAULTS": self.faults} if self.faults else {}
        if self.faults_seed is not None:
            faults["DFA_FAULTS_SEED"] = self.faults_seed
        return {**inherited, **configured, **faults}

    def start(self, *, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the process and wait until `/healthz` says it and its database are ready."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a" if self.starts else "w") as log:  # each test's process starts a fresh log
            log.write(f"--- start {self.starts + 1} of {self.name} on port {self.port} ---\n")
        self.pid = _forked(
            argv=["serve", "--host", "127.0.0.1", "--port", str(self.port)], environment=self.environment(),
            log_path=self.log_path,
        )
        self.starts += 1
        self.wait_ready(timeout_s=timeout_s)

    def wait_ready(self, *, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until `/healthz` answers 200 (the process up and its database answering)."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.url, timeout=2) as client:
            while True:
                if not self.running:
                    raise RuntimeError(f"{self.name} exited during start; see {self.log_path}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/healthz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not become ready in {timeout_s} s; see {self.log_path}")
                time.sleep(0.1)

    @property
    def running(self) -> bool:
        return self.pid is not None and _alive(self.pid)

    def kill(self) -> None:
        """SIGKILL: the process dies at once, in the middle of whatever it was doing."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
            self.kills += 1
        self._wait_gone()

    def restart(self) -> None:
        """Kill the process and start it again on the same port, database and data directory."""
        self.kill()
        self.start()

    def stop(self) -> None:
        """End the process gracefully (the end of the test), killing it if it does not go in time."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            self._wait_gone(timeout_s=3)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._wait_gone()

    def _wait_gone(self, *, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while self.pid is not None and _alive(self.pid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} (pid {self.pid}) did not end")
            time.sleep(0.02)
        self.pid = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@contextlib.contextmanager
def platform_process(
    name: str, *, settings: Mapping[str, Any], faults: str = "", faults_seed: str | None = None
) -> Iterator[PlatformProcess]:
    """A started platform process, stopped at the end."""
    process = PlatformProcess(name, settings=settings, faults=faults, faults_seed=faults_seed)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def unique_name(prefix: str) -> str:
    """A database or log name no other run uses."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _serve_forks() -> None:
    """The fork server's loop: one JSON request a line on stdin, the forked pid a line on stdout. At the end of
    its input (the test process gone) it kills every server it forked."""
    import dfa.cli
    import dfa.main

    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever else is printed goes to the log, never into the answers
    # The first app built in a process imports and initialises much more (the in-process EVM, the crypto
    # backends); build one here, with no database and no event loop, so every server starts warm.
    with tempfile.TemporaryDirectory(prefix="dfa-warm-up-") as scratch:
        dfa.main.create_app(Settings(
            _env_file=None, database_url="postgresql://warm-up@/none", data_dir=Path(scratch), demo_data=False,
            chain_mirror_enabled=False,
        ))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the servers as they end
    children: list[int] = []
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            answers.close()  # only the fork server answers; a server holding the pipe would hide its death
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.setsid()
            os.environ.clear()
            os.environ.update(request["env"])
            log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            code = 1
            try:
                code = dfa.cli.main(request["argv"])
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
        answers.write(f"{pid}\n")
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    _serve_forks()
