"""The eAccounting simulator object: companies, tokens, the rate limiter, the app, `serve`."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.applications import Starlette

from worker.simulators.common import FaultInjector, Faults, RequestLog, SimulatorServer
from worker.simulators.eaccounting import control
from worker.simulators.eaccounting.auth import KNOWN_SCOPES, REQUIRED_SCOPES, TokenStore
from worker.simulators.eaccounting.errors import throttle_body
from worker.simulators.eaccounting.identity import IdentityRoutes
from worker.simulators.eaccounting.profiles import COUNTRIES
from worker.simulators.eaccounting.routing import ApiRoutes
from worker.simulators.eaccounting.seed import build_company, seed_documents
from worker.simulators.eaccounting.state import Company, SimConfig, plain, to_json

DEFAULT_COMPANIES = (("demo-no", "NO"), ("demo-nl", "NL"), ("demo-se", "SE"), ("demo-fi", "FI"))
#: CompanySettingsApi fields that identify a company (what the control API may change).
IDENTITY_FIELDS = frozenset({"CompanyIdentifier", "CorporateIdentityNumber", "Name", "VatCode"})


class RateLimiter:
    """Sliding one-minute window per key; rejected calls are not counted."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}

    def wait_seconds(self, key: str, limit: int) -> int | None:
        """None if the call may go ahead (and counts it), else seconds until it may."""
        now = self.clock()
        window = self._hits.setdefault(key, deque())
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(window[0] + 60 - now))
        window.append(now)
        return None

    def reset(self) -> None:
        self._hits.clear()


class EAccountingSimulator:
    def __init__(
        self,
        client_id: str = "ledgerpush",
        client_secret: str = "sim-secret",
        token_lifetime_seconds: float = 3600,
        refresh_mode: Literal["reuse", "one_time"] = "reuse",
        refresh_grace_seconds: float = 0,
        rate_limit_per_minute: int = 600,
        rate_limit_scope: Literal["company", "client"] = "company",
        faults: Faults | None = None,
        auto_approve: bool = True,
        redirect_uris: list[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = redirect_uris
        self.clock = clock
        self.config = SimConfig(
            token_lifetime_seconds=token_lifetime_seconds,
            refresh_mode=refresh_mode,
            refresh_grace_seconds=refresh_grace_seconds,
            rate_limit_per_minute=rate_limit_per_minute,
            rate_limit_scope=rate_limit_scope,
            auto_approve=auto_approve,
        )
        self.faults = faults if faults is not None else Faults()
        self.log = RequestLog()
        self.companies: dict[str, Company] = {}
        self.tokens = TokenStore(self.config, clock)
        self.limiter = RateLimiter(clock)
        self.lock = threading.RLock()
        self._injector = FaultInjector(
            self._starlette(), self.faults, self.log, self._throttle_bytes
        )
        self.app = self._injector

    # ------------------------------------------------------------ public interface

    @property
    def token_calls(self) -> int:
        return sum(self.tokens.calls.values())

    @property
    def token_calls_by_grant(self) -> dict[str, int]:
        return dict(self.tokens.calls)

    def token_calls_for(self, company_id: str) -> dict[str, int]:
        """Token-endpoint calls by grant type that used this company's code or refresh token."""
        with self.lock:
            return {
                grant: count
                for (company, grant), count in self.tokens.company_calls.items()
                if company == company_id
            }

    def add_company(self, company_id: str, country: str) -> None:
        if country not in COUNTRIES:
            raise ValueError(f"country must be one of {COUNTRIES}, not {country!r}")
        with self.lock:
            existing = self.companies.get(company_id)
            if existing is not None and existing.country != country:
                raise ValueError(f"company {company_id!r} already exists in {existing.country}")
            if existing is None:
                company = build_company(company_id, country, self.now().year)
                self.companies[company_id] = company

    def issue_tokens(self, company_id: str, scopes: list[str]) -> dict[str, Any]:
        """Tokens as the browser flow would give them; `ea:api offline_access` are implied."""
        wanted = tuple(dict.fromkeys([*REQUIRED_SCOPES, *scopes]))
        unknown = set(wanted) - KNOWN_SCOPES
        if unknown:
            raise ValueError(f"unknown scopes: {sorted(unknown)}")
        with self.lock:
            if company_id not in self.companies:
                raise KeyError(f"no company {company_id!r}")
            return dict(self.tokens.issue(company_id, self.client_id, wanted))

    def update_identity(self, company_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change what `GET /v2/companysettings` says identifies the company, under the
        tokens already issued for it (as when the company behind a connection changes)."""
        unknown = set(changes) - IDENTITY_FIELDS
        if unknown:
            raise ValueError(
                f"only {sorted(IDENTITY_FIELDS)} can be changed, not {sorted(unknown)}"
            )
        with self.lock:
            company = self.companies[company_id]
            company.settings.update({k: str(v) for k, v in changes.items()})
            return {k: company.settings.get(k) for k in sorted(IDENTITY_FIELDS)}

    def set_client_secret(self, secret: str) -> None:
        """The client secret the token endpoint accepts (a rotation at Visma's side)."""
        with self.lock:
            self.client_secret = secret

    def revoke_refresh_tokens(self, company_id: str) -> None:
        with self.lock:
            self.tokens.revoke_refresh(company_id)

    def expire_access_tokens(self, company_id: str | None = None) -> None:
        with self.lock:
            self.tokens.expire_access(company_id)

    def state_dump(self) -> dict[str, Any]:
        with self.lock:
            return {cid: plain(self._dump(company)) for cid, company in self.companies.items()}

    def reset(self) -> None:
        with self.lock:
            for company in self.companies.values():
                seed_documents(company)
            self.limiter.reset()

    def update_config(self, changes: dict[str, Any]) -> None:
        with self.lock:
            self.config.update(changes)
            self._injector.throttle_body = self._throttle_bytes

    def _throttle_bytes(self, retry_after: int) -> bytes:
        # An injected 429's body names the same wait as its Retry-After header.
        return to_json(throttle_body(self.config.rate_limit_per_minute, retry_after))

    @staticmethod
    def _dump(company: Company) -> dict[str, Any]:
        invoices = [
            dict(invoice, Payments=company.payments.get(invoice["Id"], []))
            for invoice in company.invoices.values()
        ]
        return {
            "country": company.country,
            "currency": company.currency,
            "next_invoice_number": company.next_invoice_number,
            "customers": list(company.customers.values()),
            "articles": list(company.articles.values()),
            "drafts": list(company.drafts.values()),
            "invoices": invoices,
        }

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC).replace(tzinfo=None)

    # ------------------------------------------------------------ app

    def _starlette(self) -> Starlette:
        routes = [
            *IdentityRoutes(self).routes(),
            *control.routes(self),
            *ApiRoutes(self).routes(),
        ]
        return Starlette(routes=routes)


def serve(
    port: int,
    companies: list[tuple[str, str]] | None = None,
    host: str = "127.0.0.1",
    **options: Any,
) -> None:
    """Runs the simulator in the foreground (`ledgerpush simulate eaccounting --port P`)."""
    simulator = EAccountingSimulator(**options)
    for company_id, country in companies or list(DEFAULT_COMPANIES):
        simulator.add_company(company_id, country)
    SimulatorServer(simulator.app, host=host, port=port).serve_forever()


__all__ = ["DEFAULT_COMPANIES", "EAccountingSimulator", "RateLimiter", "serve"]
