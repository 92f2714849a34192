"""Payment status back from Visma.net: the balance of the invoices we booked."""

from __future__ import annotations

import datetime as dt
from typing import Any

from worker.providers.vismanet.client import VismaNetProvider
from worker.providers.vismanet.transport import modified_since


def remaining_amounts(
    client: VismaNetProvider, remote_ids: set[str], since: dt.datetime
) -> dict[str, Any]:
    """The balance (invoice currency) of each of `remote_ids` among the invoices changed
    since `since` (`lastModifiedDateTime` with its condition, paged to the end).
    Amounts are compared, never trusted as events: a filter the ERP ignored would only
    make the sync read more."""
    moment = since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    found: dict[str, Any] = {}
    for invoice in client.http.collect("/v1/customerinvoice", modified_since(moment)):
        number = str(invoice.get("referenceNumber"))
        balance = invoice.get("balanceInCurrency", invoice.get("balance"))
        if number in remote_ids and balance is not None:
            found[number] = balance
    return found
