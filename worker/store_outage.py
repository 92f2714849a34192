"""Is an error the ledger's database or Redis being unreachable, rather than the job's?

Such an error says nothing about the job: the task retries it with backoff until the
store is back (tasks/runner.py) instead of letting Celery acknowledge it away, and it
does not count toward the job's own retries. Errors are told apart by their class and,
for SQLite, by the result code, never by their message text.
"""

from __future__ import annotations

import sqlite3

import redis.exceptions
from sqlalchemy import exc as sa_exc

# SQLite primary result codes (https://sqlite.org/rescode.html) that mean "the database
# cannot be written or reached now", not "this statement is wrong".
SQLITE_OUTAGE_CODES = frozenset(
    {
        5,  # SQLITE_BUSY: another connection holds the write lock past the busy timeout
        6,  # SQLITE_LOCKED
        8,  # SQLITE_READONLY: file, directory or filesystem not writable
        10,  # SQLITE_IOERR
        13,  # SQLITE_FULL: disk full
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL: WAL lock protocol error
    }
)
# The ones after which a pooled connection must not be used again (worker/ledger/db.py).
SQLITE_STALE_CODES = frozenset({8, 10, 14})
# PostgreSQL's read_only_sql_transaction: the database (or a server that became a standby
# after a failover) refuses writes. A session keeps the read-only default it started
# with, so such a connection must not be used again either.
POSTGRES_READ_ONLY = "25006"


def sqlstate(error: BaseException | None) -> str | None:
    """The SQLSTATE of a PostgreSQL driver error (psycopg), else None."""
    code = getattr(error, "sqlstate", None)
    return code if isinstance(code, str) else None


class StoreUnavailable(RuntimeError):
    """The ledger's database or Redis did not answer; the job waits for it."""


def sqlite_code(error: BaseException | None) -> int | None:
    """The primary result code of a sqlite3 error (extended codes carry it in the low byte)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(error, sqlite3.Error) and isinstance(code, int) else None


def _is_outage(error: BaseException) -> bool:
    if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return True
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        if isinstance(error.orig, sqlite3.Error):
            return sqlite_code(error.orig) in SQLITE_OUTAGE_CODES
        if sqlstate(error.orig) == POSTGRES_READ_ONLY:
            return True
        # PEP 249: OperationalError is "not necessarily under the control of the
        # programmer" (lost connection, database refusing connections, shutdown).
        return isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)
    return False


def is_store_outage(error: BaseException) -> bool:
    """True if `error`, or an error it was raised from, is a database or Redis outage."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, StoreUnavailable) or _is_outage(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def describe(error: BaseException) -> str:
    """A short, log-safe description: the driver's error class and first line, without
    the statement and parameters SQLAlchemy appends (they hold job data)."""
    cause = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {first[:200]}" if first else type(cause).__name__
