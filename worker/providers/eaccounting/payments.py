"""Payment status back from eAccounting: the remaining amounts of the invoices we booked."""

from __future__ import annotations

import datetime as dt
from typing import Any

from worker.providers.eaccounting.client import EAccountingProvider


def remaining_amounts(
    client: EAccountingProvider, remote_ids: set[str], since: dt.datetime
) -> dict[str, Any]:
    """The remaining amount (invoice currency) of each of `remote_ids` changed since
    `since`, as eAccounting writes it.

    The reference lists the filter as its generated client's argument `modified_since_utc`
    (endpoints.json, GET /v2/customerinvoices); on the wire it is the spec's camel-case
    query name. Were it ignored, every sync would read all the company's invoices: slower,
    never wrong, since amounts are compared, not trusted."""
    params = {"modifiedSinceUtc": since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    found: dict[str, Any] = {}
    for invoice in client.collect("/customerinvoices", params):
        key = str(invoice.get("Id"))
        amount = invoice.get("RemainingAmountInvoiceCurrency", invoice.get("RemainingAmount"))
        if key in remote_ids and amount is not None:
            found[key] = amount
    return found
