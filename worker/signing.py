"""Signatures of outbound webhooks: the Standard Webhooks scheme (`webhook-id`,
`webhook-timestamp`, `webhook-signature: v1,<base64>`; secrets `whsec_…`) every
delivery carries, and the deprecated `X-Ledgerpush-Signature` (HMAC-SHA256 over
`"{timestamp}.{body}"`) kept for receivers of LEDGERPUSH_WEBHOOK_URL."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from typing import Any

from standardwebhooks.webhooks import Webhook

from worker.ledger.models import utcnow

SIGNATURE_HEADER = "X-Ledgerpush-Signature"


def _signer(secret: str) -> Webhook:
    # A `whsec_` secret is base64 (Standard Webhooks); LEDGERPUSH_WEBHOOK_SECRET may be
    # any text, whose bytes are then the key (`whsec_` + base64 of it, for a verifier).
    return Webhook(secret if secret.startswith("whsec_") else secret.encode())


def signing_secrets(stored: dict[str, Any], now: dt.datetime | None = None) -> list[str]:
    """The current secret, and the previous one while its overlap lasts."""
    now = now or utcnow()
    found = [str(stored["current"])]
    until = stored.get("previous_until")
    if stored.get("previous") and until and dt.datetime.fromisoformat(until) > now:
        found.append(str(stored["previous"]))
    return found


def signed_headers(
    event_id: str, body: bytes, stored: dict[str, Any], legacy: bool = False
) -> dict[str, str]:
    now = utcnow()
    text = body.decode()
    signatures = [_signer(s).sign(event_id, now, text) for s in signing_secrets(stored, now)]
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ledgerpush-webhooks",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
    if legacy:
        # Deprecated; kept for one release for receivers of LEDGERPUSH_WEBHOOK_URL.
        headers[SIGNATURE_HEADER] = sign(body, int(now.timestamp()), str(stored["current"]))
    return headers


def sign(body: bytes, timestamp: int, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(body: bytes, header: str, secret: str, tolerance: int = 300) -> bool:
    """For receivers: check the signature and that it is recent."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(body, timestamp, secret), header)
