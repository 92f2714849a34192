"""Encryption at rest for tenant credentials (MultiFernet: the first key encrypts,
every key decrypts, so keys can be rotated with `ledgerpush keys rotate`)."""

from __future__ import annotations

import functools
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from worker.settings import get_settings


class CredentialsUnreadable(RuntimeError):
    """Stored credentials could not be decrypted with any configured key."""


def _keys() -> tuple[str, ...]:
    return tuple(get_settings().fernet_keys)


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def encrypt_json(value: dict[str, Any]) -> bytes:
    return _fernet(_keys()).encrypt(json.dumps(value, sort_keys=True).encode())


def decrypt_json(token: bytes) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(_plaintext(token, _keys()))
    except InvalidToken:
        raise CredentialsUnreadable(
            "credentials cannot be decrypted with LEDGERPUSH_SECRET_KEY; was the key replaced "
            "instead of rotated (new key first, old key kept after a comma)?"
        ) from None
    return data


@functools.lru_cache(maxsize=4096)
def _plaintext(token: bytes, keys: tuple[str, ...]) -> bytes:
    # Every job reads its tenant's credentials; a token that changes (refresh, rotation)
    # is a new ciphertext, so the cache never answers with stale credentials.
    return _fernet(keys).decrypt(token)


def rotate(token: bytes) -> bytes:
    return _fernet(_keys()).rotate(token)


def generate_key() -> str:
    return Fernet.generate_key().decode()
