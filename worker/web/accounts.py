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

from worker.ledger import accounts as rows
from worker.settings import get_settings
from worker.web.access import ADMIN, DEFAULT_KEY_SCOPES, DEFAULT_ROLE, check_role, parse_scopes

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
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeyIdentity:
    """A valid key as a request sees it."""

    id: int
    name: str
    scopes: frozenset[str]


def add_user(username: str, password: str, role: str = DEFAULT_ROLE) -> None:
    username = username.strip()
    if not username or len(username) > 100:
        raise AccountError("the username must be 1 to 100 characters")
    if len(password) < 8:
        raise AccountError("the password must have at least 8 characters")
    role = _role(role)
    try:
        rows.insert_user(username, _hasher.hash(password), role)
    except rows.UsernameTaken:
        raise AccountError(f"user {username!r} already exists") from None


def set_password(username: str, password: str) -> int:
    """A new password; the user's open sessions end. Returns how many ended."""
    if len(password) < 8:
        raise AccountError("the password must have at least 8 characters")
    if not rows.update_password_hash(username, _hasher.hash(password)):
        raise _no_user(username)
    return _end_sessions(username)


def _end_sessions(username: str) -> int:
    from worker.web.auth import end_user_sessions  # auth imports this module

    return end_user_sessions(username)


def _role(role: str) -> str:
    try:
        return check_role(role)
    except ValueError as exc:
        raise AccountError(str(exc)) from None


def _no_user(username: str) -> AccountError:
    return AccountError(f"no user {username!r}")


def set_role(username: str, role: str) -> None:
    role = _role(role)
    if not rows.update_role(username, role):
        raise _no_user(username)


def remove_user(username: str) -> int:
    """Delete the account and end its open sessions; returns how many ended."""
    if not rows.delete_user(username):
        raise _no_user(username)
    return _end_sessions(username)


def role_of(username: str) -> str | None:
    """The user's role; the admin from the settings is an admin; None: no such user."""
    role = rows.role_of_user(username)
    if role is not None:
        return role
    settings = get_settings()
    if (
        settings.web_admin_user
        and settings.web_admin_password
        and username == settings.web_admin_user
    ):
        return ADMIN
    return None


def list_users() -> list[str]:
    return rows.usernames()


def list_user_roles() -> list[tuple[str, str]]:
    return rows.usernames_and_roles()


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(username: str, password: str) -> str | None:
    """The user's name when the password is right (users table, then the settings admin)."""
    user = rows.find_user(username)
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


def create_api_key(name: str, scopes: tuple[str, ...] | list[str] = DEFAULT_KEY_SCOPES) -> str:
    """Store a new key and return it in clear (the only time it is shown)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise AccountError("the key name must be 1 to 100 characters")
    try:
        chosen = parse_scopes(scopes)
    except ValueError as exc:
        raise AccountError(str(exc)) from None
    if not chosen:
        raise AccountError("a key needs at least one scope")
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    rows.insert_api_key(name, prefix, _hash_key(key), " ".join(chosen))
    return key


def verify_api_key(key: str) -> str | None:
    """The key's name when it is valid and not revoked."""
    found = identify_api_key(key)
    return found.name if found else None


def identify_api_key(key: str) -> KeyIdentity | None:
    """The key's id, name and scopes when it is valid and not revoked."""
    parts = key.split("_")
    if len(parts) < 3 or not key.startswith(KEY_PREFIX):
        return None
    prefix = parts[1]
    row = rows.use_api_key(prefix, _hash_key(key), LAST_USED_RESOLUTION)
    if row is None:
        return None
    return KeyIdentity(row.id, row.name, frozenset(row.scopes.split()))


def list_api_keys() -> list[KeyInfo]:
    return [
        KeyInfo(r.id, r.name, r.prefix, r.created_at, r.last_used_at, r.revoked, _ordered(r.scopes))
        for r in rows.api_keys()
    ]


def _ordered(scopes: str) -> tuple[str, ...]:
    try:
        return parse_scopes([scopes])
    except ValueError:
        return tuple(scopes.split())


def revoke_api_key(name_or_prefix: str) -> int:
    """Revoke the keys with this name or prefix; returns how many were revoked."""
    return rows.revoke_api_keys(name_or_prefix)
