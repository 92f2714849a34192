"""What the demo shows on the terminal: live counts while jobs run, then outcomes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

STATES = ("booked", "failed", "waiting_for_reauth", "retry_scheduled", "in flight")


def _counts_table() -> Table:
    from worker.ledger.store import count_by_state

    counts = count_by_state()
    in_flight = sum(v for k, v in counts.items() if k not in STATES)
    table = Table(title="ledgerpush demo: jobs by state")
    for state in STATES:
        table.add_column(state, justify="right")
    table.add_row(*(str(counts.get(s, 0)) for s in STATES[:-1]), str(in_flight))
    return table


def live_progress(console: Console, done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    finished = False
    with Live(_counts_table(), console=console, refresh_per_second=4, transient=False) as live:
        while time.monotonic() < deadline and not finished:
            finished = done()
            live.update(_counts_table())
            if not finished:
                time.sleep(0.5)
    if not console.is_terminal:
        console.line()  # Live leaves its last frame without a line end when piped
    return finished


def outcome_table(result: dict[str, Any]) -> Table:
    states = sorted({s for counts in result["by_tenant"].values() for s in counts})
    table = Table(
        title=f"outcomes ({result['jobs']} jobs, {result['provider_calls']} provider calls)"
    )
    table.add_column("tenant")
    table.add_column("provider")
    for state in states:
        table.add_column(state, justify="right")
    tenants = result.get("tenants", {})
    for tenant, counts in sorted(result["by_tenant"].items()):
        provider = tenants.get(tenant, {}).get("provider", "")
        table.add_row(tenant, provider, *(str(counts.get(s, 0)) for s in states))
    return table
