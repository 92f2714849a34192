"""Configuration: environment variables prefixed `LEDGERPUSH_`, or a `.env` file.

`Settings` holds what the whole of ledgerpush reads. What only one provider reads is
that provider's (its package's `settings.py`, a `PartSettings` under its own prefix,
`LEDGERPUSH_<PROVIDER>_`), read through `Settings.part` so that it is read again
whenever these settings are."""

from __future__ import annotations

import functools
import ipaddress
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from cryptography.fernet import Fernet
from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

#: A fixed key used only in demo/dev mode, so data written by the demo stays readable.
DEV_SECRET_KEY = "bGVkZ2VycHVzaC1kZXYta2V5LW5vdC1mb3ItcHJvZC0="
#: Passwords refused for the web admin where it matters (production, a non-loopback bind).
KNOWN_DEFAULT_PASSWORDS = frozenset(
    {
        "change-me",
        "changeme",
        "change_me",
        "admin",
        "administrator",
        "password",
        "passw0rd",
        "secret",
        "demo",
        "ledgerpush",
        "letmein",
        "qwerty",
        "123456",
        "12345678",
        "123456789012",
        "default",
        "root",
        "test",
    }
)
MIN_ADMIN_PASSWORD = 12


class SettingsError(RuntimeError):
    """A configuration value is missing or wrong; the message names the variable."""


