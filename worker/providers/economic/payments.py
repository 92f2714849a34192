"""Payment status back from e-conomic: the `remainder` of the booked invoices we track."""

from __future__ import annotations

import datetime as dt
from typing import Any

from worker.providers.economic.client import EconomicProvider


def remaining_amounts(
    client: EconomicProvider, remote_ids: set[str], since: dt.datetime
) -> dict[str, Any]:
    """e-conomic has no "changed since" filter on booked invoices: each tracked one is
    read by number (the sync only tracks invoices still open)."""
    found: dict[str, Any] = {}
    for number in sorted(remote_ids):
        booked = client.http.get_json(f"/invoices/booked/{number}")
        if booked.get("remainder") is not None:
            found[number] = booked["remainder"]
    return found
