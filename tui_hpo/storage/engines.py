"""Opening a storage so that many processes can share it.

SQLite is tuned for several worker processes on one machine: WAL journal (readers never block
the writer), a long busy timeout (writers queue instead of failing with "database is locked"),
``synchronous=NORMAL`` (safe with WAL, far fewer fsyncs).

A database server (PostgreSQL, MySQL) is shared by hundreds of processes, so each one opens at
most one connection (``storage.pool``) and names itself in it (``application_name``: ``tui-hpo
worker``, ``supervisor``, ``launch``, ``app`` or ``command``, set once per process by
``act_as``), so ``pg_stat_activity`` tells who holds what. A server out of connection slots
("too many clients") is a crowd, not a failure: every process but the app waits for a slot with
jittered backoff; the app fails the read at once, shows the storage as away and tries again on
its next poll. Nothing depends on session state that pgbouncer's transaction pooling breaks:
psycopg never prepares statements on the server (``prepare_threshold=None``) and no lock
outlives a transaction (``control.budget``). Every server connection has a connect timeout, so
an unreachable server is reported within seconds.

Optuna's tables are created from Optuna's own models and alembic revisions, and never altered.
tui-hpo's own tables (see ``storage.tables``) sit beside them in the same database.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_hpo.errors import UserError, one_line
from tui_hpo.storage.pool import LeanPool, set_keep
from tui_hpo.storage.urls import StorageURL

if TYPE_CHECKING:
    import optuna
    import sqlalchemy

SQLITE_BUSY_TIMEOUT_S = 120
"""How long a SQLite writer waits for the lock. Long, because 16 workers ending trials at once
queue for it; a short wait only turns queueing into "database is locked" failures."""

CONNECT_TIMEOUT_S = 10

ROLES = ("worker", "supervisor", "launch", "app", "command")
_role = "command"

log = logging.getLogger(__name__)


def act_as(role: str) -> None:
    """Name what this process is, for its connections: set once, at the start of a command,
    before it opens the storage."""
    global _role
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    _role = role


def role() -> str:
    return _role


def check_reachable(target: StorageURL, *, must_exist: bool) -> None:
    """Fail with one line when the database can't be opened, before anything is written.

    ``must_exist`` is for commands that only read: they must not leave an empty SQLite file
    behind when the user mistyped its path.
    """
    _listen_for_crowds()
    if target.is_sqlite:
        assert target.sqlite_path is not None
        path = target.sqlite_path
        if not path.exists():
            if must_exist:
                raise UserError(f"no storage at {target.masked}: the file {path} does not exist")
            if not path.parent.is_dir():
                raise UserError(
                    f"can't create storage {target.masked}: folder {path.parent} does not exist"
                )
            return
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            try:
                con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise UserError(f"can't open storage {target.masked}: {exc}") from None
        return
    engine = _engine_for_check(target)
    try:
        with engine.connect() as con:
            con.exec_driver_sql("SELECT 1")
    except Exception as exc:  # the driver's own error types vary; all mean "can't reach"
        raise UserError(f"can't reach storage {target.masked}: {one_line(exc)}") from None
    finally:
        engine.dispose()


def _engine_for_check(target: StorageURL) -> sqlalchemy.Engine:
    import sqlalchemy

    try:
        return sqlalchemy.create_engine(
            target.url, connect_args=_connect_args(target), poolclass=sqlalchemy.pool.NullPool
        )
    except ModuleNotFoundError as exc:
        raise UserError(f"storage {target.masked} needs the {exc.name} driver") from None
    except Exception as exc:
        raise UserError(f"malformed storage URL {target.masked}: {one_line(exc)}") from None


def _connect_args(target: StorageURL) -> dict[str, Any]:
    if target.is_sqlite:
        return {"timeout": SQLITE_BUSY_TIMEOUT_S}
    if target.backend == "postgresql":
        args: dict[str, Any] = {
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": f"tui-hpo {_role}",
        }
        if _driver(target) == "psycopg":  # psycopg 3 prepares repeated statements by default
            args["prepare_threshold"] = None
        return args
    if target.backend == "mysql":
        return {"connect_timeout": CONNECT_TIMEOUT_S}
    return {}


def _driver(target: StorageURL) -> str:
    import sqlalchemy

    return sqlalchemy.engine.make_url(target.url).get_driver_name()


def _engine_kwargs(target: StorageURL) -> dict[str, Any]:
    """Connect arguments, and on a server the pool of one (``storage.pool``); a supervisor only
    polls, so it keeps no connection between polls."""
    kwargs: dict[str, Any] = {"connect_args": _connect_args(target)}
    if not target.is_sqlite:
        kwargs["poolclass"] = LeanPool
    return kwargs


def _keeps_connection() -> bool:
    return _role != "supervisor"


# too many clients ----------------------------------------------------------------------------

CROWD_FIRST_WAIT_S = 0.2
CROWD_MAX_WAIT_S = 5.0

_CROWDED = (
    "too many clients",  # PostgreSQL: max_connections reached
    "remaining connection slots are reserved",  # PostgreSQL: only superuser slots left
    "too many connections",  # MySQL; pgbouncer's max_client_conn ("no more connections")
    "no more connections allowed",  # pgbouncer
)


def crowded(exc: BaseException) -> bool:
    """Whether the server refused a connection for want of a free slot: worth waiting for."""
    text = str(exc).lower()
    return any(words in text for words in _CROWDED)


def _connect_waiting(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """SQLAlchemy's connect, waiting out a server that has no free slot (every process but the
    app, which shows the storage as away instead). Jittered, so that a hundred workers turned
    away at once don't all knock again at the same moment."""
    if dialect.name == "sqlite" or _role == "app":
        return None  # SQLAlchemy's own connect
    wait = CROWD_FIRST_WAIT_S
    warned = False
    while True:
        try:
            connection = dialect.connect(*cargs, **cparams)
        except Exception as exc:
            if not crowded(exc):
                raise
            if not warned:
                log.warning("the database server has no free connection slot; waiting for one")
                warned = True
            time.sleep(random.uniform(0.5, 1.0) * wait)
            wait = min(CROWD_MAX_WAIT_S, wait * 2)
            continue
        if warned:
            log.info("got a connection slot")
        return connection


