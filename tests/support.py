"""Helpers the tests share: running the CLI as a user does, waiting for conditions, reading
what the storage and the process table say, and cleaning up worker processes.

Tests get the CLI through the ``cli`` fixture (tests/conftest.py), which is ``run_cli``;
helpers that run commands on a test's behalf call ``run_cli`` themselves.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

PG_SERVER = os.environ.get("TUI_HPO_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
"""The test PostgreSQL server (``make test`` brings one up on 127.0.0.1:5432)."""

Cli = Callable[..., "subprocess.CompletedProcess[str]"]
"""What the ``cli`` fixture is: ``run_cli``."""


def admin_dsn() -> str:
    """libpq's form of the test server's URL, on its ``postgres`` database."""
    return PG_SERVER.replace("postgresql+psycopg://", "postgresql://") + "/postgres"


STORAGE_VARS = ("TUI_HPO_STORAGE", "OPTUNA_STORAGE", "TUI_HPO_DEMO_SLEEP")
"""What a command run by a test must not inherit from the shell that runs the tests."""


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the storage variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in STORAGE_VARS}
    env.update(extra or {})
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``tui-hpo ARGS`` as a real subprocess, the way a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "tui_hpo", *args],
        capture_output=True,
        text=True,
        env=clean_env(env),
        cwd=cwd,
        timeout=timeout,
    )


def wait_for(what: Callable[[], T], timeout: float, message: str, every: float = 0.2) -> T:
    """``what()`` once it is truthy; an AssertionError naming ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(every)


def alive(pid: int | None) -> bool:
    """A process that still exists and is not a zombie."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def system_tool(name: str) -> str:
    """A system program by name, found on PATH or in the sbin folders a plain user's PATH
    leaves out (runuser, sshd); the name itself when it is nowhere."""
    extra = os.pathsep.join(("/usr/local/sbin", "/usr/sbin", "/sbin"))
    return shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + extra) or name


def kill_worker(pid: int | None) -> None:
    """SIGKILL a tui-hpo worker's process group, only if ``pid`` is still a tui-hpo process:
    a pid from an exited worker's row may belong to anything by now (a PostgreSQL backend,
    whose group is the whole server)."""
    if not pid:
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return
    # " -m tui_hpo ", the tui-hpo script or a process that names itself "tui-hpo ..." (a
    # forked supervisor, a command that masked its URL), and never a PostgreSQL backend,
    # whose command line names the test database and leads its own group
    if cmdline.startswith("postgres") or not (
        " -m tui_hpo " in f" {cmdline} "
        or "bin/tui-hpo " in f"{cmdline} "
        or cmdline.startswith("tui-hpo ")
    ):
        return
    try:
        group = os.getpgid(pid)
        if group == pid and group != os.getpgrp():
            os.killpg(group, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def load_trials(url: str, study: str) -> list[Any]:
    """Every trial of the study, by number, read with Optuna itself."""
    import optuna

    storage = optuna.storages.RDBStorage(url)
    try:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials()
        return sorted(trials, key=lambda t: t.number)
    finally:
        storage.engine.dispose()


def worker_rows(url: str) -> list[dict[str, Any]]:
    """tui-hpo's worker registry, read with plain SQL."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as con:
            rows = con.execute(sa.text("SELECT * FROM tui_hpo_workers ORDER BY worker_id"))
            return [dict(r._mapping) for r in rows]
    finally:
        engine.dispose()


class Background:
    """A ``tui-hpo`` command started with Popen, its stdout and stderr going to files."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, name: str) -> None:
        self.out = cwd / f"{name}.stdout"
        self.err = cwd / f"{name}.stderr"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tui_hpo", *args],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_started(self, timeout: float = 60) -> None:
        """Until a launch says its workers are started (the study exists by then)."""

        def started() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"launch exited early:\n{self.stderr()}")
            return "worker(s)" in self.stderr()

        wait_for(started, timeout, "the launch to start its workers")

    def wait(self, timeout: float = 120) -> int:
        return self.process.wait(timeout=timeout)


# Servers of a test's own: PostgreSQL with few connection slots, pgbouncer in front of it ------

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
"""Where Debian keeps ``initdb``, ``pg_ctl`` and ``postgres`` (not on PATH)."""

PGBOUNCER = "pgbouncer"
"""Debian's pgbouncer, found with ``system_tool`` (it lives in /usr/sbin)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now (the kernel's pick)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    """``cmd`` run as the ``postgres`` user when we are root: PostgreSQL refuses to run as
    root, and pgbouncer would have to be told whom to become; as anyone else, as is."""
    if os.geteuid() != 0:
        return cmd
    return [system_tool("runuser"), "-u", "postgres", "--", *cmd]


