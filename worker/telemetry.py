"""Sentry, initialised with its Celery integration, with secrets scrubbed before send."""

from __future__ import annotations

from typing import Any

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration

from worker.logs import scrub
from worker.settings import get_settings


def before_send(event: Any, _hint: Any) -> Any:
    return scrub(event)


def init_sentry(**overrides: Any) -> bool:
    dsn = get_settings().sentry_dsn
    if not dsn:
        return False
    sentry_sdk.init(
        dsn=dsn,
        integrations=[CeleryIntegration(monitor_beat_tasks=True)],
        before_send=before_send,
        before_send_transaction=before_send,
        send_default_pii=False,
        # Frame locals hold tokens under any name (a refresh token in `used`, a grant in
        # `grant`); no key-based scrubber can know them all, so they are never sent.
        include_local_variables=False,
        environment=get_settings().env,
        **overrides,
    )
    return True
