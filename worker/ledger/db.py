"""Engine, sessions and automatic migrations (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from worker.settings import get_settings
from worker.store_outage import POSTGRES_READ_ONLY, SQLITE_STALE_CODES, sqlite_code, sqlstate

MIGRATIONS = Path(__file__).parent / "migrations"
_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Transactions are begun explicitly (see _sqlite_begin), not by the driver.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    """Take the write lock up front: with several worker processes a deferred
    transaction that reads and then writes would fail instead of waiting."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_stale(context: Any) -> None:
    """A connection that found the database read-only or unopenable (file permissions,
    a read-only filesystem) keeps failing after the cause is fixed: treat the error as a
    disconnect, so SQLAlchemy discards the pool's connections and opens fresh ones."""
    if sqlite_code(context.original_exception) in SQLITE_STALE_CODES:
        context.is_disconnect = True


def _postgres_read_only(context: Any) -> None:
    """A session that began while the database refused writes keeps refusing them after
    writes are allowed again: drop the pool's connections, as for a lost server."""
    if sqlstate(context.original_exception) == POSTGRES_READ_ONLY:
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
    """One unit of work: committed on success, rolled back on error."""
    with _session_factory()() as db, db.begin():
        yield db


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
