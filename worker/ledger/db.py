"""Engine, sessions and automatic migrations (SQLite by default, PostgreSQL by URL).

Two kinds of transaction: `session()` writes (on SQLite it takes the write lock at
BEGIN), `read_session()` / `read_connection()` only read (on SQLite a deferred BEGIN:
WAL mode gives it a snapshot and it never blocks a writer, however long it stays open).
A statement that tries to write in a read transaction raises `WriteInReadTransaction`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from worker.settings import get_settings
from worker.store_outage import POSTGRES_READ_ONLY, SQLITE_STALE_CODES, sqlite_code, sqlstate

MIGRATIONS = Path(__file__).parent / "migrations"
_migrated: set[str] = set()
_migrate_lock = threading.Lock()
#: Execution option of a connection whose transaction only reads.
_READ_ONLY = "ledgerpush_read_only"
#: What a read transaction is given: our marker, and PostgreSQL's `BEGIN READ ONLY`
#: (other dialects ignore the option).
_READ_OPTIONS: dict[str, Any] = {_READ_ONLY: True, "postgresql_readonly": True}
#: Key in a pooled SQLite connection's info: whether `PRAGMA query_only` is on for it.
_QUERY_ONLY = "ledgerpush_query_only"


class WriteInReadTransaction(RuntimeError):
    """A statement tried to change the ledger inside a read-only transaction: the
    caller's mistake (writes belong in `session()`), not a database outage."""

    def __init__(self) -> None:
        super().__init__("a statement tried to write in a read-only ledger transaction")


def _reads_only(conn: Connection | None) -> bool:
    return conn is not None and bool(conn.get_execution_options().get(_READ_ONLY))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Transactions are begun explicitly (see _sqlite_begin), not by the driver.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """A writer takes the write lock up front: with several worker processes a deferred
    transaction that reads and then writes would fail instead of waiting. A reader
    begins deferred and takes no lock, with `query_only` on: a write in it fails at
    once, where it would otherwise try to upgrade to the write lock."""
    reads_only = _reads_only(conn)
    info = conn.connection.info
    if info.get(_QUERY_ONLY, False) != reads_only:
        # Only when the pooled connection changes between reading and writing; on the
        # driver's connection directly (a connection setting: a fifth of the CPU).
        driver = conn.connection.driver_connection
        assert driver is not None  # checked out
        driver.execute(f"PRAGMA query_only = {int(reads_only)}")
        info[_QUERY_ONLY] = reads_only
    conn.exec_driver_sql("BEGIN" if reads_only else "BEGIN IMMEDIATE")


def _sqlite_stale(context: Any) -> None:
    """A connection that found the database read-only or unopenable (file permissions,
    a read-only filesystem) keeps failing after the cause is fixed: treat the error as a
    disconnect, so SQLAlchemy discards the pool's connections and opens fresh ones.
    In a read transaction, plain SQLITE_READONLY is `query_only` refusing a write."""
    error = context.original_exception
    refused = getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_READONLY
    if refused and _reads_only(context.connection):
        raise WriteInReadTransaction()
    if sqlite_code(error) in SQLITE_STALE_CODES:
        context.is_disconnect = True


def _postgres_read_only(context: Any) -> None:
    """A session that began while the database refused writes keeps refusing them after
    writes are allowed again: drop the pool's connections, as for a lost server. In a
    read transaction the refusal is its own READ ONLY, met by a write."""
    if sqlstate(context.original_exception) == POSTGRES_READ_ONLY:
        if _reads_only(context.connection):
            raise WriteInReadTransaction()
        context.is_disconnect = True


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        event.listen(engine, "handle_error", _sqlite_stale)
        return engine
    # pool_pre_ping: a connection the server closed (restart, outage, terminated backend)
    # is replaced on checkout instead of failing the job that drew it.
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    event.listen(engine, "handle_error", _postgres_read_only)
    return engine


@functools.cache
def engine() -> Engine:
    url = get_settings().effective_database_url
    eng = make_engine(url)
    migrate(eng)
    return eng


def open_ledger() -> None:
    """Connect and migrate now (a process that serves or works does it at start)."""
    engine()


def close_ledger_connections() -> None:
    """Close this process's pooled connections, if it opened any (so its database can be
    dropped)."""
    if engine.cache_info().currsize:
        engine().dispose()


def ping() -> None:
    """One round trip to the database; raises when it does not answer."""
    with session() as db:
        db.execute(text("SELECT 1"))


@functools.cache
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(engine(), expire_on_commit=False)


@contextlib.contextmanager
def session() -> Iterator[Session]:
    """One unit of work that may write: committed on success, rolled back on error."""
    with _session_factory()() as db, db.begin():
        yield db


@contextlib.contextmanager
def read_session() -> Iterator[Session]:
    """A unit of work that only reads (on SQLite in one snapshot); it never takes
    SQLite's write lock, so a slow reader holds up no writer."""
    with _session_factory()() as db, db.begin():
        db.connection(execution_options=_READ_OPTIONS)
        yield db


@contextlib.contextmanager
def read_connection() -> Iterator[Connection]:
    """`read_session` for Core statements, without the ORM."""
    with engine().connect() as conn:
        conn.execution_options(**_READ_OPTIONS)
        with conn.begin():
            yield conn


@contextlib.contextmanager
def _migration_lock(eng: Engine) -> Iterator[None]:
    """Several processes start at once; only one may migrate at a time."""
    if eng.dialect.name == "postgresql":
        with eng.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(74110)"))
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(74110)"))
                conn.commit()
        return
    database = eng.url.database or ""
    lock_path = Path(database + ".migrate.lock") if database else None
    if lock_path is None or database == ":memory:":
        yield
        return
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def alembic_config(eng: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = eng
    return cfg


def migrate(eng: Engine) -> None:
    """Apply every migration up to head (idempotent, once per process and URL)."""
    key = eng.url.render_as_string(hide_password=False)
    with _migrate_lock:
        if key in _migrated:
            return
        with _migration_lock(eng):
            command.upgrade(alembic_config(eng), "head")
        _migrated.add(key)
