"""The ledger: uniqueness under concurrency, encrypted credentials, migrations."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, make_url, select

from tests.conftest import unique
from worker.jobs import job_id_for
from worker.ledger import store
from worker.ledger.db import engine, session
from worker.ledger.models import CANCELLED, DRAFTING, RECEIVED, RESOLVING, Job
from worker.tenancy.tenants import add_tenant, credentials_of, get_tenant


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


@pytest.fixture
def own_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """A ledger of its own (so that `keys rotate` touches no other test's tenants) and a
    way to change LEDGERPUSH_SECRET_KEY; the session's settings are back afterwards."""
    from worker import crypto
    from worker.ledger import db
    from worker.settings import get_settings

    def reload() -> None:
        get_settings.cache_clear()
        crypto._fernet.cache_clear()
        db._session_factory.cache_clear()
        db.engine.cache_clear()

    def use_keys(keys: str) -> None:
        monkeypatch.setenv("LEDGERPUSH_SECRET_KEY", keys)
        reload()

    session_engine = engine()
    monkeypatch.setenv("LEDGERPUSH_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    reload()
    try:
        yield use_keys
    finally:
        engine().dispose()
        monkeypatch.undo()
        reload()
        session_engine.dispose()
        session_url = session_engine.url.render_as_string(hide_password=False)
        assert get_settings().effective_database_url == session_url


def test_keys_rotate_keeps_credentials_readable(own_ledger: Callable[[str], None]) -> None:
    from cryptography.fernet import Fernet
    from typer.testing import CliRunner

    from worker.cli import app
    from worker.crypto import CredentialsUnreadable

    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    creds = {"access_token": "at-x", "refresh_token": "rt-" + os.urandom(8).hex()}
    own_ledger(key_a)
    add_tenant("rotated", "eaccounting", "NO", creds)
    add_tenant("no-credentials", "eaccounting", "NO", None)

    own_ledger(f"{key_b},{key_a}")
    result = CliRunner().invoke(app, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted the credentials of 1 tenants" in result.stdout

    own_ledger(key_b)
    assert credentials_of(get_tenant("rotated")) == creds
    own_ledger(key_a)
    with pytest.raises(CredentialsUnreadable):
        credentials_of(get_tenant("rotated"))


def test_session_settings_are_back_after_key_rotation() -> None:
    from worker.settings import get_settings

    assert get_settings().fernet_keys == [os.environ["LEDGERPUSH_SECRET_KEY"]]
    assert engine().url.database == make_url(os.environ["LEDGERPUSH_DATABASE_URL"]).database
    tenant_id = unique("t")
    add_tenant(tenant_id, "eaccounting", "NO", {"refresh_token": "rt-y"})
    assert credentials_of(get_tenant(tenant_id)) == {"refresh_token": "rt-y"}


def test_migrations_create_every_table() -> None:
    with engine().connect() as conn:
        names = set(engine().dialect.get_table_names(conn))
    assert {"jobs", "attempts", "tenants", "job_events", "alembic_version"} <= names


def _fresh_job() -> Job:
    tenant, key = "attempts-tenant", unique("attempt")
    job, created = store.accept_job(job_id_for(tenant, key), tenant, key, "invoice", {"k": key})
    assert created
    return job


def test_the_first_intent_counts_the_attempt_in_its_own_transaction() -> None:
    """The pipeline's first write of a run: attempt row, count, RESOLVING and the intent
    in one transaction, with the same events as counting it on its own would leave."""
    job = _fresh_job()
    start = store.AttemptStart("w1", RESOLVING, unchanged_since=job.updated_at)
    started = store.advance(job.id, DRAFTING, intent={"step": "draft"}, begin=start)
    assert started is not None
    attempt_id, number = started
    after = store.get_job(job.id)
    assert (after.state, after.attempts, after.intent) == (DRAFTING, 1, {"step": "draft"})
    assert [e.to_state for e in store.events_of(job.id)] == [RECEIVED, RESOLVING, DRAFTING]
    assert [(a.id, a.number, a.worker) for a in store.attempts_of(job.id)] == [
        (attempt_id, number, "w1")
    ]
    assert number == 1


def test_a_job_changed_since_it_was_read_is_not_written() -> None:
    """An operator cancelled the job between its insert and the run's first write: the
    intent is refused and nothing of the run is written."""
    job = _fresh_job()
    store.transition(job.id, CANCELLED, actor="ops@example.com", note="cancelled")
    start = store.AttemptStart("w1", RESOLVING, unchanged_since=job.updated_at)
    with pytest.raises(store.JobChanged):
        store.advance(job.id, DRAFTING, intent={"step": "draft"}, begin=start)
    after = store.get_job(job.id)
    assert (after.state, after.attempts, after.intent) == (CANCELLED, 0, None)
    assert store.attempts_of(job.id) == []
