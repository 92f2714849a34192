"""The ledger: uniqueness under concurrency, encrypted credentials, migrations."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import func, select

from tests.conftest import unique
from worker.jobs import job_id_for
from worker.ledger import store
from worker.ledger.db import engine, session
from worker.ledger.models import Job
from worker.tenants import add_tenant, credentials_of, get_tenant


def _accept(args: tuple[str, str]) -> bool:
    tenant, key = args
    _, created = store.accept_job(job_id_for(tenant, key), tenant, key, "invoice", {"k": key})
    return created


def _count(tenant: str, key: str) -> int:
    with session() as db:
        return int(
            db.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.tenant_id == tenant, Job.idempotency_key == key)
            )
            or 0
        )


def test_same_key_accepted_once_across_threads() -> None:
    tenant, key = unique("t"), "inv-1"
    with ThreadPoolExecutor(16) as pool:
        created = list(pool.map(_accept, [(tenant, key)] * 32))
    assert created.count(True) == 1
    assert _count(tenant, key) == 1


def test_same_key_accepted_once_across_processes() -> None:
    tenant, key = unique("t"), "inv-2"
    engine().dispose()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        created = pool.map(_accept, [(tenant, key)] * 16)
    assert created.count(True) == 1
    assert _count(tenant, key) == 1


def test_credentials_encrypted_at_rest() -> None:
    tenant_id = unique("t")
    secret = "rt-" + os.urandom(8).hex()
    add_tenant(tenant_id, "eaccounting", "NO", {"access_token": "at-x", "refresh_token": secret})
    assert credentials_of(get_tenant(tenant_id))["refresh_token"] == secret
    with session() as db:
        raw = db.execute(select(Job.id).limit(1))
        del raw
    url = engine().url
    if url.get_backend_name() == "sqlite":
        assert url.database
        for path in Path(url.database).parent.glob(Path(url.database).name + "*"):
            assert secret.encode() not in path.read_bytes()
    with engine().connect() as conn:
        stored = conn.exec_driver_sql(
            f"SELECT credentials FROM tenants WHERE id = '{tenant_id}'"
        ).scalar()
    assert secret.encode() not in bytes(stored)


def test_key_rotation_keeps_credentials_readable(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet, MultiFernet

    old, new = Fernet.generate_key(), Fernet.generate_key()
    token = Fernet(old).encrypt(b'{"a": 1}')
    rotated = MultiFernet([Fernet(new), Fernet(old)]).rotate(token)
    assert Fernet(new).decrypt(rotated) == b'{"a": 1}'


def test_migrations_create_every_table() -> None:
    with engine().connect() as conn:
        names = set(engine().dialect.get_table_names(conn))
    assert {"jobs", "attempts", "tenants", "job_events", "alembic_version"} <= names
