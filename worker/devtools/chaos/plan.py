"""What a chaos run injects and over which tenants: the faults, the settings the stack
runs with, the options of a run and the tenants of each provider."""

from __future__ import annotations

from dataclasses import dataclass

FAULTS = (
    "worker-kill", "redis-restart", "db-outage", "db-readonly", "poison", "provider",
    "provider-outage",
)  # fmt: skip
DEFAULT_FAULTS = ("worker-kill", "redis-restart", "provider")
SETTINGS = {
    "LEDGERPUSH_ENV": "demo",
    "LEDGERPUSH_EACCOUNTING_CLIENT_ID": "ledgerpush-chaos",
    "LEDGERPUSH_EACCOUNTING_CLIENT_SECRET": "chaos-secret",
    "LEDGERPUSH_ECONOMIC_APP_SECRET_TOKEN": "chaos-app-secret",
    "LEDGERPUSH_ECONOMIC_APP_PUBLIC_TOKEN": "chaos-app-public",
    "LEDGERPUSH_RETRY_BACKOFF_BASE": "0.2",
    "LEDGERPUSH_RETRY_BACKOFF_MAX": "2",
    "LEDGERPUSH_MAX_RETRIES": "50",
    "LEDGERPUSH_HTTP_TIMEOUT": "3",
    "LEDGERPUSH_LEASE_SECONDS": "5",
    "LEDGERPUSH_VISIBILITY_TIMEOUT": "30",
    "LEDGERPUSH_TASK_TIME_LIMIT": "12",
    "LEDGERPUSH_TASK_SOFT_TIME_LIMIT": "10",
    "LEDGERPUSH_LOG_JSON": "false",
    # An open circuit probes the provider every few seconds, not every 30 s.
    "LEDGERPUSH_CIRCUIT_OPEN_SECONDS": "3",
}


def parse_faults(text: str) -> tuple[str, ...]:
    """`all`, or names of FAULTS separated by commas; ValueError names the unknown one."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return FAULTS
    unknown = [n for n in names if n not in FAULTS]
    if unknown or not names:
        raise ValueError(
            f"--faults: unknown fault {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(FAULTS)} or all"
        )
    return tuple(n for n in FAULTS if n in names)


def old_retry_budget() -> float:
    """Seconds the retries of a job lasted under the old count (8) with chaos's backoff:
    a database window longer than this would have dead-lettered jobs."""
    base = float(SETTINGS["LEDGERPUSH_RETRY_BACKOFF_BASE"])
    cap = float(SETTINGS["LEDGERPUSH_RETRY_BACKOFF_MAX"])
    return float(sum(min(base * 2**n, cap) for n in range(8)))


@dataclass(frozen=True)
class Options:
    """What a run injects, on which database."""

    faults: tuple[str, ...] = DEFAULT_FAULTS
    database: str | None = None  # sqlite, postgresql, or None: LEDGERPUSH_CHAOS_DATABASE_URL
    database_url: str = ""  # the PostgreSQL server for --database postgresql
    strict_rotation: bool = False
    window: float = 20.0


@dataclass(frozen=True)
class TenantPlan:
    tenant_id: str
    provider: str
    country: str
    currency: str
    rates: tuple[str, ...]
    city: tuple[str, str]


TENANTS = (
    TenantPlan("chaos-ea-no", "eaccounting", "NO", "NOK", ("25", "15"), ("0155", "Oslo")),
    TenantPlan("chaos-ea-se", "eaccounting", "SE", "SEK", ("25", "12"), ("111 22", "Stockholm")),
    TenantPlan("chaos-ea-nl", "eaccounting", "NL", "EUR", ("21", "9"), ("3511 AB", "Utrecht")),
    TenantPlan("chaos-ea-fi", "eaccounting", "FI", "EUR", ("25.5",), ("00100", "Helsinki")),
    TenantPlan("chaos-ec-dk", "economic", "DK", "DKK", ("25",), ("8000", "Aarhus C")),
    TenantPlan("chaos-ec-no", "economic", "NO", "NOK", ("25",), ("0155", "Oslo")),
    TenantPlan("chaos-ec-se", "economic", "SE", "SEK", ("25",), ("111 22", "Stockholm")),
    TenantPlan("chaos-vn-no", "vismanet", "NO", "NOK", ("25", "15"), ("0155", "Oslo")),
    TenantPlan("chaos-vn-no-2", "vismanet", "NO", "NOK", ("25", "12"), ("5003", "Bergen")),
)