class PartSettings(BaseSettings):
    """Settings of one part (a provider), read like `Settings`: from the environment and
    `.env`, unknown names ignored. A subclass sets `env_prefix`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")


Part = TypeVar("Part", bound=BaseSettings)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGERPUSH_", env_file=".env", extra="ignore")
    _parts: dict[type[BaseSettings], BaseSettings] = PrivateAttr(default_factory=dict)

    env: Literal["production", "dev", "demo", "test"] = "dev"
    home: Path = Path(".ledgerpush")
    redis_url: str | None = None
    database_url: str | None = None
    secret_key: SecretStr | None = Field(
        default=None, description="Comma-separated Fernet keys; the first encrypts."
    )
    sentry_dsn: str | None = None
    log_level: str = "INFO"
    log_json: bool | None = None

    worker_concurrency: int = Field(
        default=32,
        ge=1,
        le=512,
        description="Threads (in-flight jobs) per worker process. A process books at most "
        "threads / (2 calls x the provider's latency) invoices a second, and no more than "
        "its one core allows (the GIL); bench/RESULTS.md (latency-bound) has the figures "
        "behind 32.",
    )
    task_events: bool = Field(
        default=True,
        description="Send Celery task events (for Flower or `celery events`); false saves "
        "worker CPU on every task where nothing watches them.",
    )
    task_soft_time_limit: int = Field(default=120, ge=5)
    task_time_limit: int = Field(default=150, ge=10)
    visibility_timeout: int = Field(default=3600, ge=30)
    max_message_bytes: int = Field(
        default=1_048_576,
        ge=4096,
        description="A raw message on a ledgerpush queue larger than this goes to the poison list.",
    )
    max_retries: int | None = Field(
        default=None,
        ge=0,
        le=50,
        description="Unset: a job's transient failures are retried for RETRY_HORIZON; set: "
        "also dead-lettered after this many retries, whichever comes first.",
    )
    retry_horizon: float = Field(
        default=72 * 3600,
        gt=0,
        description="Seconds a job's transient failures are retried, from its first one, "
        "before it is dead-lettered.",
    )
    retry_backoff_base: float = Field(default=2.0, gt=0)
    retry_backoff_max: float = Field(default=600.0, gt=0)
    circuit_breaker: bool = Field(
        default=True,
        description="Hold a provider's jobs while it is down for many tenants (worker/ops/circuit.py).",
    )
    circuit_window_seconds: float = Field(default=60.0, gt=0)
    circuit_min_tenants: int = Field(default=3, ge=1)
    circuit_min_failures: int = Field(default=5, ge=1)
    circuit_failure_ratio: float = Field(default=0.8, gt=0, le=1)
    circuit_open_seconds: float = Field(
        default=30.0, gt=0, description="How long an open circuit waits before each probe."
    )
    circuit_release_batch: int = Field(
        default=50, ge=1, description="Held jobs let through at a time, oldest first."
    )
    ingest_drainer: bool = Field(
        default=True,
        description="Workers drain the plain ingest list ledgerpush.ingest (worker/transport/ingest.py).",
    )
    tenant_overflow_after: int = Field(
        default=8,
        ge=0,
        description="A tenant's jobs beyond this many pending go to the overflow queue "
        "(worker/transport/fairness.py); 0: never.",
    )
    lease_seconds: int = Field(default=180, ge=5)
    reference_cache_ttl: int = Field(default=3600, ge=0)
    reference_cache_max_entries: int = Field(
        default=2048,
        ge=1,
        description="References each worker process keeps decoded in memory (worker/tenancy/refcache.py), "
        "least recently used dropped first; the shared cache in Redis is not bounded by it.",
    )
    rate_limit_hold_seconds: float = Field(
        default=2.0,
        ge=0,
        description="The longest a worker thread sleeps for a rate-limit slot; a job whose "
        "slot is further away keeps it and is handed back until then, without using a retry.",
    )
    http_timeout: float = Field(default=20.0, gt=0)
    write_settle_seconds: float | None = Field(
        default=None,
        ge=0,
        description="How long after an unanswered write before it is looked up; "
        "unset: three HTTP timeouts (request, token refresh, replay).",
    )
    refresh_window_seconds: int = Field(default=600, ge=0)
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8000, ge=1, le=65535)
    web_admin_user: str | None = None
    web_admin_password: SecretStr | None = None
    web_session_secret: SecretStr | None = None
    web_secure_cookies: bool = False
    metrics_public: bool = True
    metrics_tenant_labels: bool = Field(
        default=False,
        description="Label per-tenant metrics with the tenant id (one series per tenant; "
        "tenant ids may name customers): off by default.",
    )
    purge_after_days: int | None = Field(
        default=None,
        ge=1,
        description="Beat purges personal data of jobs settled this many days ago, daily; "
        "unset: never (run `ledgerpush purge` by hand).",
    )
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    # Outbound events (worker/ops/events.py, worker/ops/webhooks.py).
    event_retention_days: int = Field(default=30, ge=1)
    webhook_give_up_hours: float = Field(default=72.0, gt=0)
    webhook_failing_hours: float = Field(default=24.0, gt=0)
    payment_sync_seconds: float = Field(default=900.0, ge=10)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        if value and value.startswith("postgresql://"):
            return "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value or None

    @field_validator("secret_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        for number, key in enumerate(value.get_secret_value().split(","), start=1):
            try:
                Fernet(key.strip())
            except (ValueError, TypeError):
                raise ValueError(
                    f"key {number} is not a Fernet key (32 url-safe base64-encoded bytes); "
                    "make one with `ledgerpush keygen`"
                ) from None
        return value

    @model_validator(mode="after")
    def _production_needs_secret(self) -> Settings:
        if self.secret_key is None and self.env == "production":
            raise ValueError("LEDGERPUSH_SECRET_KEY is required when LEDGERPUSH_ENV=production")
        if self.env == "production":
            problem = self.unsafe_for_exposure()
            if problem:
                raise ValueError(problem + " (LEDGERPUSH_ENV=production)")
        if self.webhook_url and not self.webhook_secret:
            raise ValueError(
                "LEDGERPUSH_WEBHOOK_SECRET is required when LEDGERPUSH_WEBHOOK_URL is set "
                "(alert webhooks are signed with it)"
            )
        if self.task_time_limit <= self.task_soft_time_limit:
            raise ValueError("LEDGERPUSH_TASK_TIME_LIMIT must be above TASK_SOFT_TIME_LIMIT")
        if self.visibility_timeout <= self.task_time_limit * 2:
            raise ValueError(
                "LEDGERPUSH_VISIBILITY_TIMEOUT must be more than twice LEDGERPUSH_TASK_TIME_LIMIT"
            )
        return self

    def unsafe_for_exposure(self) -> str | None:
        """What makes these settings unsafe where others can reach the app, naming the
        variable: the built-in development key, a default or short admin password."""
        if self.secret_key is None or DEV_SECRET_KEY in self.fernet_keys:
            return (
                "LEDGERPUSH_SECRET_KEY must be set to your own key, not the built-in "
                "development key; make one with `ledgerpush keygen`"
            )
        if self.web_admin_password is not None:
            password = self.web_admin_password.get_secret_value()
            if password.strip().lower() in KNOWN_DEFAULT_PASSWORDS:
                return "LEDGERPUSH_WEB_ADMIN_PASSWORD is a well-known default password"
            if len(password) < MIN_ADMIN_PASSWORD:
                return (
                    f"LEDGERPUSH_WEB_ADMIN_PASSWORD must have at least {MIN_ADMIN_PASSWORD} "
                    "characters"
                )
        return None

    def web_bind_problem(self, host: str) -> str | None:
        """Why the web app may not listen on `host` with these settings (None: it may)."""
        if is_loopback(host):
            return None
        problem = self.unsafe_for_exposure()
        return f"{problem} (the web app would listen on {host})" if problem else None

    def part(self, kind: type[Part]) -> Part:
        """The settings of one part (a provider's `PartSettings`), read once with these."""
        if kind not in self._parts:
            self._parts[kind] = _read(kind)
        return cast(Part, self._parts[kind])

    @property
    def fernet_keys(self) -> list[str]:
        raw = self.secret_key.get_secret_value() if self.secret_key else DEV_SECRET_KEY
        return [key.strip() for key in raw.split(",")]

    @property
    def sqlite_path(self) -> Path:
        return self.home / "ledger.db"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def load_settings() -> Settings:
    return _read(Settings)


def _read(kind: type[Part]) -> Part:
    """Settings read from the environment; SettingsError names each variable that is wrong."""
    try:
        return kind()
    except ValidationError as exc:
        prefix = kind.model_config.get("env_prefix", "")
        problems = "; ".join(_problem(prefix, err) for err in exc.errors())
        raise SettingsError(f"invalid configuration: {problems}") from None


def _problem(prefix: str, error: Any) -> str:
    name = "_".join(str(p) for p in error["loc"]).upper() or "SETTINGS"
    return f"{prefix}{name}: {error['msg']}"


@functools.cache
def get_settings() -> Settings:
    return load_settings()