def _private_folder(prefix: str) -> Path:
    """A temporary folder the ``postgres`` user can write (tests run as root)."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(root, 0o777)
    return root


class OwnPostgres:
    """A throwaway PostgreSQL server: initdb in a temporary folder, a free port, few slots.

    The shared test server has 100 slots, so a test can't crowd it without disturbing every
    other test; this one has ``max_connections`` of them, ``reserved`` kept for superusers.
    tui-hpo connects as ``hpo``, a plain role owning database ``hpo`` (``url``), so it is
    refused at ``slots`` = ``max_connections - reserved`` connections, while the test itself,
    as superuser ``postgres`` (``admin_dsn``), can always get in to count them. Trust auth on
    127.0.0.1 and ``fsync=off``: it holds nothing worth keeping.
    """

    USER = "hpo"
    DATABASE = "hpo"

    def __init__(self, max_connections: int = 20, reserved: int = 3) -> None:
        import glob

        bins = sorted(glob.glob(PG_BIN_GLOB))
        if not bins:
            raise RuntimeError(f"no PostgreSQL server binaries in {PG_BIN_GLOB}")
        self.bin = bins[-1]
        self.max_connections = max_connections
        self.reserved = reserved
        self.root = _private_folder("tui-hpo-pg-")
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self._run(
            f"{self.bin}/initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )
        self.url = f"postgresql+psycopg://{self.USER}@127.0.0.1:{self.port}/{self.DATABASE}"
        """What tui-hpo gets: the plain role, refused once the unreserved slots are taken."""
        self.admin_dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        """libpq's form, as the superuser: the test's own way in, on a reserved slot."""
        self.admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.DATABASE}"
        """tui-hpo's database as the superuser: for reading what was written while the plain
        role's slots are all taken."""

    @property
    def slots(self) -> int:
        """Connections a plain role (tui-hpo) can hold at once."""
        return self.max_connections - self.reserved

    def _run(self, *cmd: str) -> None:
        subprocess.run(_as_postgres(list(cmd)), check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        """Start the server and wait until it accepts connections (``pg_ctl -w``); create the
        ``hpo`` role and database the first time."""
        opts = " ".join(
            (
                f"-p {self.port}",
                f"-k {self.root}",
                "-c listen_addresses=127.0.0.1",
                f"-c max_connections={self.max_connections}",
                f"-c superuser_reserved_connections={self.reserved}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            )
        )
        self._run(
            f"{self.bin}/pg_ctl", "-D", str(self.data), "-o", opts, "-w", "-l", str(self.log),
            "start",
        )  # fmt: skip
        self._ensure_database()

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=10) as con:
            if not con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [self.USER]).fetchone():
                con.execute(f'CREATE ROLE "{self.USER}" LOGIN NOSUPERUSER')
            if not con.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [self.DATABASE]
            ).fetchone():
                con.execute(f'CREATE DATABASE "{self.DATABASE}" OWNER "{self.USER}"')

    def stop(self) -> None:
        self._run(f"{self.bin}/pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop the server (if it runs) and delete its folder."""
        import contextlib

        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def setting(self, name: str) -> str:
        """A server setting as the server reports it (``SHOW``)."""
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=10) as con:
            row = con.execute(f"SHOW {name}").fetchone()
        assert row is not None
        return str(row[0])

    def activity(self, application_name_prefix: str = "tui-hpo") -> dict[str, int]:
        """Client connections per ``application_name`` whose name starts with the prefix
        (``""``: every client connection but this query's own), from ``pg_stat_activity``."""
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=10) as con:
            rows = con.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity"
                " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                " AND application_name LIKE %s GROUP BY application_name",
                [application_name_prefix.replace("%", r"\%") + "%"],
            ).fetchall()
        return {str(name): int(n) for name, n in rows}

    def connections(self, application_name_prefix: str = "tui-hpo") -> int:
        """How many client connections have an ``application_name`` starting with the prefix."""
        return sum(self.activity(application_name_prefix).values())

    def __enter__(self) -> OwnPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class PgBouncer:
    """Debian's pgbouncer in transaction-pooling mode in front of an ``OwnPostgres``: clients
    connect to ``url`` (database ``hpo``); at most ``pool_size`` server connections carry all
    of them, each handed to a client for one transaction at a time.

    Started in the foreground (as ``postgres`` when we are root: pgbouncer refuses root) so
    that ``stop`` ends exactly this process. ``auth_type = trust`` still needs the user in
    the ``auth_file``.
    """

    def __init__(
        self, server: OwnPostgres, pool_size: int = 4, max_client_conn: int = 1000
    ) -> None:
        binary = system_tool(PGBOUNCER)
        if not Path(binary).is_absolute():
            raise FileNotFoundError("pgbouncer is not installed")
        self.binary = binary
        self.server = server
        self.pool_size = pool_size
        self.root = _private_folder("tui-hpo-pgbouncer-")
        self.port = free_port()
        self.log = self.root / "pgbouncer.log"
        self.ini = self.root / "pgbouncer.ini"
        users = self.root / "userlist.txt"
        users.write_text(f'"{server.USER}" ""\n"postgres" ""\n')
        self.ini.write_text(
            "\n".join(
                (
                    "[databases]",
                    f"{server.DATABASE} = host=127.0.0.1 port={server.port}"
                    f" dbname={server.DATABASE} user={server.USER}",
                    "",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.port}",
                    f"unix_socket_dir = {self.root}",
                    "auth_type = trust",
                    f"auth_file = {users}",
                    "pool_mode = transaction",
                    f"default_pool_size = {pool_size}",
                    "min_pool_size = 0",
                    "reserve_pool_size = 0",
                    f"max_client_conn = {max_client_conn}",
                    "max_db_connections = 0",
                    "server_idle_timeout = 600",
                    # psycopg sends none of these by default; a driver that does must not
                    # be refused for it
                    "ignore_startup_parameters = extra_float_digits,options",
                    "admin_users = postgres",
                    f"logfile = {self.log}",
                    f"pidfile = {self.root / 'pgbouncer.pid'}",
                    "",
                )
            )
        )
        self.url = f"postgresql+psycopg://{server.USER}@127.0.0.1:{self.port}/{server.DATABASE}"
        """What tui-hpo gets: the pooler, not the server."""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        """Start pgbouncer and wait until a client gets through it to the server."""
        self.process = subprocess.Popen(
            _as_postgres([self.binary, str(self.ini)]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def answers() -> bool:
            import psycopg

            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.log_text()[-2000:]}")
            try:
                with psycopg.connect(self.dsn, connect_timeout=5, prepare_threshold=None) as con:
                    return con.execute("SELECT 1").fetchone() == (1,)
            except psycopg.OperationalError:
                return False

        wait_for(answers, timeout, "pgbouncer to accept a connection", every=0.2)

    @property
    def dsn(self) -> str:
        """libpq's form of ``url``."""
        return self.url.replace("postgresql+psycopg://", "postgresql://")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM pgbouncer's whole session (runuser and pgbouncer), then SIGKILL."""
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgBouncer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class ConnectionSampler:
    """Samples ``pg_stat_activity`` in a thread while a test runs, and says who held what.

    Each sample counts the client connections of one database (``database``) and user
    (``user``; ``None``: any) per ``application_name`` (tui-hpo names each process's role in
    it), and, when ``per_process`` is set, maps each connection to the local process that
    holds it (its client port, through the process table: tests run on the server's machine)
    so that "one connection per worker process" can be checked, not just totals. The sampler
    keeps one superuser connection open, which uses a reserved slot on ``OwnPostgres``.
    """

    def __init__(
        self,
        admin_dsn: str,
        *,
        database: str,
        user: str | None = None,
        every: float = 0.1,
        per_process: bool = True,
    ) -> None:
        import threading

        self.admin_dsn = admin_dsn
        self.database = database
        self.user = user
        self.every = every
        self.per_process = per_process
        self.samples: list[dict[str, int]] = []
        """Per sample: connections per application_name (``""`` for none set)."""
        self.most_per_process: dict[str, int] = {}
        """Per application_name: the most connections one client process held in a sample."""
        self.crowded_processes: list[tuple[str, int, int]] = []
        """(application_name, pid, connections) of every sample where a process held > 1."""
        self.times: list[float] = []
        """When each sample was taken (``time.monotonic()``)."""
        self.lifetimes: dict[tuple[str, int], tuple[float, float]] = {}
        """(application_name, client port) -> (first, last) sample that showed it: a poll's
        connection lives milliseconds, one held across a pause lives through many samples."""
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-sampler", daemon=True)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def peak(self, application_name_prefix: str = "") -> int:
        """The most connections whose application_name starts with the prefix, in one sample."""
        return max(
            (
                sum(n for name, n in s.items() if name.startswith(application_name_prefix))
                for s in self.samples
            ),
            default=0,
        )

    def held(
        self,
        application_name_prefix: str = "",
        *,
        longer_than: float = 1.0,
        start: float = 0.0,
        end: float = float("inf"),
    ) -> list[tuple[str, int]]:
        """Connections (name, client port) seen without a break for more than ``longer_than``
        seconds between ``start`` and ``end`` (``time.monotonic()``): held, not a passing
        poll's. A client port used again later counts as the same connection, so keep the
        window to seconds."""
        return [
            key
            for key, (first, last) in self.lifetimes.items()
            if key[0].startswith(application_name_prefix)
            and min(last, end) - max(first, start) > longer_than
        ]

    def latest(self, application_name_prefix: str = "") -> int:
        """Connections in the last sample whose application_name starts with the prefix."""
        if not self.samples:
            return 0
        return sum(
            n for name, n in self.samples[-1].items() if name.startswith(application_name_prefix)
        )

    def _server_port(self) -> int:
        from psycopg.conninfo import conninfo_to_dict

        return int(conninfo_to_dict(self.admin_dsn).get("port") or 5432)

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=10)

    def _rows(self, con: Any) -> list[tuple[str, int | None]]:
        """(application_name, client port) of each client connection sampled."""
        rows = con.execute(
            "SELECT coalesce(application_name, ''), client_port FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            " AND datname = %s AND (%s::text IS NULL OR usename = %s::text)",
            [self.database, self.user, self.user],
        ).fetchall()
        return [(str(name), port) for name, port in rows]

    def _run(self) -> None:
        try:
            with self._connect() as con:
                while not self._stop.is_set():
                    self._record(self._rows(con))
                    self._stop.wait(self.every)
        except BaseException as exc:  # the test reads it: a sampler that died measured nothing
            self.error = exc

    def _record(self, rows: list[tuple[str, int | None]]) -> None:
        now = time.monotonic()
        counts: dict[str, int] = {}
        for name, port in rows:
            counts[name] = counts.get(name, 0) + 1
            if port is not None:
                first, last = self.lifetimes.get((name, port), (now, now))
                if self.times and last < self.times[-1]:  # gone in between: a new connection
                    first = now
                self.lifetimes[(name, port)] = (first, now)
        self.times.append(now)
        self.samples.append(counts)
        if not self.per_process:
            return
        owners = _port_owners({p for _name, p in rows if p is not None}, self._server_port())
        held: dict[tuple[str, int], int] = {}
        for name, port in rows:
            pid = owners.get(port) if port is not None else None
            if pid is not None:
                held[(name, pid)] = held.get((name, pid), 0) + 1
        for (name, pid), n in held.items():
            self.most_per_process[name] = max(self.most_per_process.get(name, 0), n)
            if n > 1:
                self.crowded_processes.append((name, pid, n))


