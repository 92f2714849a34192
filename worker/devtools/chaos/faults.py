"""What `ledgerpush chaos` does to the ledger's database and the queues, fault by fault.

The database faults reach only the run's own database:

- PostgreSQL, db-outage: `ALTER DATABASE <it> ALLOW_CONNECTIONS false` and its sessions
  terminated, as a server restart or a network partition looks to the workers.
- PostgreSQL, db-readonly: `ALTER DATABASE <it> SET default_transaction_read_only = on`
  and its sessions terminated, so that every new session refuses writes (SQLSTATE 25006),
  as after a failover to a standby; at the end the setting is reset and nothing else is
  done: the workers must drop the read-only sessions themselves.
- SQLite has no server to refuse connections and no read-only switch that reaches other
  processes' open connections (`PRAGMA query_only` is per connection; file permissions
  are checked only when a file is opened; a read-only mount needs root). So for both
  faults another connection holds the write lock for the window, longer than the busy
  timeout: in WAL mode readers still read, every writer waits and then gets SQLITE_BUSY,
  which is a read-only database to everyone; the workers, which begin every transaction
  by taking the write lock, find it down.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import make_url

from worker.devtools.localstack import (
    create_postgres_database,
    drop_postgres_database,
    libpq_url,
)

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
#: PRAGMA busy_timeout of the ledger's SQLite connections (worker/ledger/db.py): a writer
#: waits this long for the lock before it fails.
SQLITE_BUSY_SECONDS = 30.0
POISON_MARKER = "chaos-poison"


@dataclass
class ChaosDatabase:
    """The ledger of one run: `url` for the workers; `admin` (PostgreSQL) reaches the
    server through another database to switch this one off and on; `created` is dropped
    at the end."""

    url: str
    admin: str | None = None
    created: str | None = None
    _holder: sqlite3.Connection | None = field(default=None, repr=False)

    @classmethod
    def sqlite(cls, path: str) -> ChaosDatabase:
        return cls(f"sqlite:///{path}")

    @classmethod
    def given(cls, url: str) -> ChaosDatabase:
        """An existing, empty database (LEDGERPUSH_CHAOS_DATABASE_URL); kept afterwards."""
        if url.startswith("sqlite"):
            return cls(url)
        return cls(url, admin=libpq_url(url, "postgres"))

    @classmethod
    def throwaway_postgres(cls, server: str) -> ChaosDatabase:
        """A new database on the server at `server`, dropped by `drop()`."""
        url = create_postgres_database(server, "ledgerpush_chaos")
        return cls(url, admin=libpq_url(server), created=make_url(url).database)

    @property
    def kind(self) -> str:
        return "postgresql" if self.admin else "sqlite"

    @property
    def name(self) -> str:
        return make_url(self.url).database or ""

    def window(self, seconds: float) -> float:
        """How long a fault must last to be `seconds` of refused writes: on SQLite a
        writer only fails once it has waited out the busy timeout."""
        return seconds + SQLITE_BUSY_SECONDS if self.admin is None else seconds

    def _admin(self, *statements: str) -> None:
        import psycopg

        assert self.admin is not None
        with psycopg.connect(self.admin, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.name,),
            )

    def _hold_write_lock(self) -> None:
        holder = sqlite3.connect(
            self.name, timeout=120, isolation_level=None, check_same_thread=False
        )
        holder.execute("BEGIN EXCLUSIVE")
        self._holder = holder

    def _release_write_lock(self) -> None:
        if self._holder is not None:
            self._holder.execute("ROLLBACK")
            self._holder.close()
            self._holder = None

    def outage(self) -> tuple[Callable[[], None], Callable[[], None]]:
        """(start, end) of a window in which the database cannot be used."""
        if self.admin is None:
            return self._hold_write_lock, self._release_write_lock
        quoted = f'"{self.name}"'
        return (
            lambda: self._admin(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS false"),
            lambda: self._admin_only(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS true"),
        )

    def read_only(self) -> tuple[Callable[[], None], Callable[[], None]]:
        """(start, end) of a window in which the database refuses writes."""
        if self.admin is None:
            return self._hold_write_lock, self._release_write_lock
        quoted = f'"{self.name}"'
        return (
            lambda: self._admin(f"ALTER DATABASE {quoted} SET default_transaction_read_only = on"),
            lambda: self._admin_only(
                f"ALTER DATABASE {quoted} RESET default_transaction_read_only"
            ),
        )

    def _admin_only(self, statement: str) -> None:
        import psycopg

        assert self.admin is not None
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(statement)

    def end_faults(self) -> None:
        """Whatever window is still open ends (an interrupted run)."""
        self._release_write_lock()
        if self.admin is not None:
            quoted = f'"{self.name}"'
            self._admin_only(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS true")
            self._admin_only(f"ALTER DATABASE {quoted} RESET default_transaction_read_only")

    def drop(self) -> None:
        if self.created is not None:
            drop_postgres_database(self.url)


# -- poison messages --------------------------------------------------------------------


def _envelope(marker: str, body: str, task: str, **changes: Any) -> bytes:
    """A Celery protocol-2 message (the README's shape) with `body` as given."""
    message: dict[str, Any] = {
        "body": body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "py", "task": task, "id": marker, "root_id": marker},
        "properties": {
            "correlation_id": marker,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": "ledgerpush.invoices"},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": marker,
        },
        **changes,
    }
    return json.dumps(message).encode()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