def _listen_for_crowds() -> None:
    import sqlalchemy

    if not sqlalchemy.event.contains(sqlalchemy.engine.Engine, "do_connect", _connect_waiting):
        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "do_connect", _connect_waiting)


def _tune_sqlite(path: Path) -> None:
    """Switch the file to WAL once; the mode is stored in the file and outlives connections.

    Asking for WAL can fail at once with "database is locked" (SQLite doesn't always wait its
    busy timeout there) while another process closes the last connection and checkpoints,
    which happens whenever workers end while a command opens the storage: retried here. (The
    mode is not read from the file's header instead: opening and closing the database file
    outside SQLite drops the POSIX locks this process's SQLite connections hold on it.)"""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        con = sqlite3.connect(str(path), timeout=SQLITE_BUSY_TIMEOUT_S)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise UserError(f"can't open storage sqlite:///{path}: {exc}") from None
        finally:
            con.close()
        time.sleep(0.05)


def _on_sqlite_connect(dbapi_con: Any, _record: Any) -> None:
    cur = dbapi_con.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


@dataclass(frozen=True)
class Heartbeat:
    """Heartbeat settings for RDB storages: on by default, so a dead worker's trial ends FAIL."""

    interval: int = 10
    grace_period: int | None = None
    retry_failed: int | None = None

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise UserError("--heartbeat-interval must be at least 1 second")
        if self.grace_period is not None and self.grace_period < self.interval:
            raise UserError("--grace-period must be at least the heartbeat interval")
        if self.retry_failed is not None and self.retry_failed < 0:
            raise UserError("--retry-failed must be 0 or more")

    @property
    def grace(self) -> int:
        return self.grace_period if self.grace_period is not None else 2 * self.interval


