"""`ledgerpush demo`: the whole system on embedded defaults against the simulators.

Runs in its own home (`.ledgerpush/demo`, wiped at start) so it never touches real
data: the bundled Redis, a SQLite ledger, the three simulators, a worker process and the
web app. eAccounting and e-conomic tenants are connected through the real connect flow
(authorize → callback); the Visma.net tenant, whose service app has no consent page, is
given its company tenant id as an operator would (`tenants add --tenant-id`)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from worker.devtools import factories
from worker.devtools.localstack import SETTLED_STATES, LocalStack, connect, wait_until_up
from worker.transport.children import stop_on_signals
from worker.transport.embedded_redis import free_port

EACCOUNTING_TENANTS = (
    ("acme-no", "NO", "demo-no"),
    ("acme-nl", "NL", "demo-nl"),
    ("acme-se", "SE", "demo-se"),
    ("acme-fi", "FI", "demo-fi"),
)
ECONOMIC_TENANTS = (("acme-dk", "DK"),)
VISMANET_TENANTS = (("acme-vn-no", "NO"),)
REVOKED_TENANT = "acme-fi"


def prepare_environment(home: Path, web_port: int) -> LocalStack:
    """Settings for this process and its children, before anything reads them."""
    return LocalStack.create(
        home,
        {
            "LEDGERPUSH_ENV": "demo",
            "LEDGERPUSH_EACCOUNTING_CLIENT_ID": "ledgerpush-demo",
            "LEDGERPUSH_EACCOUNTING_CLIENT_SECRET": "demo-secret",
            "LEDGERPUSH_ECONOMIC_APP_SECRET_TOKEN": "demo-app-secret",
            "LEDGERPUSH_ECONOMIC_APP_PUBLIC_TOKEN": "demo-app-public",
            "LEDGERPUSH_EACCOUNTING_REDIRECT_URI": f"http://127.0.0.1:{web_port}/connect/eaccounting/callback",
            "LEDGERPUSH_ECONOMIC_REDIRECT_URI": f"http://127.0.0.1:{web_port}/connect/economic/callback",
            "LEDGERPUSH_WEB_PORT": str(web_port),
            "LEDGERPUSH_WEB_ADMIN_USER": "admin",
            "LEDGERPUSH_WEB_ADMIN_PASSWORD": "demo",
            "LEDGERPUSH_RETRY_BACKOFF_BASE": "0.5",
            "LEDGERPUSH_RETRY_BACKOFF_MAX": "5",
            "LEDGERPUSH_REFRESH_WINDOW_SECONDS": "20",
        },
    )


def start_simulators(stack: LocalStack) -> None:
    from worker.simulators.eaccounting import EAccountingSimulator
    from worker.simulators.economic import EconomicSimulator

    ea = EAccountingSimulator(
        client_id="ledgerpush-demo",
        client_secret="demo-secret",
        token_lifetime_seconds=90,
        refresh_mode="one_time",
    )
    for _, country, company in EACCOUNTING_TENANTS:
        ea.add_company(company, country)
    ec = EconomicSimulator(app_secret_token="demo-app-secret", app_public_token="demo-app-public")
    stack.start_simulators({"eaccounting": ea, "economic": ec})
    for tenant_id, country in ECONOMIC_TENANTS:
        ec.add_agreement(country, grant_token=f"grant-{tenant_id}")


def connect_tenants(stack: LocalStack) -> None:
    """Add the tenants and connect each through the real consent flow."""
    import httpx

    from worker.auth.connect import connect_url
    from worker.tenancy.tenants import add_tenant

    for tenant_id, country, company in EACCOUNTING_TENANTS:
        add_tenant(tenant_id, "eaccounting", country, display_name=f"Acme {country}")
        url = connect_url(tenant_id) + f"&login_hint={company}"
        _follow(httpx, url)
    for tenant_id, country in ECONOMIC_TENANTS:
        add_tenant(tenant_id, "economic", country, display_name=f"Acme {country}")
        url = connect_url(tenant_id) + f"&agreement=grant-{tenant_id}"
        _follow(httpx, url)
    for tenant_id, country in VISMANET_TENANTS:
        display_name = f"Acme Visma.net {country}"
        connect(stack, "vismanet", tenant_id, country, display_name=display_name)


def _follow(httpx: Any, url: str) -> None:
    response = httpx.get(url, follow_redirects=True, timeout=20)
    if response.status_code != 200 or "Connected" not in response.text:
        raise RuntimeError(
            f"connecting failed at {response.url}: {response.status_code} {response.text[:300]}"
        )


def revoke_one_tenant(stack: LocalStack) -> None:
    """The user of one tenant changes their Visma password: its refresh token dies."""
    ea = stack.sims["eaccounting"]
    company = next(c for t, _, c in EACCOUNTING_TENANTS if t == REVOKED_TENANT)
    ea.revoke_refresh_tokens(company)
    ea.expire_access_tokens(company)


def demo_jobs() -> Iterator[dict[str, Any]]:
    tenants = [(t, c) for t, c, _ in EACCOUNTING_TENANTS]
    tenants += [*ECONOMIC_TENANTS, *VISMANET_TENANTS]
    for tenant_id, country in tenants:
        yield from _tenant_jobs(tenant_id, country)


def _invoice(
    tenant_id: str, country: str, number: int, currency: str | None = None
) -> dict[str, Any]:
    """Invoice `number`: a line at each of the country's VAT rates, to one of three
    customers, due in twelve days."""
    lines = [
        factories.line(
            f"Subscription, {rate}% VAT",
            str(1 + index),
            f"{Decimal(450 + 100 * number + 10 * index):.2f}",
            rate,
        )
        for index, rate in enumerate(factories.VAT_RATES[country])
    ]
    return factories.invoice_job(
        tenant_id,
        f"inv-{number:04d}",
        country=country,
        currency=currency,
        customer=factories.numbered_customer(country, number % 3),
        lines=lines,
        due_date=factories.days_from_today(12),
        your_reference=f"PO-{7000 + number}",
    )


def _tenant_jobs(tenant_id: str, country: str) -> Iterator[dict[str, Any]]:
    currency = factories.CURRENCY[country]
    for number in range(1, 6):
        yield _invoice(tenant_id, country, number)
    yield _invoice(tenant_id, country, 6, currency="EUR" if currency != "EUR" else "USD")
    yield factories.credit_note_job(tenant_id, "cn-0001", "inv-0001", reason="Wrong quantity")
    for number in (2, 3):
        yield factories.payment_job(
            tenant_id, f"pay-{number:04d}", f"inv-{number:04d}", "500.00", currency=currency
        )


def bad_job() -> dict[str, Any]:
    job = _invoice("acme-no", "NO", 99)
    job["invoice"]["lines"][0]["unit_price"] = 12.5  # a float: the contract wants a string
    return job


def enqueue_all() -> int:
    from worker.tasknames import INVOICE_TASK, INVOICES_QUEUE
    from worker.transport.app import app
    from worker.transport.producer import enqueue

    count = 0
    for job in demo_jobs():
        enqueue(job)
        count += 1
    app.send_task(
        INVOICE_TASK, args=[bad_job()], queue=INVOICES_QUEUE
    )  # as a foreign producer would
    return count + 1


def summary(stack: LocalStack) -> dict[str, Any]:
    from worker.ledger.store import count_by_state, list_jobs
    from worker.tenancy.tenants import list_tenants

    jobs = list_jobs(limit=100_000)
    by_tenant: dict[str, dict[str, int]] = {}
    for job in jobs:
        by_tenant.setdefault(job.tenant_id, {}).setdefault(job.state, 0)
        by_tenant[job.tenant_id][job.state] += 1
    return {
        "jobs": len(jobs),
        "by_state": count_by_state(),
        "by_tenant": by_tenant,
        "provider_calls": stack.provider_calls(),
        "tenants": {t.id: {"provider": t.provider} for t in list_tenants()},
    }


def settled(expected: int) -> bool:
    from worker.ledger.store import count_by_state

    counts = count_by_state()
    done = sum(counts.get(s, 0) for s in SETTLED_STATES)
    return sum(counts.values()) >= expected and done == sum(counts.values())


def run(once: bool, as_json: bool, timeout: float = 300) -> int:
    from rich.console import Console
    from rich.markup import escape

    from worker.devtools.demo_view import live_progress, outcome_table

    console = Console(stderr=as_json)
    stop_on_signals()
    home = Path(os.environ.get("LEDGERPUSH_DEMO_HOME", ".ledgerpush/demo")).resolve()
    web_port = int(os.environ.get("LEDGERPUSH_DEMO_WEB_PORT") or free_port())
    web_url = f"http://127.0.0.1:{web_port}"
    stack = prepare_environment(home, web_port)
    try:
        start_simulators(stack)
        stack.start_redis()  # the demo's own, gone with the demo (even when it is killed)
        stack.use_database()
        stack.open_ledger()
        stack.start_process(["web", "--port", str(web_port)], "web")
        stack.start_worker("worker", 16, wait=False)
        wait_until_up(f"{web_url}/health", log_file=home / "web.log")
        console.print(f"dashboard: [bold]{web_url}[/bold]  (user admin, password demo)")
        connect_tenants(stack)
        revoke_one_tenant(stack)
        expected = enqueue_all()
        console.print(f"enqueued {expected} jobs over {tenant_count()} tenants")
        finished = live_progress(console, lambda: settled(expected), timeout)
        result = summary(stack)
        if as_json:
            print(json.dumps(result, indent=2))
        else:
            console.print(outcome_table(result))
        console.print(f"the demo's jobs, also after it stopped: [bold]{jobs_command(home)}[/bold]")
        if not once:
            console.print(f"dashboard still up at {web_url} - Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)
        return 0 if finished else 1
    except KeyboardInterrupt:
        console.print("stopping the demo's processes")
        return 130
    except RuntimeError as exc:  # a process of the stack did not start
        console.print(f"[red]{escape(str(exc))}[/red]")
        return 1
    finally:
        stack.stop()


def tenant_count() -> int:
    return len(EACCOUNTING_TENANTS) + len(ECONOMIC_TENANTS) + len(VISMANET_TENANTS)


def jobs_command(home: Path) -> str:
    """The command that lists the demo's jobs from where the demo was started."""
    try:
        where = home.relative_to(Path.cwd())
    except ValueError:
        where = home
    runner = "./dev" if Path("dev").is_file() else "ledgerpush"
    return f"LEDGERPUSH_HOME={where} {runner} jobs list"
