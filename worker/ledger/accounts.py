"""Rows of operator accounts (users) and API keys: what the web's account functions read
and write. Hashing, validation and the settings admin stay with the caller."""

from __future__ import annotations

import datetime as dt
import hmac

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.ledger.db import read_session, session
from worker.ledger.models import ApiKey, User, utcnow


class UsernameTaken(ValueError):
    """A user with this name exists already."""


def insert_user(username: str, password_hash: str, role: str) -> None:
    try:
        with session() as db:
            db.add(User(username=username, password_hash=password_hash, role=role))
    except IntegrityError:
        raise UsernameTaken(username) from None


def _user(db: Session, username: str) -> User | None:
    return db.scalars(select(User).where(User.username == username)).first()


def update_password_hash(username: str, password_hash: str) -> bool:
    """False when there is no such user."""
    return _update_user(username, password_hash=password_hash)


def update_role(username: str, role: str) -> bool:
    """False when there is no such user."""
    return _update_user(username, role=role)


def _update_user(username: str, **columns: str) -> bool:
    with session() as db:
        user = _user(db, username)
        if user is None:
            return False
        for name, value in columns.items():
            setattr(user, name, value)
        return True


def delete_user(username: str) -> bool:
    """False when there is no such user."""
    with session() as db:
        user = _user(db, username)
        if user is None:
            return False
        db.delete(user)
        return True


def role_of_user(username: str) -> str | None:
    """The role stored for the user; None: no such row."""
    with read_session() as db:
        return db.scalar(select(User.role).where(User.username == username))


def find_user(username: str) -> User | None:
    with read_session() as db:
        return _user(db, username)


def usernames() -> list[str]:
    with read_session() as db:
        return list(db.scalars(select(User.username).order_by(User.username)))


def usernames_and_roles() -> list[tuple[str, str]]:
    with read_session() as db:
        return list(db.execute(select(User.username, User.role).order_by(User.username)).tuples())


def insert_api_key(name: str, prefix: str, key_hash: str, scopes: str) -> None:
    with session() as db:
        db.add(ApiKey(name=name, prefix=prefix, key_hash=key_hash, scopes=scopes))


def use_api_key(prefix: str, key_hash: str, resolution: dt.timedelta) -> ApiKey | None:
    """The key row with this prefix when it is not revoked and its hash is `key_hash`;
    its last use is recorded, at most once per `resolution`. The check only reads, so a
    producer's requests do not queue for SQLite's write lock; the rare write is its own
    transaction, and does nothing if another request recorded the use meanwhile."""
    with read_session() as db:
        row = db.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    if row is None or row.revoked or not hmac.compare_digest(row.key_hash, key_hash):
        return None
    now = utcnow()
    due = now - resolution
    if row.last_used_at is None or _aware(row.last_used_at) < due:
        stale = (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < due)
        with session() as db:
            db.execute(update(ApiKey).where(ApiKey.id == row.id, stale).values(last_used_at=now))
        row.last_used_at = now
    return row


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def api_keys() -> list[ApiKey]:
    """Every key, revoked ones too, oldest first."""
    with read_session() as db:
        return list(db.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_api_keys(name_or_prefix: str) -> int:
    """Revoke the unrevoked keys with this name or prefix; returns how many."""
    with session() as db:
        rows = list(
            db.scalars(
                select(ApiKey).where(
                    (ApiKey.name == name_or_prefix) | (ApiKey.prefix == name_or_prefix),
                    ApiKey.revoked.is_(False),
                )
            )
        )
        for row in rows:
            row.revoked = True
        return len(rows)
