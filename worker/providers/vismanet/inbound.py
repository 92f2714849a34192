"""Visma.net notifications (the Visma Webhook Dispatcher) arriving at `POST /webhooks/vismanet`
(see worker/ops/inbound.py): their signature checked, their event recognised, and what they
point at re-read.

The signature is HMAC-SHA256 over the raw body under the subscription's secret, base64,
in `x-vwd-signature-v1`. The body's shape is not documented, so the event name is looked
for under a few keys and normalised ("AR Invoice Status Changed" and
"ArInvoice.StatusChanged" are one event); nothing in the body is taken as data. An
invoice's status change re-reads the tenant's open invoices (the payment sync, which
writes `invoice.payment_changed` / `invoice.paid`); a customer change drops that customer
from the tenant's reference cache. The periodic payment sync stays as the fallback for a
notification that never comes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from worker.ops import payment_sync
from worker.ops.inbound import Notification, Refused
from worker.providers.vismanet.auth import TENANT_KEY
from worker.providers.vismanet.settings import provider_settings
from worker.tenancy import refcache
from worker.tenancy.tenants import credentials_of, list_tenants

log = logging.getLogger("ledgerpush.vismanet.inbound")

PROVIDER = "vismanet"
SIGNATURE_HEADER = "x-vwd-signature-v1"
NOTIFICATION_ID_HEADER = "x-vwd-notification-id"
TENANT_HEADER = "x-vwd-tenant-id"

INVOICE_STATUS_CHANGED = "arinvoicestatuschanged"
CUSTOMER_CHANGED = "customerchanged"
#: Spellings seen or plausible for the two events we act on, normalised.
_ALIASES = {
    "arinvoicestatuschanged": INVOICE_STATUS_CHANGED,
    "customerinvoicestatuschanged": INVOICE_STATUS_CHANGED,
    "arinvoicechanged": INVOICE_STATUS_CHANGED,
    "customerinvoicechanged": INVOICE_STATUS_CHANGED,
    "customerchanged": CUSTOMER_CHANGED,
    "customerupdated": CUSTOMER_CHANGED,
}
_EVENT_KEYS = ("event", "eventname", "eventtype", "type", "name")
_ENTITY_KEYS = ("entity", "entityname", "entitytype", "resource")
_NUMBER_KEYS = ("number", "customernumber", "entityid", "id", "key")
#: A customer number only ever names a cache entry; anything else is ignored.
_CUSTOMER_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,29}$")
CUSTOMER_CACHE_PREFIX = "customer:"


# -- verify ----------------------------------------------------------------------------------


def secrets() -> list[bytes]:
    """The subscription secrets accepted now (more than one while a rotation overlaps)."""
    raw = provider_settings().webhook_secret.get_secret_value()
    return [part.strip().encode() for part in raw.split(",") if part.strip()]


def sign(secret: bytes, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def verify(headers: Mapping[str, str], body: bytes) -> Notification:
    """The notification, when signed with one of our secrets; otherwise Refused."""
    given = headers.get(SIGNATURE_HEADER, "")
    if not given:
        raise Refused("no signature")
    accepted = secrets()
    if not accepted:
        raise Refused("no webhook secret configured for Visma.net")
    if not any(hmac.compare_digest(sign(s, body), given) for s in accepted):
        raise Refused("bad signature")
    notification_id = headers.get(NOTIFICATION_ID_HEADER, "").strip()
    if not notification_id:
        raise Refused("no notification id")
    payload = _payload(body)
    return Notification(
        provider=PROVIDER,
        id=notification_id[:200],
        event=event_name(payload),
        company=headers.get(TENANT_HEADER, "").strip(),
        hint=payload,
    )


def _payload(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def normalise(name: str) -> str:
    """Lower case letters and digits only: "AR Invoice Status Changed" and
    "ArInvoice.StatusChanged" both become "arinvoicestatuschanged"."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _field(payload: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    by_lower = {str(k).lower(): v for k, v in payload.items()}
    for key in keys:
        value = by_lower.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return ""


def event_name(payload: Mapping[str, Any]) -> str:
    """The normalised event the payload names ("" when none): the entity is put in front
    when the event names only what happened ({"entity": "Customer", "event": "Changed"})."""
    event = normalise(_field(payload, _EVENT_KEYS))
    entity = normalise(_field(payload, _ENTITY_KEYS))
    if event and entity and not event.startswith(entity) and event in ("changed", "updated",
                                                                       "statuschanged"):  # fmt: skip
        event = entity + event
    return _ALIASES.get(event, event)


# -- handle ----------------------------------------------------------------------------------


def tenants_of_company(company_tenant_id: str) -> list[str]:
    """Our Visma.net tenants whose stored company tenant id is the notification's."""
    if not company_tenant_id:
        return []
    return [
        tenant.id
        for tenant in list_tenants()
        if tenant.provider == PROVIDER
        and credentials_of(tenant).get(TENANT_KEY) == company_tenant_id
    ]


def handle(notification: Notification) -> None:
    tenants = tenants_of_company(notification.company)
    if not tenants:
        log.info("Visma.net notification %s for an unknown company: ignored", notification.id)
        return
    if notification.event == INVOICE_STATUS_CHANGED:
        for tenant_id in tenants:
            written = payment_sync.sync_tenant(tenant_id)
            log.info("tenant %s: invoice status re-read, %d event(s)", tenant_id, len(written))
    elif notification.event == CUSTOMER_CHANGED:
        number = customer_number(notification.hint)
        for tenant_id in tenants:
            forget_customer(tenant_id, number)
    else:
        log.info("Visma.net notification %s (%r) not acted on", notification.id,
                 notification.event[:80])  # fmt: skip


def customer_number(hint: Mapping[str, Any]) -> str | None:
    """The customer number the payload names, if it looks like one (used only to pick
    the cache entry to drop)."""
    number = _field(hint, _NUMBER_KEYS)
    return number if _CUSTOMER_NUMBER.match(number) else None


def forget_customer(tenant_id: str, number: str | None) -> None:
    """The next job re-reads the customer (all customers when the number is unknown)."""
    if number is None:
        refcache.forget_prefix(tenant_id, CUSTOMER_CACHE_PREFIX)
    else:
        refcache.forget(tenant_id, f"{CUSTOMER_CACHE_PREFIX}{number}")
