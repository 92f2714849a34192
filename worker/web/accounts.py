"""Operator accounts (argon2 password hashes) and API keys (stored as SHA-256 hashes).

An API key reads `lp_<prefix>_<secret>`: the prefix finds the row, the hash of the
whole key proves it. The key itself is shown once, when it is created.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from worker.ledger.db import session
from worker.ledger.models import ApiKey, User, utcnow
from worker.settings import get_settings

_hasher = PasswordHasher()
KEY_PREFIX = "lp_"
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
# Verified against when the user does not exist, so timing does not tell who exists.
_DUMMY_HASH = _hasher.hash("ledgerpush-dummy-password")


class AccountError(ValueError):
    """A user or key operation was refused; the message says why."""


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked: bool


def add_user(username: str, password: str) -> None:
    username = username.strip()
    if not username or len(username) > 100:
        raise AccountError("the username must be 1 to 100 characters")
    if len(password) < 8:
        raise AccountError("the password must have at least 8 characters")
    try:
        with session() as db:
            db.add(User(username=username, password_hash=_hasher.hash(password)))
    except IntegrityError:
        raise AccountError(f"user {username!r} already exists") from None


def set_password(username: str, password: str) -> None:
    if len(password) < 8:
        raise AccountError("the password must have at least 8 characters")
    with session() as db:
        user = db.scalars(select(User).where(User.username == username)).first()
        if user is None:
            raise AccountError(f"no user {username!r}")
        user.password_hash = _hasher.hash(password)


def remove_user(username: str) -> None:
    with session() as db:
        user = db.scalars(select(User).where(User.username == username)).first()
        if user is None:
            raise AccountError(f"no user {username!r}")
        db.delete(user)


def list_users() -> list[str]:
    with session() as db:
        return list(db.scalars(select(User.username).order_by(User.username)))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(username: str, password: str) -> str | None:
    """The user's name when the password is right (users table, then the settings admin)."""
    with session() as db:
        user = db.scalars(select(User).where(User.username == username)).first()
    if user is not None:
        return user.username if _verify(user.password_hash, password) else None
    _verify(_DUMMY_HASH, password)
    settings = get_settings()
    admin_password = settings.web_admin_password
    if settings.web_admin_user and admin_password and username == settings.web_admin_user:
        expected = admin_password.get_secret_value().encode()
        if expected and hmac.compare_digest(expected, password.encode()):
            return username
    return None


def sign_in_possible() -> bool:
    settings = get_settings()
    return bool(list_users()) or bool(settings.web_admin_user and settings.web_admin_password)


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(name: str) -> str:
    """Store a new key and return it in clear (the only time it is shown)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise AccountError("the key name must be 1 to 100 characters")
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with session() as db:
        db.add(ApiKey(name=name, prefix=prefix, key_hash=_hash_key(key)))
    return key


def verify_api_key(key: str) -> str | None:
    """The key's name when it is valid and not revoked."""
    parts = key.split("_")
    if len(parts) < 3 or not key.startswith(KEY_PREFIX):
        return None
    prefix = parts[1]
    with session() as db:
        row = db.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()
        if row is None or row.revoked:
            return None
        if not hmac.compare_digest(row.key_hash, _hash_key(key)):
            return None
        now = utcnow()
        last = row.last_used_at
        if last is None or _aware(last) < now - LAST_USED_RESOLUTION:
            row.last_used_at = now
        return row.name


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def list_api_keys() -> list[KeyInfo]:
    with session() as db:
        rows = db.scalars(select(ApiKey).order_by(ApiKey.id))
        return [
            KeyInfo(r.id, r.name, r.prefix, r.created_at, r.last_used_at, r.revoked) for r in rows
        ]


def revoke_api_key(name_or_prefix: str) -> int:
    """Revoke the keys with this name or prefix; returns how many were revoked."""
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