class PgBouncerClients(ConnectionSampler):
    """``ConnectionSampler`` on the client side of a pgbouncer: its admin console's ``SHOW
    CLIENTS`` (which keeps each client's ``application_name``), so that connections per tui-hpo
    process can be counted where the server sees only the pooler's few."""

    def __init__(self, bouncer: PgBouncer, **kwargs: Any) -> None:
        super().__init__(
            f"postgresql://postgres@127.0.0.1:{bouncer.port}/pgbouncer",
            database=bouncer.server.DATABASE,
            user=bouncer.server.USER,
            **kwargs,
        )

    def _connect(self) -> Any:
        import psycopg

        # the admin console speaks only the simple query protocol
        return psycopg.connect(
            self.admin_dsn, autocommit=True, connect_timeout=10, cursor_factory=psycopg.ClientCursor
        )

    def _rows(self, con: Any) -> list[tuple[str, int | None]]:
        cur = con.execute("SHOW CLIENTS")
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        return [
            (str(r.get("application_name") or ""), r.get("port"))
            for r in rows
            if r["database"] == self.database and (self.user is None or r["user"] == self.user)
        ]


def _port_owners(ports: set[int], server_port: int) -> dict[int, int]:
    """Which local process has the client end of each TCP connection to the server, by the
    connection's local port."""
    if not ports:
        return {}
    owners: dict[int, int] = {}
    for conn in psutil.net_connections(kind="tcp"):
        if not (conn.laddr and conn.raddr and conn.pid) or conn.raddr.port != server_port:
            continue
        if conn.laddr.port in ports:
            owners[conn.laddr.port] = conn.pid
    return owners
