"""SQL lives in worker/ledger/: the rest of the runtime calls its read models and write
functions (worker/ledger/queries.py, tenancy.py, …) and formats what they return.

The scan fails on a module outside the ledger that opens a session, an engine or a
direct database connection, or imports SQLAlchemy's statement builders. Catching a
database error (`sqlalchemy.exc`, `sqlite3.Error`) is not SQL and is allowed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]

SQL_USE = (
    # select/update/insert/delete, text, Session, Table… (error classes are fine)
    re.compile(r"^\s*from sqlalchemy(\.(orm|sql|engine))? import (?!exc\b)"),
    re.compile(r"^\s*import sqlalchemy\b"),
    re.compile(r"(?<![\w.])session\("),
    re.compile(r"(?<![\w.])read_(session|connection)\("),
    re.compile(r"(?<![\w.])engine\("),
    re.compile(r"\b(sqlite3|psycopg)\.connect\("),
)

#: Paths (a trailing slash: a whole package) that may hold SQL, and why.
KNOWN_EXCEPTIONS = {
    "worker/devtools/chaos/faults.py": (
        "the chaos run's fault injector acts on the database server itself (creates a "
        "database, holds its write lock, revokes writes), not on the ledger's rows"
    ),
    "worker/devtools/localstack.py": (
        "the local stack creates and drops throw-away PostgreSQL databases on the server, "
        "never touching a ledger's rows"
    ),
}


def _excepted(path: str) -> bool:
    return any(
        path.startswith(known) if known.endswith("/") else path == known
        for known in KNOWN_EXCEPTIONS
    )


def sql_outside_ledger() -> list[str]:
    """`path:line: text` of every SQL use outside worker/ledger/ and the known exceptions."""
    found = []
    for file in sorted((ROOT / "worker").rglob("*.py")):
        path = file.relative_to(ROOT).as_posix()
        if path.startswith("worker/ledger/") or _excepted(path):
            continue
        for number, line in enumerate(file.read_text().splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            if any(pattern.search(line) for pattern in SQL_USE):
                found.append(f"{path}:{number}: {line.strip()}")
    return found


def test_sql_stays_in_the_ledger_package() -> None:
    found = sql_outside_ledger()
    assert not found, (
        "SQL outside worker/ledger/: move it into a read-model or write function there "
        "and call that instead:\n" + "\n".join(found)
    )


def test_every_known_exception_exists() -> None:
    missing = [path for path in KNOWN_EXCEPTIONS if not (ROOT / path).exists()]
    assert not missing, f"remove these from KNOWN_EXCEPTIONS, they are gone: {missing}"


def test_the_scan_finds_sql() -> None:
    offending = [
        "from sqlalchemy import select",
        "from sqlalchemy.orm import Session",
        "    with session() as db:",
        "    with read_session() as db:",
        "    with read_connection() as conn:",
        "    with engine().begin() as conn:",
        "    conn = sqlite3.connect(path)",
    ]
    allowed = [
        "from sqlalchemy import exc as sa_exc",
        "from sqlalchemy.exc import SQLAlchemyError",
        "    token = start_session(user)",
        "    eng = make_engine(url)",
    ]
    assert all(any(p.search(line) for p in SQL_USE) for line in offending)
    assert not any(any(p.search(line) for p in SQL_USE) for line in allowed)