#: Malformed raw messages, each one the poison list must take (worker/transport/poison.py); none
#: of them decodes to a job, so none may become a ledger row.
POISON_MAKERS: tuple[Callable[[str, str], bytes], ...] = (
    lambda m, t: f"this is not json at all {{ {m}".encode(),
    lambda m, t: b"\xff\xfe" + m.encode(),
    lambda m, t: json.dumps({"hello": "world", "m": m}).encode(),
    lambda m, t: json.dumps([m]).encode(),
    lambda m, t: _envelope(m, "%%% not base64 %%%", t),
    lambda m, t: _envelope(m, _b64('{"a": 1}'), t),
    lambda m, t: _envelope(m, _b64("[[{]"), t),
    lambda m, t: _envelope(m, _b64("[[], {}, {}]"), "ledgerpush.no_such_task"),
    lambda m, t: _envelope(m, _b64("[" * 10_000 + "]" * 10_000), t),
)


def poison_message(number: int, task: str) -> bytes:
    """The `number`th poison message of a run, marked so that the verdict can find it."""
    marker = f"{POISON_MARKER}-{number:05d}"
    return POISON_MAKERS[number % len(POISON_MAKERS)](marker, task)


def poisoned_markers(raw_entries: list[bytes]) -> set[str]:
    """The chaos markers found in the raw messages of the poison list's entries."""
    found: set[str] = set()
    for raw in raw_entries:
        start = raw.find(POISON_MARKER.encode())
        if start >= 0:
            found.add(raw[start : start + len(POISON_MARKER) + 6].decode("ascii", "replace"))
    return found


def broken_copy(job: dict[str, Any], number: int) -> tuple[str, bytes]:
    """A job's message sent again by a broken producer in another language: the same
    tenant and key, a money field as a JSON number (the contract takes money as a
    string). Returns its queue and raw message; a worker keeps it as an invalid job of
    its own, never over the valid one."""
    from worker.tasknames import QUEUE_FOR_TASK, TASK_FOR_KIND

    copy = json.loads(json.dumps(job))
    if job["kind"] == "payment":
        copy["payment"]["amount"] = float(copy["payment"]["amount"])
    else:
        line = copy[job["kind"]]["lines"][0]
        line["unit_price"] = float(line["unit_price"])
    options = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    body = _b64(json.dumps([[copy], {}, options]))
    task = TASK_FOR_KIND[job["kind"]]
    return QUEUE_FOR_TASK[task], _envelope(f"chaos-broken-{number:05d}", body, task)
