"""Visma Connect, simulated: authorization codes, access tokens, refresh-token rotation.

Access tokens are opaque and live `token_lifetime_seconds`. Refresh tokens either come back
unchanged on refresh ("reuse") or are replaced each time ("one_time"); a replaced token may
still be exchanged for `refresh_grace_seconds`. Revoking a company's refresh tokens (the user
changed their password) makes the next refresh fail with `invalid_grant`.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.simulators.common import OAuthError
from worker.simulators.eaccounting.state import SimConfig

REQUIRED_SCOPES = ("ea:api", "offline_access")
KNOWN_SCOPES = frozenset(
    {
        "ea:api",
        "offline_access",
        "ea:sales",
        "ea:sales_readonly",
        "ea:purchase",
        "ea:purchase_readonly",
        "ea:accounting",
        "ea:accounting_readonly",
    }
)
CODE_LIFETIME_SECONDS = 300
#: Above this many access tokens, expired ones are forgotten (long benchmark runs).
_PURGE_ABOVE = 20_000


@dataclass
class Grant:
    """What an access token stands for."""

    company_id: str
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float


@dataclass
class RefreshToken:
    company_id: str
    client_id: str
    scopes: tuple[str, ...]
    revoked: bool = False
    replaced_at: float | None = None


@dataclass
class AuthCode:
    company_id: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    expires_at: float
    used: bool = False


@dataclass
class TokenStore:
    config: SimConfig
    clock: Callable[[], float]
    access: dict[str, Grant] = field(default_factory=dict)
    refresh: dict[str, RefreshToken] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    #: Token-endpoint calls per (company, grant type), for codes and refresh tokens it knows.
    company_calls: Counter[tuple[str, str]] = field(default_factory=Counter)

    def issue(self, company_id: str, client_id: str, scopes: tuple[str, ...]) -> dict[str, object]:
        refresh = secrets.token_urlsafe(32)
        self.refresh[refresh] = RefreshToken(company_id, client_id, scopes)
        return self._answer(company_id, client_id, scopes, refresh)

    def _answer(
        self, company_id: str, client_id: str, scopes: tuple[str, ...], refresh: str
    ) -> dict[str, object]:
        if len(self.access) > _PURGE_ABOVE:
            self._purge_expired()
        access = secrets.token_urlsafe(32)
        lifetime = self.config.token_lifetime_seconds
        self.access[access] = Grant(company_id, client_id, scopes, self.clock() + lifetime)
        answer: dict[str, object] = {
            "access_token": access,
            "expires_in": int(lifetime),
            "token_type": "Bearer",
            "scope": " ".join(scopes),
        }
        if "offline_access" in scopes:
            answer["refresh_token"] = refresh
        return answer

    def _purge_expired(self) -> None:
        now = self.clock()
        self.access = {k: g for k, g in self.access.items() if g.expires_at > now}

    def grant_for(self, token: str) -> Grant | None:
        """The grant of a live access token, or None if unknown or expired."""
        grant = self.access.get(token)
        if grant is None or grant.expires_at <= self.clock():
            return None
        return grant

    def new_code(
        self, company_id: str, client_id: str, redirect_uri: str, scopes: tuple[str, ...]
    ) -> str:
        code = secrets.token_urlsafe(24)
        expires = self.clock() + CODE_LIFETIME_SECONDS
        self.codes[code] = AuthCode(company_id, client_id, redirect_uri, scopes, expires)
        return code

    def redeem_code(self, code: str, client_id: str, redirect_uri: str) -> dict[str, object]:
        found = self.codes.get(code)
        if found is not None:
            self.company_calls[(found.company_id, "authorization_code")] += 1
        if found is None or found.expires_at <= self.clock():
            raise OAuthError("invalid_grant", "The authorization code is invalid or expired.")
        if found.used:
            raise OAuthError("invalid_grant", "The authorization code has already been used.")
        if found.client_id != client_id:
            raise OAuthError(
                "invalid_grant", "The authorization code was issued to another client."
            )
        if found.redirect_uri != redirect_uri:
            raise OAuthError(
                "invalid_grant", "redirect_uri does not match the authorization request."
            )
        found.used = True
        return self.issue(found.company_id, client_id, found.scopes)

    def use_refresh(self, token: str, client_id: str) -> dict[str, object]:
        found = self.refresh.get(token)
        if found is not None:
            self.company_calls[(found.company_id, "refresh_token")] += 1
        if found is None or found.revoked or found.client_id != client_id:
            raise OAuthError("invalid_grant", "The refresh token is invalid or has been revoked.")
        now = self.clock()
        if found.replaced_at is not None and not self._in_grace(found.replaced_at, now):
            raise OAuthError("invalid_grant", "The refresh token has already been used.")
        if self.config.refresh_mode == "reuse":
            return self._answer(found.company_id, client_id, found.scopes, token)
        if found.replaced_at is None:
            found.replaced_at = now
        successor = secrets.token_urlsafe(32)
        self.refresh[successor] = RefreshToken(found.company_id, client_id, found.scopes)
        return self._answer(found.company_id, client_id, found.scopes, successor)

    def _in_grace(self, replaced_at: float, now: float) -> bool:
        grace = self.config.refresh_grace_seconds
        return grace > 0 and now - replaced_at <= grace

    def revoke_refresh(self, company_id: str) -> int:
        tokens = [t for t in self.refresh.values() if t.company_id == company_id and not t.revoked]
        for token in tokens:
            token.revoked = True
        return len(tokens)

    def expire_access(self, company_id: str | None) -> int:
        now = self.clock()
        grants = [g for g in self.access.values() if company_id in (None, g.company_id)]
        for grant in grants:
            grant.expires_at = min(grant.expires_at, now)
        return len(grants)