def open_storage(
    target: StorageURL,
    *,
    heartbeat: Heartbeat | None = None,
    must_exist: bool = False,
    stale_callback: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    pre_ping: bool = False,
) -> optuna.storages.RDBStorage:
    """Open (creating Optuna's tables if needed) a storage shared by many processes.

    Raises UserError for anything the user can fix: bad URL, server down, not an Optuna
    storage, or a schema version this Optuna doesn't know.

    ``pre_ping`` checks each pooled connection before use (one more round trip each time):
    for the app, which has no retry around its reads. Workers retry instead (``retry``); after
    a disconnect SQLAlchemy drops the whole pool's older connections by itself.
    """
    import optuna
    import sqlalchemy

    check_reachable(target, must_exist=must_exist)
    if target.is_sqlite:
        assert target.sqlite_path is not None
        _tune_sqlite(target.sqlite_path)
    hb = heartbeat or Heartbeat()
    callback = stale_callback
    if callback is None and hb.retry_failed:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=hb.retry_failed)
    engine_kwargs = _engine_kwargs(target)
    if pre_ping and not target.is_sqlite:
        engine_kwargs["pool_pre_ping"] = True
    for attempt in range(5):
        try:
            if not target.is_sqlite:
                _create_optuna_schema(target)
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna's words
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    target.url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=hb.interval,
                    grace_period=hb.grace_period,
                    heartbeat_stale_trial_callback=callback,
                    skip_compatibility_check=not target.is_sqlite,
                )
                if not target.is_sqlite:
                    _check_schema(storage)
            break
        except RuntimeError as exc:  # Optuna's schema-version mismatch
            raise UserError(f"storage {target.masked}: {one_line(exc)}") from None
        except sqlalchemy.exc.SQLAlchemyError as exc:
            # two processes creating Optuna's tables in a new database at once (a status
            # beside a first launch): the loser sees "already exists"; the tables are there now
            racing = "already exists" in str(exc) or "duplicate key" in str(exc)
            if not racing or attempt == 4:
                raise UserError(f"can't open storage {target.masked}: {one_line(exc)}") from None
            time.sleep(0.2 * (attempt + 1))
    if target.is_sqlite:
        sqlalchemy.event.listen(storage.engine, "connect", _on_sqlite_connect)
        storage.engine.dispose()  # later connections get the pragmas
    else:
        set_keep(storage.engine, _keeps_connection())
    from tui_hpo.storage import tables

    tables.ensure(storage.engine)
    return storage


def _create_optuna_schema(target: StorageURL) -> None:
    """Optuna's tables in a new database, as Optuna creates them, on one connection.

    Optuna's first open of an empty database asks, inside a transaction, for a second
    connection (``_VersionManager._init_alembic`` reading ``version_info``): the one moment a
    process would hold two. Here the tables, the ``version_info`` row and the alembic stamp at
    head are written in one transaction instead, so that Optuna finds them all there and never
    nests. Two processes racing to do it: the loser's transaction fails with "already exists"
    or "duplicate key", which ``open_storage`` retries; on PostgreSQL DDL is transactional, so
    nothing half-made is left. A database with Optuna's tables is left alone."""
    import optuna
    import sqlalchemy
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from optuna.storages._rdb import models
    from optuna.storages._rdb import storage as rdb_storage

    engine = _engine_for_check(target)
    try:
        with engine.begin() as con:
            if sqlalchemy.inspect(con).has_table(models.VersionInfoModel.__tablename__):
                return
            models.BaseModel.metadata.create_all(con)
            con.execute(
                sqlalchemy.insert(models.VersionInfoModel.__table__).values(
                    schema_version=models.SCHEMA_VERSION, library_version=optuna.__version__
                )
            )
            here = Path(rdb_storage.__file__).parent
            config = Config(str(here / "alembic.ini"))
            config.set_main_option(
                "script_location", rdb_storage.escape_alembic_config_value(str(here / "alembic"))
            )
            script = ScriptDirectory.from_config(config)
            MigrationContext.configure(con).stamp(script, script.get_current_head())
    finally:
        engine.dispose()


def _check_schema(storage: optuna.storages.RDBStorage) -> None:
    """Optuna's schema-version check, without its nesting: Optuna reads the alembic revision on
    a second connection while its first one is inside a transaction, which behind pgbouncer
    (transaction pooling) holds a server connection while waiting for another; ten workers
    starting at once on a pool of four waited on each other until pgbouncer's
    ``query_wait_timeout``. Asked one connection after the other here, and Optuna's own check
    (with its own words) only when the versions differ."""
    manager = storage._version_manager
    if manager.get_current_version() != manager.get_head_version():
        manager.check_table_schema_compatibility()  # raises RuntimeError with Optuna's advice


def open_engine(
    target: StorageURL, *, must_exist: bool = False, ensure_tables: bool = True
) -> sqlalchemy.Engine:
    """A plain SQLAlchemy engine on the storage, tuned like ``open_storage``'s, without Optuna:
    for the supervisor, which only reads and writes tui-hpo's own rows. ``ensure_tables`` off
    while a launch may still be creating the schema (no race to create the same tables)."""
    import sqlalchemy

    check_reachable(target, must_exist=must_exist)
    engine = sqlalchemy.create_engine(target.url, **_engine_kwargs(target))
    set_keep(engine, _keeps_connection())
    if target.is_sqlite:
        sqlalchemy.event.listen(engine, "connect", _on_sqlite_connect)
    if ensure_tables:
        from tui_hpo.storage import tables

        tables.ensure(engine)
    return engine


def load_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """The study called ``name``, or one line naming the studies that do exist."""
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in storage.get_all_studies()]
        known = ", ".join(sorted(names)[:10]) or "none"
        raise UserError(f"no study named {name!r} in this storage (studies: {known})") from None
