"""Who may do what: API key scopes, dashboard roles, and the rule every route declares.

API keys carry scopes. Signed-in users have a role, which stands for a set of scopes,
so one rule serves both: a route declares the scopes any one of which lets a request
in (`Allow(JOBS_READ)`), or that it is public (`PUBLIC`). `rules_of(route)` reads the
declaration back, so a test can insist that every route has one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam

JOBS_WRITE = "jobs:write"
JOBS_READ = "jobs:read"
JOBS_OPERATE = "jobs:operate"
TENANTS_ADMIN = "tenants:admin"
WEBHOOKS_ADMIN = "webhooks:admin"
SCOPES = (JOBS_WRITE, JOBS_READ, JOBS_OPERATE, TENANTS_ADMIN, WEBHOOKS_ADMIN)
SCOPE_TEXT = {
    JOBS_WRITE: "submit jobs and read the jobs this key sent",
    JOBS_READ: "read every job and tenant",
    JOBS_OPERATE: "retry, replay and cancel jobs; resend webhooks; refresh references",
    TENANTS_ADMIN: "change mappings; connect, rebind, disable, enable and remove tenants",
    WEBHOOKS_ADMIN: "add, change, rotate the secret of and remove webhook endpoints",
}
DEFAULT_KEY_SCOPES = (JOBS_WRITE,)

VIEWER = "viewer"
OPERATOR = "operator"
ADMIN = "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)
ROLE_SCOPES: dict[str, frozenset[str]] = {
    VIEWER: frozenset({JOBS_READ}),
    OPERATOR: frozenset({JOBS_READ, JOBS_OPERATE}),
    ADMIN: frozenset(SCOPES),
}
DEFAULT_ROLE = OPERATOR


class AccessError(ValueError):
    """An unknown scope or role; the message names the valid ones."""


def parse_scopes(values: Iterable[str]) -> tuple[str, ...]:
    """Scopes given as repeated options or comma/space separated, checked and ordered."""
    chosen = {part for value in values for part in value.replace(",", " ").split() if part}
    unknown = sorted(chosen - set(SCOPES))
    if unknown:
        raise AccessError(f"unknown scope {', '.join(unknown)}; valid scopes: {', '.join(SCOPES)}")
    return tuple(scope for scope in SCOPES if scope in chosen)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccessError(f"unknown role {role!r}; valid roles: {', '.join(ROLES)}")
    return role


def least_role_with(scope: str) -> str | None:
    return next((role for role in ROLES if scope in ROLE_SCOPES[role]), None)


class Forbidden(Exception):
    """Signed in (or a valid key), but without any of the scopes the route needs."""

    def __init__(self, needed: tuple[str, ...], kind: str, role: str | None) -> None:
        self.needed = needed
        self.kind = kind
        self.role = role
        super().__init__(self.message)

    @property
    def message(self) -> str:
        wanted = " or ".join(self.needed)
        if self.kind == "apikey":
            return f"this API key lacks the scope {wanted}"
        roles = sorted({r for s in self.needed if (r := least_role_with(s))}, key=ROLES.index)
        return (
            f"your role ({self.role}) lacks the scope {wanted}; "
            f"it needs the role {' or '.join(roles)}"
        )


class Allow:
    """A route's authorization rule, used as a dependency: a principal holding any of
    `scopes` (no scopes: anyone signed in). `public_if` makes the route public while it
    answers true (e.g. /metrics while LEDGERPUSH_METRICS_PUBLIC)."""

    def __init__(self, *scopes: str, public_if: Callable[[], bool] | None = None) -> None:
        assert all(scope in SCOPES for scope in scopes), scopes
        self.scopes = scopes
        self.public_if = public_if

    def __repr__(self) -> str:
        return f"Allow({', '.join(self.scopes) or 'signed in'})"

    def permits(self, scopes: frozenset[str]) -> bool:
        return not self.scopes or bool(scopes.intersection(self.scopes))

    async def __call__(self, request: Request) -> None:
        from worker.web.auth import require_auth  # auth imports this module (the scopes)

        if self.public_if is not None and self.public_if():
            return
        principal = await require_auth(request)
        if not self.permits(principal.scopes):
            raise Forbidden(self.scopes, principal.kind, principal.role)


class Public:
    """The rule of a route that needs no sign-in (health, sign-in, OAuth callbacks)."""

    def __repr__(self) -> str:
        return "PUBLIC"

    async def __call__(self) -> None:
        return None


PUBLIC = Public()
Rule = Allow | Public


def allow(*scopes: str, public_if: Callable[[], bool] | None = None) -> list[Any]:
    """`dependencies=allow(JOBS_READ)` on a route."""
    return [Depends(Allow(*scopes, public_if=public_if))]


def public() -> list[Any]:
    return [Depends(PUBLIC)]


def rules_of(route: Any) -> list[Rule]:
    """The rules a route declares (its own dependencies and its routers')."""
    found: list[Rule] = []
    for dependency in getattr(route, "dependencies", []) or []:
        if isinstance(dependency, DependsParam) and isinstance(
            dependency.dependency, Allow | Public
        ):
            found.append(dependency.dependency)
    dependant = getattr(route, "dependant", None)
    stack = list(dependant.dependencies) if dependant is not None else []
    while stack:
        sub = stack.pop()
        if isinstance(sub.call, Allow | Public) and sub.call not in found:
            found.append(sub.call)
        stack.extend(sub.dependencies)
    return found
