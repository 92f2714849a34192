"""How long a webhook delivery waits before its next attempt: one schedule for the alert
webhooks (worker/ops/alerts.py, the deliver-webhook task) and the event deliveries
(worker/ops/webhooks.py). A leaf: it imports nothing of ours."""

from __future__ import annotations

WEBHOOK_BACKOFF_MAX = 600  # seconds


def webhook_backoff(attempt: int) -> float:
    """Seconds to wait after the `attempt`th failed delivery of a webhook: doubling from
    2 s, at most ten minutes."""
    return float(min(WEBHOOK_BACKOFF_MAX, 2**attempt))
